"""Pieces of the music21 corpus (its scores) as plain note tables, and the checks that decide whether a piece is
used by the embedded corpus."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from execution.files import atomic_path

SECONDS_PER_QUARTER = 0.5
"""The corpora carry no tempo markings: a quarter note lasts 0.5 s (120 bpm) at tempo factor 1."""

SCORE_SUFFIXES = (".mxl", ".xml", ".musicxml", ".krn", ".abc")


def collection_pieces(collection: str) -> list[str]:
    """Corpus paths (`bach/bwv1.6.mxl`) of the scores directly inside one music21 collection, sorted."""
    from music21 import corpus

    root = Path(corpus.__file__).parent
    pieces = []
    for path in corpus.getPaths():
        parts = path.relative_to(root).parts
        if len(parts) == 2 and parts[0] == collection and path.suffix in SCORE_SUFFIXES:
            pieces.append("/".join(parts))
    return sorted(pieces)


def read_notes(piece: str) -> np.ndarray:
    """Notes of a corpus piece, repeats expanded and ties merged.

    Returns float64 (n, 4) rows (onset, end, MIDI pitch, part index), times in quarter notes from the
    first onset, sorted. Raises whatever music21 raises for a score it cannot parse or expand (e.g.
    `ExpanderException`), and `ValueError` for a score without notes.
    """
    from music21 import corpus, harmony, stream

    score = corpus.parse(piece, forceSource=True)
    if isinstance(score, stream.Opus):
        score = score.scores[0]
    score = score.expandRepeats()
    parts = list(score.parts) or [score]
    rows = []
    for index, part in enumerate(parts):
        for element in part.stripTies().flatten().notes:
            if isinstance(element, harmony.Harmony):
                continue
            start = float(element.offset)
            end = start + float(element.quarterLength)
            if end > start:
                rows.extend((start, end, float(p.midi), float(index)) for p in element.pitches)
    if not rows:
        raise ValueError("the score holds no notes")
    notes = np.array(sorted(rows), dtype=np.float64)
    notes[:, :2] -= notes[:, 0].min()
    return notes


def parse_piece(piece: str, cache_dir: Path) -> tuple[np.ndarray | None, str]:
    """`read_notes`, reporting a failure as `(None, reason)` instead of raising; `(notes, "")` on success.

    Both outcomes are cached in `cache_dir` (one .npz per piece), so another seed or design parses no
    score twice.
    """
    cached = Path(cache_dir) / f"{piece.replace('/', '__')}.npz"
    if cached.exists():
        with np.load(cached) as saved:
            return (saved["notes"] if saved["notes"].size else None), str(saved["reason"])
    try:
        notes, reason = read_notes(piece), ""
    except Exception as err:  # any music21 parse or expansion failure skips the piece, with its reason
        notes, reason = None, f"{type(err).__name__}: {err}".strip()[:300]
    with atomic_path(cached) as partial:
        np.savez(partial, notes=np.zeros((0, 4)) if notes is None else notes, reason=np.array(reason))
    return notes, reason


def note_coverage(notes: np.ndarray, stop: float) -> float:
    """Fraction of [0, stop) (quarter notes) during which at least one note of (n, 4) `notes` sounds."""
    intervals = np.clip(notes[:, :2], 0.0, stop)
    intervals = intervals[intervals[:, 1] > intervals[:, 0]]
    covered, reach = 0.0, 0.0
    for start, end in intervals[np.argsort(intervals[:, 0], kind="stable")]:
        if end > reach:
            covered += end - max(start, reach)
            reach = end
    return covered / stop


def unusable_reason(notes: np.ndarray, need_quarters: float, min_coverage: float) -> str:
    """Why a piece cannot give the excerpts it may be asked for ('' when it can).

    It must last `need_quarters` and have notes sounding during at least `min_coverage` of that span.
    """
    length = float(notes[:, 1].max())
    if length < need_quarters:
        return f"too short: {length:g} quarter notes, {need_quarters:g} needed"
    coverage = note_coverage(notes, need_quarters)
    if coverage < min_coverage:
        return f"too little sound: notes sound during {coverage:.0%} of the excerpt, {min_coverage:.0%} needed"
    return ""
