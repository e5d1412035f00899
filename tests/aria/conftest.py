"""Shared fixtures of the aria tests: rendered pieces with a known tempo and chord sequence."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.aria.music import chord_piece, render

PIECES = {
    # name: (roots, qualities, bpm, beats per chord, GM program, transposition)
    "piano100": ([0, 5, 7, 9], ["maj", "maj", "maj", "min"], 100, 4, 0, 0),
    "piano100_up3": ([0, 5, 7, 9], ["maj", "maj", "maj", "min"], 100, 4, 0, 3),
    "guitar75": ([0, 7, 5, 0], ["maj", "maj", "maj", "maj"], 75, 3, 24, 0),
}


@pytest.fixture(scope="session")
def pieces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """WAV files (32 kHz mono, about 8-10 s) of PIECES."""
    folder = tmp_path_factory.mktemp("pieces")
    out = {}
    for name, (roots, quality, bpm, beats, program, transpose) in PIECES.items():
        pm = chord_piece(roots, bpm=bpm, beats_per_chord=beats, program=program, quality=quality,
                         transpose=transpose)
        out[name] = render(pm, folder / f"{name}.wav")
    return out
