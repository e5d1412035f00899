"""Features recover the known tempo and chords of rendered pieces; similarity, histograms and the cache."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from aria.errors import ArtefactError, ParameterError
from aria.extract import extract_features
from aria.features import (
    FeatureSettings,
    beat_times,
    chord_labels,
    chord_roots,
    interval_histogram,
    onset_times,
    root_motion,
    track_features,
)
from aria.similarity import sequence_similarity, standardized_similarity
from tests.aria.conftest import PIECES


def _load(path):
    y, sr = sf.read(str(path), dtype="float32")
    return y, sr


def _bin_of(seconds: float, low: float, high: float, n_bins: int) -> int:
    return int((seconds - low) // ((high - low) / n_bins))


@pytest.mark.parametrize("name", ["piano100", "guitar75"])
def test_beat_tracker_recovers_the_tempo(pieces, name):
    bpm = PIECES[name][2]
    y, sr = _load(pieces[name])
    beats = beat_times(y, sr)
    assert np.median(np.diff(beats)) == pytest.approx(60.0 / bpm, rel=0.03)
    hist = track_features(y, sr)["beat_intervals"]
    assert hist.argmax() == _bin_of(60.0 / bpm, 0.2, 2.0, 16)
    assert hist.sum() == pytest.approx(1.0)


def test_onsets_fall_on_the_beats(pieces):
    y, sr = _load(pieces["piano100"])
    assert np.median(np.diff(onset_times(y, sr))) == pytest.approx(0.6, abs=0.03)
    hist = track_features(y, sr)["onset_intervals"]
    assert hist.argmax() == _bin_of(0.6, 0.05, 1.0, 16)


def test_chord_recogniser_recovers_the_progression(pieces):
    y, sr = _load(pieces["piano100"])
    labels = [label for _, _, label in chord_labels(y, sr) if label != "N"]
    assert labels == ["C:maj", "F:maj", "G:maj", "A:min"]
    assert chord_roots(chord_labels(y, sr)).tolist() == [0, 5, 7, 9]


def test_transposition_keeps_the_root_motion(pieces):
    roots = {n: chord_roots(chord_labels(*_load(pieces[n]))) for n in ("piano100", "piano100_up3", "guitar75")}
    assert roots["piano100_up3"].tolist() == [3, 8, 10, 0]
    motion = {n: root_motion(r) for n, r in roots.items()}
    assert motion["piano100"].tolist() == motion["piano100_up3"].tolist() == [5, 2, 2]
    assert motion["guitar75"].tolist() == [7, 10, 7]
    sim = sequence_similarity([motion["piano100"], motion["piano100_up3"], motion["guitar75"]])
    assert sim[0, 1] == 1.0
    assert sim[0, 2] == pytest.approx(0.0)  # no interval in common


def test_track_features_have_the_documented_dimensions(pieces):
    settings = FeatureSettings()
    features = track_features(*_load(pieces["guitar75"]), settings)
    for name, dim in settings.dims().items():
        assert features[name].shape == (dim,), name
        assert np.isfinite(features[name]).all()
    assert features["chords"].dtype.kind == "i"


def test_chord_roots_drop_no_chord_and_merge_repeats():
    labels = [(0, 1, "N"), (1, 2, "C:maj"), (2, 3, "C:min"), (3, 4, "N"), (4, 5, "A#:maj"), (5, 6, "C:maj")]
    assert chord_roots(labels).tolist() == [0, 10, 0]
    assert root_motion(np.array([0, 10, 0])).tolist() == [10, 2]


def test_interval_histogram_by_hand():
    # intervals 0.5, 0.5, 0.7, 3.3 over bins of 0.45 s from 0.2 s; 3.3 s is out of range
    hist = interval_histogram(np.array([0.0, 0.5, 1.0, 1.7, 5.0]), 0.2, 2.0, 4)
    np.testing.assert_allclose(hist, [2 / 3, 1 / 3, 0, 0])
    assert np.isnan(interval_histogram(np.array([1.0]), 0.2, 2.0, 4)).all()  # no interval: undefined


def _lcs(a, b):
    table = np.zeros((len(a) + 1, len(b) + 1), dtype=int)
    for i in range(len(a)):
        for j in range(len(b)):
            table[i + 1, j + 1] = table[i, j] + 1 if a[i] == b[j] else max(table[i, j + 1], table[i + 1, j])
    return table[-1, -1]


@pytest.mark.parametrize(("sizes", "alphabet"), [((0, 9), 4), ((55, 150), 12)])  # short, and over 64 words
def test_sequence_similarity_matches_a_textbook_lcs(sizes, alphabet):
    rng = np.random.default_rng(3)
    count = 23 if sizes[1] < 64 else 7
    seqs = [rng.integers(0, alphabet, size=rng.integers(*sizes)) for _ in range(count)] + [np.zeros(0, dtype=int)]
    seqs.append(seqs[0][::2].copy())
    sim = sequence_similarity(seqs, block=5)
    for i, a in enumerate(seqs):
        for j, b in enumerate(seqs):
            longest = max(len(a), len(b))
            expected = np.nan if longest == 0 else _lcs(a, b) / longest  # two empty ones: undefined
            assert sim[i, j] == pytest.approx(expected, nan_ok=True), (a, b)


def test_standardized_similarity_by_hand():
    X = np.array([[0.0, 0.0, 5.0], [3.0, 1.0, 5.0], [6.0, 4.0, 5.0]])
    std = X.std(axis=0)
    sim = standardized_similarity(X, std)
    d01 = np.sqrt((3 / std[0]) ** 2 + (1 / std[1]) ** 2)  # the constant third dimension is left out
    assert sim[0, 1] == pytest.approx(1 / (1 + d01), rel=1e-6)
    assert np.allclose(np.diag(sim), 1.0) and np.allclose(sim, sim.T)


def test_bad_settings_raise():
    with pytest.raises(ParameterError):
        FeatureSettings(beat_tracker="nope")
    with pytest.raises(ParameterError):
        FeatureSettings(beat_range_s=(2.0, 0.2))


def test_extraction_is_cached(pieces, tmp_path):
    names = ["piano100", "guitar75"]
    paths = [pieces[n] for n in names]
    settings = FeatureSettings()
    first = extract_features(paths, names, settings, tmp_path, workers=1, progress=False)
    cached = sorted((tmp_path / "features" / settings.key).glob("*.npz"))
    assert len(cached) == 2
    stamps = [p.stat().st_mtime_ns for p in cached]
    again = extract_features(paths, names, settings, tmp_path, workers=1, progress=False)
    assert [p.stat().st_mtime_ns for p in cached] == stamps  # read back, not recomputed
    for name in first.vectors:
        np.testing.assert_array_equal(first.vectors[name], again.vectors[name])
    direct = track_features(*_load(pieces["guitar75"]), settings)
    np.testing.assert_allclose(first.vectors["mfcc"][1], direct["mfcc"], rtol=1e-6)
    assert first.sequences["chords"][0].tolist() == [5, 2, 2]
    assert (first.seconds > 0).all()
    other = extract_features(paths[:1], names[:1], FeatureSettings(n_bins=8), tmp_path, progress=False)
    assert other.vectors["beat_intervals"].shape == (1, 8)  # other settings, other cache entry


def test_unreadable_audio_is_named(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(ArtefactError, match="broken.wav"):
        extract_features([bad], ["x"], FeatureSettings(), tmp_path, workers=1, progress=False)
    with pytest.raises(ArtefactError, match="missing.wav"):
        extract_features([tmp_path / "missing.wav"], ["y"], FeatureSettings(), tmp_path, progress=False)
