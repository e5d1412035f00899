"""Test pieces with a known tempo and chord sequence, rendered through the FluidSynth CLI."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile as sf

SR = 32000
SOUNDFONT = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
TRIADS = {"maj": (0, 4, 7), "min": (0, 3, 7)}


def chord_piece(roots: list[int], *, bpm: float, beats_per_chord: int = 4, program: int = 0,
                quality: list[str] | None = None, transpose: int = 0) -> pretty_midi.PrettyMIDI:
    """Block chords, one per bar, struck on every beat: root pitch classes `roots` (C = 0), a bass note on
    each beat, `bpm` quarter notes per minute."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    inst = pretty_midi.Instrument(program=program)
    beat = 60.0 / bpm
    t = 0.0
    for i, root in enumerate(roots):
        pc = (root + transpose) % 12
        for b in range(beats_per_chord):
            velocity = 110 if b == 0 else 85
            for interval in TRIADS[(quality or ["maj"] * len(roots))[i]]:
                inst.notes.append(pretty_midi.Note(velocity, 60 + pc + interval, t, t + 0.9 * beat))
            inst.notes.append(pretty_midi.Note(velocity, 36 + pc, t, t + 0.9 * beat))
            t += beat
    pm.instruments.append(inst)
    return pm


def render(pm: pretty_midi.PrettyMIDI, path: Path, seconds: float | None = None) -> Path:
    """Render `pm` to a mono 32 kHz WAV with FluidSynth, cropped to `seconds` (default: the piece's end)."""
    if shutil.which("fluidsynth") is None:
        pytest.skip("the fluidsynth CLI is not installed")
    path.parent.mkdir(parents=True, exist_ok=True)
    midi = path.with_suffix(".mid")
    pm.write(str(midi))
    subprocess.run(["fluidsynth", "-ni", "-g", "0.7", "-r", str(SR), "-F", str(path), str(SOUNDFONT), str(midi)],
                   check=True, capture_output=True)
    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)[: int(SR * (seconds or pm.get_end_time()))]
    sf.write(str(path), audio / max(np.abs(audio).max(), 1e-9) * 0.8, SR)
    return path
