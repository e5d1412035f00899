"""Beatless and too-short audio (docs/aria.md#beatless-and-short-audio): "no beat" is a missing value that the
similarity and homogeneity leave out, empty chord sequences are not identical, short clips are named."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from aria.channels import AUDIO
from aria.errors import ArtefactError, ParameterError
from aria.extract import extract_features
from aria.features import MIN_DURATION_S, FeatureSettings, beat_times, has_beat, track_features
from aria.homogeneity import group_similarity, group_values, null_distribution
from aria.similarity import feature_std, sequence_similarity, standardized_similarity

SR = 22050


def _beatless() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(8 * SR) / SR
    return {"white noise": (0.3 * rng.standard_normal(t.size)).astype(np.float32),
            "drone": (0.3 * np.sin(2 * np.pi * 110 * t) + 0.2 * np.sin(2 * np.pi * 165 * t)).astype(np.float32)}


@pytest.mark.parametrize("name", ["white noise", "drone"])
def test_noise_and_drones_have_no_beat(name):
    y = _beatless()[name]
    assert len(beat_times(y, SR, min_activation=0.0)) >= 5, "the tracker alone decodes a steady tempo anyway"
    assert len(beat_times(y, SR, min_activation=FeatureSettings().min_beat_activation)) == 0
    features = track_features(y, SR)
    assert np.isnan(features["beat_intervals"]).all() and not has_beat(features["beat_intervals"])
    assert np.isfinite(features["mfcc"]).all()


def test_music_keeps_its_beat(pieces):
    y, sr = sf.read(str(pieces["piano100"]), dtype="float32")
    hist = track_features(y, sr)["beat_intervals"]
    assert has_beat(hist) and hist.sum() == pytest.approx(1.0)


def test_two_beatless_tracks_are_not_maximally_similar():
    X = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [np.nan, np.nan], [np.nan, np.nan]])
    std = feature_std(X)
    np.testing.assert_allclose(std, X[:3].std(axis=0))  # over the tracks that have a beat
    sim = standardized_similarity(X, std)
    assert np.isnan(sim[3:, :]).all() and np.isnan(sim[:, 3:]).all()
    np.testing.assert_allclose(sim[:3, :3], standardized_similarity(X[:3], std))
    # a group of the two beatless tracks has no defined pair; with a third track only the defined pairs count
    groups = np.array([[3, 4, 0], [0, 1, 2], [0, 1, 3]])
    value = group_similarity(sim, groups)
    assert np.isnan(value[0])
    assert value[1] == pytest.approx((sim[0, 1] + sim[0, 2] + sim[1, 2]) / 3)
    assert value[2] == pytest.approx(sim[0, 1])


def test_empty_chord_sequences_are_undefined_not_identical():
    sim = sequence_similarity([np.zeros(0, dtype=int), np.zeros(0, dtype=int), np.array([2, 5])])
    assert np.isnan(sim[0, 1]) and np.isnan(sim[0, 0])
    assert sim[0, 2] == 0.0 and sim[2, 2] == 1.0


def test_rhythm_channel_of_beatless_groups_is_their_onsets_alone():
    rng = np.random.default_rng(1)
    n = 12
    beat = rng.random((n, 4))
    beat[:4] = np.nan  # four tracks without a beat
    onset = rng.random((n, 4))
    sims = {f: standardized_similarity(rng.random((n, 3)), np.ones(3)) for f in AUDIO.features}
    sims["beat_intervals"] = standardized_similarity(beat, feature_std(beat))
    sims["onset_intervals"] = standardized_similarity(onset, feature_std(onset))
    groups = np.array([[0, 1, 2, 3], [4, 5, 6, 7]])
    features, channels = group_values(sims, groups)
    assert np.isnan(features["beat_intervals"][0])
    assert channels["rhythm"][0] == pytest.approx(features["onset_intervals"][0])
    assert channels["rhythm"][1] == pytest.approx((features["beat_intervals"][1] + features["onset_intervals"][1]) / 2)
    null = null_distribution(sims, 4, n_groups=200, seed=0)
    assert all(np.isfinite([v["mu"], v["sigma"]]).all() for v in null["channels"].values())


def test_too_short_clip_is_named_with_the_minimum(tmp_path):
    short = np.sin(np.arange(int(0.01 * SR)) / 3).astype(np.float32)
    with pytest.raises(ParameterError, match=f"shorter than the {MIN_DURATION_S:g} s"):
        track_features(short, SR)
    path = tmp_path / "blip.wav"
    sf.write(path, short, SR)
    with pytest.raises(ArtefactError, match=r"blip\.wav: 0\.010 s of audio is shorter than the 1 s"):
        extract_features([path], ["blip"], FeatureSettings(), tmp_path, workers=1, progress=False)
