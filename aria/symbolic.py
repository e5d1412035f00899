"""Symbolic evidence channels (docs/aria.md#channel-sets; docs/symbolic.md#channels): features of a window's
notes, read from its MIDI file, for the `aria.channels.SYMBOLIC` channel set.

Times are taken at 120 bpm (a quarter note = 0.5 s), the tempo the symbolic corpus writes. music21's jSymbolic
features are used where they exist — melodic-interval histogram (on the top voice), pitch-class distribution,
note density, average note duration, range; the project's own code gives the rest — vertical-interval
histogram, rhythmic-value histogram, velocity change and range, polyphony. Plain functions of a note array
(n, 4): start (s), end (s), MIDI pitch, velocity.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from aria.errors import ArtefactError, ParameterError
from aria.extract import FeatureTable, file_sha256
from execution.files import atomic_path
from execution.parallel import parallel_map

SECONDS_PER_QUARTER = 0.5
MELODIC_BINS = 13
"""Melodic intervals 0…11 semitones, then 12 or more (jSymbolic's histogram folded above an octave)."""
RHYTHM_EDGES = (0.0, 0.375, 0.75, 1.5, 3.0, np.inf)
"""Rhythmic-value bins in quarter notes: [0, 0.375), [0.375, 0.75), [0.75, 1.5), [1.5, 3), [3, inf)."""
VERSION = 1


@dataclass(frozen=True)
class SymbolicSettings:
    """The symbolic features have no options; `key` names their cache."""

    @property
    def key(self) -> str:
        return hashlib.sha256(f"symbolic-features-{VERSION}".encode()).hexdigest()[:16]


def read_notes(path: str | Path) -> np.ndarray:
    """Notes (n, 4) of every non-drum instrument of a MIDI file, sorted by start and pitch."""
    import pretty_midi

    try:
        midi = pretty_midi.PrettyMIDI(str(path))
    except Exception as err:  # mido/pretty_midi raise many types for a broken file
        raise ArtefactError(f"{path}: cannot read MIDI ({type(err).__name__}: {err})") from None
    rows = [(n.start, n.end, n.pitch, n.velocity) for i in midi.instruments if not i.is_drum for n in i.notes]
    if not rows:
        raise ArtefactError(f"{path}: the MIDI file holds no notes")
    notes = np.array(rows, dtype=np.float64)
    return notes[np.lexsort((notes[:, 2], notes[:, 0]))]


def top_voice(notes: np.ndarray) -> np.ndarray:
    """The highest note starting at each distinct onset (n_onsets, 4), in time order (the melody)."""
    out = [notes[notes[:, 0] == t][-1] for t in np.unique(notes[:, 0])]
    return np.array(out)


def _stream(notes: np.ndarray):
    """A one-part music21 score holding every note of `notes` at its offset, durations in quarter notes."""
    from music21 import note, stream

    part = stream.Part()
    for start, end, pitch, _ in notes:
        element = note.Note(int(pitch))
        element.quarterLength = max(float(end - start) / SECONDS_PER_QUARTER, 1 / 64)
        part.insert(float(start) / SECONDS_PER_QUARTER, element)
    return stream.Score([part])


def _jsymbolic(feature: type, notes: np.ndarray) -> np.ndarray:
    return np.asarray(feature(_stream(notes)).extract().vector, dtype=np.float64)


def melodic_intervals(notes: np.ndarray) -> np.ndarray:
    """jSymbolic's melodic-interval histogram of the top voice, folded to `MELODIC_BINS` bins (13,)."""
    from music21.features.jSymbolic import MelodicIntervalHistogramFeature

    histogram = _jsymbolic(MelodicIntervalHistogramFeature, top_voice(notes))
    return np.concatenate([histogram[: MELODIC_BINS - 1], [histogram[MELODIC_BINS - 1 :].sum()]])


def pitch_classes(notes: np.ndarray) -> np.ndarray:
    """jSymbolic's pitch-class distribution (12,): share of the notes on each pitch class, C first."""
    from music21.features.jSymbolic import PitchClassDistributionFeature

    return _jsymbolic(PitchClassDistributionFeature, notes)


def vertical_intervals(notes: np.ndarray) -> np.ndarray:
    """Own code: the intervals (mod 12) between every pair of notes sounding at each onset, as shares (12,);
    zeros when nothing ever sounds together."""
    counts = np.zeros(12)
    for t in np.unique(notes[:, 0]):
        sounding = np.sort(notes[(notes[:, 0] <= t) & (notes[:, 1] > t), 2])
        for i in range(len(sounding)):
            for j in range(i + 1, len(sounding)):
                counts[int(sounding[j] - sounding[i]) % 12] += 1
    return counts / counts.sum() if counts.sum() else counts


def rhythm_summary(notes: np.ndarray) -> np.ndarray:
    """jSymbolic's note density (notes per second) and average note duration (s), (2,)."""
    from music21.features.jSymbolic import AverageNoteDurationFeature, NoteDensityFeature

    score = _stream(notes)
    return np.array([NoteDensityFeature(score).extract().vector[0],
                     AverageNoteDurationFeature(score).extract().vector[0]], dtype=np.float64)


def rhythmic_values(notes: np.ndarray) -> np.ndarray:
    """Own code: note durations in quarter notes, as shares over the bins of `RHYTHM_EDGES` (5,)."""
    counts, _ = np.histogram((notes[:, 1] - notes[:, 0]) / SECONDS_PER_QUARTER, bins=np.array(RHYTHM_EDGES))
    return counts / counts.sum()


def dynamics(notes: np.ndarray) -> np.ndarray:
    """Own code: mean |change| of the mean velocity from one onset to the next, and the velocity range (2,)."""
    onset_velocity = np.array([notes[notes[:, 0] == t, 3].mean() for t in np.unique(notes[:, 0])])
    change = np.abs(np.diff(onset_velocity)).mean() if len(onset_velocity) > 1 else 0.0
    return np.array([change, np.ptp(notes[:, 3])], dtype=np.float64)


def polyphony(notes: np.ndarray) -> np.ndarray:
    """Own code: mean and largest number of notes sounding at an onset (2,)."""
    counts = np.array([((notes[:, 0] <= t) & (notes[:, 1] > t)).sum() for t in np.unique(notes[:, 0])])
    return np.array([counts.mean(), counts.max()], dtype=np.float64)


def pitch_range(notes: np.ndarray) -> np.ndarray:
    """jSymbolic's range: highest minus lowest MIDI pitch (1,)."""
    from music21.features.jSymbolic import RangeFeature

    return _jsymbolic(RangeFeature, notes)


FEATURES = {
    "melodic_intervals": melodic_intervals, "pitch_classes": pitch_classes, "vertical_intervals": vertical_intervals,
    "rhythm_summary": rhythm_summary, "rhythmic_values": rhythmic_values, "dynamics": dynamics,
    "polyphony": polyphony, "pitch_range": pitch_range,
}
"""Feature name → its function of a note array; the features of `aria.channels.SYMBOLIC`."""


def window_features(notes: np.ndarray) -> dict[str, np.ndarray]:
    """Every symbolic feature of one window's notes (n, 4)."""
    if len(notes) == 0:
        raise ParameterError("a window without notes has no symbolic features")
    return {name: f(notes) for name, f in FEATURES.items()}


def _extract_to_cache(job: tuple[str, str]) -> None:
    path, out = job
    features = window_features(read_notes(path))
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        np.savez(f, **features)


def extract_symbolic(paths: Sequence[str | Path], track_ids: Sequence[str], cache_dir: str | Path, *,
                     workers: int = 2, progress: bool = True) -> FeatureTable:
    """Symbolic features of the MIDI files `paths` (one per id), cached per file content under
    `cache_dir/features/<settings key>/` and computed in `workers` processes where missing."""
    settings = SymbolicSettings()
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise ArtefactError(f"{missing[0]}: MIDI file not found ({len(missing)} missing in all)")
    shas = [file_sha256(p) for p in paths]
    outs = [Path(cache_dir) / "features" / settings.key / f"{sha}.npz" for sha in shas]
    jobs = list({str(o): (str(p), str(o)) for p, o in zip(paths, outs, strict=True) if not o.exists()}.values())
    with tqdm(total=len(jobs), desc="symbolic features", unit="window", disable=not progress or not jobs) as bar:
        for _ in parallel_map(_extract_to_cache, jobs, workers=workers):
            bar.update()
    vectors: dict[str, list[np.ndarray]] = {name: [] for name in FEATURES}
    for out in outs:
        with np.load(out) as data:
            for name in FEATURES:
                vectors[name].append(data[name])
    return FeatureTable(list(track_ids), {k: np.stack(v).astype(np.float64) for k, v in vectors.items()}, {},
                        shas, np.zeros(len(shas)), settings)  # type: ignore[arg-type]


def symbolic_pool(manifest, track_ids: list[str], train: list[str], *, cache_dir: str | Path = "outputs/cache/aria",
                  workers: int = 2, progress: bool = True):
    """The `PoolFor` of the symbolic channels: features of the manifest's MIDI files for `track_ids`, the std
    over `train` (all tracks when there is no training split)."""
    from aria.channels import SYMBOLIC
    from aria.diagnose import build_pool

    features = extract_symbolic(manifest.loc[track_ids, "path"].tolist(), track_ids, cache_dir, workers=workers,
                                progress=progress)
    return build_pool(features, train or track_ids, cache_dir, channel_set=SYMBOLIC)

