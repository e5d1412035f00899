"""Rendering note tables to audio with the FluidSynth CLI, the mix changes of near-copy queries, sound checks.

Audio is 1-D float64 numpy arrays until it is written (16-bit WAV via `lumina.data.audio.save_audio`).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pretty_midi
import soundfile as sf
from scipy import signal

from execution.files import atomic_path
from lumina.data.audio import rms_dbfs, save_audio
from lumina.data.music21_pieces import SECONDS_PER_QUARTER
from lumina.data.textures import synthesize
from lumina.runs.errors import CorpusError

MIDI_CHANNELS = 15
"""Melodic MIDI channels (channel 10 is percussion); parts beyond this share channels."""

PEAK_LIMIT = 0.98
QUIET_BELOW_DB = 40.0
"""A 50 ms frame this far below its track's RMS counts as (nearly) silent in `quiet_fraction`."""


def excerpt_midi(
    notes: np.ndarray,
    *,
    program: int,
    tempo_factor: float,
    transpose: int,
    offset_s: float,
    length_s: float,
    velocity: int,
) -> pretty_midi.PrettyMIDI:
    """MIDI of the `length_s` excerpt starting at `offset_s` of (n, 4) `notes`, every part on `program`.

    Each part gets its own channel so that unisons between parts do not cut each other off; notes that
    straddle the excerpt's edges are clipped to it.
    """
    scale = SECONDS_PER_QUARTER / tempo_factor
    start = notes[:, 0] * scale - offset_s
    end = np.minimum(notes[:, 1] * scale - offset_s, length_s)
    keep = (end > 0.0) & (start < length_s)
    midi = pretty_midi.PrettyMIDI(resolution=960, initial_tempo=120.0)
    parts = [pretty_midi.Instrument(program=program) for _ in range(MIDI_CHANNELS)]
    for onset, stop, pitch, part in zip(
        np.maximum(start[keep], 0.0), end[keep], notes[keep, 2], notes[keep, 3], strict=True
    ):
        if stop - onset >= 1e-3:
            note = pretty_midi.Note(velocity=velocity, pitch=int(pitch) + transpose, start=onset, end=stop)
            parts[int(part) % MIDI_CHANNELS].notes.append(note)
    midi.instruments = [part for part in parts if part.notes]
    return midi


def fluidsynth_render(
    midi: pretty_midi.PrettyMIDI, soundfont: str | Path, sample_rate: int, length: int, fluidsynth: str
) -> np.ndarray:
    """Render `midi` with the FluidSynth CLI (reverb and chorus off) to mono float64 of exactly `length`
    samples: the release tail is cropped, a short render is zero-padded."""
    with tempfile.TemporaryDirectory(prefix="lumina-render-") as tmp:
        midi_path, raw_path = os.path.join(tmp, "excerpt.mid"), os.path.join(tmp, "excerpt.raw")
        midi.write(midi_path)
        command = [
            fluidsynth, "-n", "-i", "-q", "-R", "0", "-C", "0", "-g", "0.5", "-r", str(sample_rate),
            "-O", "float", "-T", "raw", "-F", raw_path, str(soundfont), midi_path,
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not os.path.exists(raw_path):
            raise CorpusError(
                f"FluidSynth failed (exit {done.returncode}) rendering with {soundfont}: "
                f"{(done.stderr or done.stdout).strip()[-500:]}"
            )
        stereo = np.fromfile(raw_path, dtype=np.float32).reshape(-1, 2)
    audio = stereo.astype(np.float64).mean(axis=1)[:length]
    return np.pad(audio, (0, length - audio.shape[0]))


def lowpass(audio: np.ndarray, sample_rate: int, cutoff_hz: float) -> np.ndarray:
    """4th-order Butterworth low-pass of (n,) audio (the `eq` mix change)."""
    sos = signal.butter(4, cutoff_hz, btype="lowpass", fs=sample_rate, output="sos")
    return signal.sosfilt(sos, audio)


def reverb(audio: np.ndarray, sample_rate: int, rt60_s: float, wet: float, rng: np.random.Generator) -> np.ndarray:
    """Convolve (n,) audio with a synthetic impulse response (Gaussian noise decaying 60 dB over `rt60_s`,
    unit energy) and mix it in with weight `wet`; same length out."""
    t = np.arange(int(rt60_s * sample_rate)) / sample_rate
    impulse = rng.standard_normal(t.shape[0]) * np.exp(-6.9078 * t / rt60_s)
    impulse /= np.sqrt(np.sum(impulse**2))
    tail = signal.fftconvolve(audio, impulse)[: audio.shape[0]]
    return (1.0 - wet) * audio + wet * tail * (np.std(audio) / max(np.std(tail), 1e-12))


def add_noise(audio: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """(n,) audio plus white Gaussian noise `snr_db` below its RMS."""
    rms = np.sqrt(np.mean(audio**2))
    return audio + rng.standard_normal(audio.shape[0]) * rms * 10.0 ** (-snr_db / 20.0)


def normalise(audio: np.ndarray, target_dbfs: float) -> np.ndarray:
    """Scale (n,) audio to an RMS of `target_dbfs`, then down to a peak of at most 0.98 (digital silence
    stays silent)."""
    level = rms_dbfs(audio)
    if not np.isfinite(level):
        return audio
    audio = audio * 10.0 ** ((target_dbfs - level) / 20.0)
    peak = np.max(np.abs(audio))
    return audio * (PEAK_LIMIT / peak) if peak > PEAK_LIMIT else audio


def quiet_fraction(audio: np.ndarray, sample_rate: int, *, frame_s: float = 0.05,
                   below_db: float = QUIET_BELOW_DB) -> float:
    """Fraction of `frame_s` frames of (n,) audio whose RMS lies more than `below_db` under the whole
    clip's RMS (1.0 for digital silence); a measure of how much of an excerpt has too little sound."""
    level = rms_dbfs(audio)
    if not np.isfinite(level):
        return 1.0
    size = int(frame_s * sample_rate)
    frames = audio[: audio.shape[0] // size * size].reshape(-1, size)
    frame_rms = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))
    return float(np.mean(frame_rms < 10.0 ** ((level - below_db) / 20.0)))


def render_excerpt(spec: Mapping, notes: np.ndarray, settings: Mapping) -> np.ndarray:
    """One planned track's audio before its mix change and level: its notes through FluidSynth, (n,) float64."""
    sample_rate = int(settings["sample_rate"])
    length = int(round(float(settings["track_s"]) * sample_rate))
    midi = excerpt_midi(
        notes, program=int(spec["program"]), tempo_factor=float(spec["tempo_factor"]),
        transpose=int(spec["transpose"]), offset_s=float(spec["offset_s"]),
        length_s=float(settings["track_s"]), velocity=int(settings["velocity"]),
    )
    return fluidsynth_render(midi, settings["soundfonts"][spec["soundfont"]], sample_rate, length,
                             settings["fluidsynth"])


def paste(host: np.ndarray, excerpt: np.ndarray, at: int, fade: int) -> np.ndarray:
    """`host` (n,) with `excerpt` (m,) in place of host[at:at+m], cross-faded over `fade` samples at each end
    (both scaled to the host's RMS first, so the sample is as loud as the music around it)."""
    out = host.copy()
    level = np.sqrt(np.mean(host**2)) / max(np.sqrt(np.mean(excerpt**2)), 1e-12)
    ramp = np.ones(excerpt.shape[0])
    ramp[:fade] = np.linspace(0.0, 1.0, fade)
    ramp[-fade:] = np.linspace(1.0, 0.0, fade)
    region = slice(at, at + excerpt.shape[0])
    out[region] = (1.0 - ramp) * host[region] + ramp * excerpt * level
    return out


def render_track(spec: Mapping, notes: np.ndarray, settings: Mapping, path: Path,
                 source_notes: np.ndarray | None = None) -> dict:
    """Render one planned track (see `lumina.data.plan`) to the WAV `path` unless it is there already,
    then measure the written file. `source_notes`: the source piece's notes of a sample query.
    Returns {"track_id", "quiet_fraction", "rms_dbfs"}."""
    path = Path(path)
    if not path.exists():
        sample_rate = int(settings["sample_rate"])
        rng = np.random.default_rng(spec["rng_seed"])
        if spec["query_kind"] == "out_of_domain":
            length = int(round(float(settings["track_s"]) * sample_rate))
            audio = synthesize(spec["texture"], length, sample_rate, rng)
        else:
            audio = render_excerpt(spec, notes, settings)
        if "sample" in spec:
            cut = spec["sample"]
            source = render_excerpt(cut["source"], source_notes, settings)
            start, size = int(cut["from_s"] * sample_rate), int(cut["length_s"] * sample_rate)
            audio = paste(audio, source[start:start + size], int(cut["at_s"] * sample_rate),
                          int(0.05 * sample_rate))
        if spec["effect"] == "eq":
            audio = lowpass(audio, sample_rate, float(settings["eq_lowpass_hz"]))
        elif spec["effect"] == "reverb":
            audio = reverb(audio, sample_rate, float(settings["reverb_rt60_s"]), float(settings["reverb_wet"]), rng)
        elif spec["effect"] == "noise":
            audio = add_noise(audio, float(settings["noise_snr_db"]), rng)
        audio = normalise(audio, float(settings["target_rms_dbfs"]))
        with atomic_path(path) as partial:
            save_audio(partial, audio, sample_rate)
    written, sample_rate = sf.read(str(path), dtype="float64")
    return {
        "track_id": spec["track_id"],
        "quiet_fraction": quiet_fraction(written, sample_rate),
        "rms_dbfs": rms_dbfs(written),
    }


def render_task(task: tuple[Mapping, np.ndarray | None, Path, np.ndarray | None], settings: Mapping) -> dict:
    """`render_track` of one `(spec, notes, path, source_notes)` task: the one-argument form `parallel_map`
    calls."""
    spec, notes, path, source_notes = task
    return render_track(spec, notes, settings, path, source_notes)
