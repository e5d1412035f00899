"""Unlearning's self-influence check (groundtruth.self_influence): ranks by hand, the tables in the format the
committed results had, and the check itself on a tiny corpus and model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from groundtruth.self_influence import SOURCE_TABLE, run_check, self_ranks, summary, write_results
from lumina.configure import method_context
from lumina.methods.options import UnlearningOptions
from lumina.models.embedded_recipe import EmbeddedModelConfig, train_embedded
from lumina.models.training import TrainConfig
from lumina.runs.layout import Layout
from tests.generator_fixtures import TINY_CODEC, TINY_LM


def test_self_ranks_by_hand() -> None:
    scores = np.array([[5.0, 1.0, 0.0], [2.0, 3.0, 9.0], [7.0, 3.0, 1.0]])
    # target 0 in column 0: 7 > 5 → rank 2; target 1 in column 1: a tie is not above it → rank 1; target 2: rank 2
    assert self_ranks(scores, np.array([0, 1, 2])).tolist() == [2, 1, 2]


def table(ranks: dict[tuple[str, bool], list[int]]) -> pd.DataFrame:
    return pd.DataFrame([{"target": t, "silence_mask": m, "segment": i, "track_id": f"t{i}", "start_s": 0.0,
                          "rank": r, "n_segments": 360, "self_tau": 1.0, "max_other_tau": 0.5}
                         for (t, m), rs in ranks.items() for i, r in enumerate(rs)])


def test_the_tables_keep_the_committed_format(tmp_path) -> None:
    """The summary lines of the last committed self_influence.md (git 7611d35^), from ranks that give them."""
    check = table({("cross_attn_kv", True): [1, 1, 1, 1, 1, 1, 2, 3], ("layers", False): [1] * 7 + [2]})
    options = {"steps": 8, "lr": 0.0001, "optimizer": "adam", "fisher_samples": 64, "silence_db": -50.0}
    path = write_results(check, tmp_path, "python -m experiments.self_influence", options)
    assert path.read_text() == "\n".join([
        "# Unlearning self-influence check (docs/sources.md#unlearning-poster-table-1)", "",
        "Command: `python -m experiments.self_influence`", "",
        "Each sampled training segment is unlearned as a query; R(z_tar) is its rank among all 360 training segments "
        "by loss change (1 = best). Options: steps=8, lr=0.0001, optimizer=adam, fisher_samples=64, silence_db=-50.0.",
        "", "| target | silence_mask | R(z_tar) mean | median | ranked first | worst |", "|---|---|---|---|---|---|",
        "| cross_attn_kv | True | 1.38 | 1.0 | 6/8 | 3 |", "| layers | False | 1.12 | 1.0 | 7/8 | 2 |", "",
        "Per segment: `self_influence.csv`.", "", SOURCE_TABLE, ""])
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "self_influence.csv"), check)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["self_influence.csv", "self_influence.md"]


@pytest.fixture(scope="module")
def unlearning_context(tiny_corpus, tmp_path_factory):
    """Unlearning on four training tracks of the tiny corpus cut into 1 s segments (12), a tiny trained model."""
    corpus = tiny_corpus.subset(tiny_corpus.train_ids[:4] + tiny_corpus.query_ids[:1])
    config = EmbeddedModelConfig(codec=TINY_CODEC, lm=TINY_LM, train=TrainConfig(
        epochs=2, batch_size=2, crop_frames=48, warmup_steps=1, checkpoints=0, resume_every=1000))
    cache = tmp_path_factory.mktemp("self_influence")
    options = UnlearningOptions(steps=2, lr=0.01, fisher_samples=6, segment_s=1.0)
    return method_context(corpus, options, Layout(cache, cache / "runs", "tiny"),
                          lambda train_ids=None: train_embedded(corpus, config, cache, train_ids=train_ids,
                                                                progress=False), progress=False)


def test_run_check_ranks_each_unlearned_segment_among_all(unlearning_context) -> None:
    check = run_check(unlearning_context, samples=3, seed=0, settings=[([-1], False), ("layers", True)])
    assert len(check) == 6 and set(check["n_segments"]) == {12}
    assert check["silence_mask"].tolist() == [False] * 3 + [True] * 3
    segments = check["segment"].tolist()
    assert segments[:3] == segments[3:] == sorted(set(segments[:3]))  # the same three segments for each setting
    assert check["rank"].between(1, 12).all()
    # rank 1 exactly when no other segment's loss changed more than the unlearned one's
    assert ((check["rank"] == 1) == (check["self_tau"] >= check["max_other_tau"])).all()
    assert check["track_id"].isin(unlearning_context.manifest.train_ids[:4]).all()
    again = run_check(unlearning_context, samples=3, seed=0, settings=[([-1], False)])  # from the cache
    pd.testing.assert_frame_equal(again, check.iloc[:3])
    assert summary(check)["ranked first"].str.endswith("/3").all()
