"""The report's media (docs/report.md#media): audio transcoded to Ogg Vorbis, symbolic tracks (MIDI) rendered
with FluidSynth as the corpus renders them and drawn as piano rolls, and the figures.

Every file is written into the report folder under a name keyed by its source's content, so that a rebuilt
report reuses what it already transcoded and two tracks never share a file.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from execution.files import atomic_path
from lumina.data.audio import file_sha256, load_audio  # noqa: E402
from lumina.runs.errors import ParameterError  # noqa: E402

MIDI_SUFFIXES = (".mid", ".midi")


def is_symbolic(path: str | Path) -> bool:
    """Whether a track is symbolic (a MIDI file) rather than a recording."""
    return Path(path).suffix.lower() in MIDI_SUFFIXES


def render_midi(path: str | Path, sample_rate: int) -> np.ndarray:
    """A MIDI file rendered to mono audio (n,) with FluidSynth and pretty_midi's General MIDI soundfont,
    as the embedded corpus renders its scores (lumina/data/render.py)."""
    import pretty_midi

    from lumina.data.music21_corpus import soundfont_path
    from lumina.data.render import fluidsynth_render

    executable = shutil.which("fluidsynth")
    if executable is None:
        raise ParameterError(f"{path}: FluidSynth is not on PATH to render this symbolic track (run `make system`)")
    midi = pretty_midi.PrettyMIDI(str(path))
    length = int(np.ceil((midi.get_end_time() + 0.5) * sample_rate))
    return fluidsynth_render(midi, soundfont_path(None), sample_rate, length, executable).astype(np.float32)


def transcode(path: str | Path, out_dir: Path, sample_rate: int, quality: float) -> Path:
    """The track at `path` as Ogg Vorbis at `sample_rate` in `out_dir` (MIDI rendered first), named by the
    source's SHA-256; reused when already there. `quality`: Vorbis compression level, 0 (best) to 1."""
    path = Path(path)
    target = out_dir / f"{path.stem}-{file_sha256(path)[:10]}.ogg"
    if target.is_file():
        return target
    audio = render_midi(path, sample_rate) if is_symbolic(path) else load_audio(path, sample_rate, allow_silent=True)
    peak = float(np.abs(audio).max(initial=0.0))
    with atomic_path(target) as tmp:
        sf.write(str(tmp), audio / peak * 0.98 if peak > 1.0 else audio, sample_rate, format="OGG",
                 subtype="VORBIS", compression_level=quality)
    return target


def piano_roll(path: str | Path, out_dir: Path, *, fs: int = 50) -> Path:
    """A piano-roll PNG of a MIDI file (pitch against time, velocity as darkness) in `out_dir`."""
    import pretty_midi

    path = Path(path)
    target = out_dir / f"{path.stem}-{file_sha256(path)[:10]}-roll.png"
    if target.is_file():
        return target
    roll = pretty_midi.PrettyMIDI(str(path)).get_piano_roll(fs=fs)  # (128, frames)
    played = np.flatnonzero(roll.any(axis=1))
    low, high = (int(played.min()), int(played.max())) if played.size else (48, 72)
    fig, ax = plt.subplots(figsize=(7.0, 2.6))
    ax.imshow(roll[low:high + 1], aspect="auto", origin="lower", cmap="Greys", interpolation="nearest",
              extent=(0, roll.shape[1] / fs, low - 0.5, high + 0.5))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("MIDI pitch")
    return save_figure(fig, target)


def save_figure(fig: plt.Figure, path: Path) -> Path:
    """Write a figure as PNG and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def channel_z_figure(labels: Sequence[str], z: dict[str, Sequence[float]], titles: dict[str, str], path: Path
                     ) -> Path:
    """Mean homogeneity z of each channel per setting: grouped bars, one group per setting (len(labels))."""
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(labels) + 2.0), 4.0))
    x = np.arange(len(labels))
    width = 0.8 / max(1, len(z))
    for i, (channel, values) in enumerate(z.items()):
        ax.bar(x + (i - (len(z) - 1) / 2) * width, np.asarray(values, dtype=float), width, label=titles[channel])
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("mean z over queries")
    ax.set_title("Within-group homogeneity per channel")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def panels_figure(panels: dict[str, Sequence[float]], y: Sequence[float], labels: Sequence[str], ylabel: str,
                  path: Path) -> Path:
    """One scatter panel per entry of `panels` (x values, one per setting) against the shared `y`, points
    labelled with `labels`."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.4), sharey=True, squeeze=False)
    for ax, (xlabel, x) in zip(axes[0], panels.items(), strict=True):
        ax.scatter(x, y)
        for xi, yi, label in zip(x, y, labels, strict=True):
            ax.annotate(label, (xi, yi), fontsize=5, xytext=(2, 2), textcoords="offset points")
        ax.set_xlabel(xlabel)
    axes[0][0].set_ylabel(ylabel)
    return save_figure(fig, path)


def histogram_figure(values: dict[str, Sequence[float]], xlabel: str, title: str, path: Path) -> Path:
    """Overlaid histograms, one per entry of `values`."""
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    for name, v in values.items():
        ax.hist(np.asarray(v, dtype=float), bins=12, alpha=0.5, label=name)
    ax.axvline(0.0, color="grey", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("queries")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return save_figure(fig, path)
