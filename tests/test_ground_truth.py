"""Ground truth on real retrainings of a tiny generator on a tiny folder corpus: oracle sign, determinism in
parallel workers, resume, the whole command (the metrics on synthetic data: test_groundtruth_metrics.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from scipy import stats

from experiments.ground_truth import ground_truth
from groundtruth.lds import lds_per_query
from groundtruth.planted import holm, two_way_effect
from groundtruth.study import (
    MODELS_DIR,
    PLAN_FILE,
    Study,
    audio_mismatch,
    draw_subset,
    load_study,
    open_study,
    run_subsets,
)
from lumina.configure import layout, load_corpus
from lumina.data.manifest import Manifest
from lumina.models import embedded_recipe, training
from lumina.runs.errors import ParameterError
from lumina.runs.provenance import machine, stamp
from lumina.runs.score_matrix import ScoreMatrix, write_run
from tests.tones import tone

CONF = str(Path(__file__).resolve().parents[1] / "conf")
N_MODELS = 6


# -- real retrainings of a tiny generator -----------------------------------------------------------------------

TRAIN = {  # track id → (description, partial frequencies)
    "t0": ("piano bach", [220, 330]), "t1": ("violin folk", [247, 370]), "t2": ("flute bach", [262, 392]),
    "t3": ("organ palestrina", [294, 440]), "t4": ("organ palestrina", [330, 494]),
    "t5": ("violin folk", [349, 523]), "t6": ("piano bach", [392, 587]), "t7": ("flute bach", [440, 660]),
}
QUERIES = {  # track id → (kind, sources, description, audio made from)
    "q_nc_0": ("near_copy", "t0", "piano bach", "t0"), "q_nc_1": ("near_copy", "t5", "violin folk", "t5"),
    "q_comp_0": ("composition", "t2", "piano bach", [262, 392, 131]),
    "q_prod_0": ("production", "t3;t4", "organ palestrina", [175, 262]),
    "q_ho_0": ("held_out", "", "violin bach", [523, 784]),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A folder corpus: 8 training tones, 5 queries (two exact copies of training tracks) and metadata."""
    root = tmp_path_factory.mktemp("gt_corpus")
    (root / "train").mkdir()
    (root / "queries").mkdir()
    rows = []
    for i, (track, (text, freqs)) in enumerate(TRAIN.items()):
        sf.write(root / "train" / f"{track}.wav", tone(freqs, seconds=2.0, seed=i), 32000)
        rows.append({"track_id": track, "description": text})
    for i, (track, (kind, src, text, made)) in enumerate(QUERIES.items()):
        audio = sf.read(root / "train" / f"{made}.wav")[0] if isinstance(made, str) else tone(made, 2.0, seed=20 + i)
        sf.write(root / "queries" / f"{track}.wav", np.asarray(audio, dtype=np.float32), 32000)
        rows.append({"track_id": track, "description": text, "query_kind": kind, "source_ids": src})
    pd.DataFrame(rows).to_csv(root / "metadata.csv", index=False)
    return root


def tiny_cfg(corpus: Path, outputs: Path, *extra: str, config_name: str = "ground_truth"):
    """The `config_name` config (default ground_truth) on the tiny corpus with a tiny codec, LM and recipe."""
    study = [f"ground_truth.n_models={N_MODELS}", "ground_truth.workers=1", "ground_truth.n_bootstrap=200"]
    overrides = [
        "data=folder", f"data.path={corpus / 'train'}", f"data.queries={corpus / 'queries'}",
        f"data.metadata={corpus / 'metadata.csv'}", f"paths.outputs={outputs}", f"paths.results={outputs / 'results'}",
        "progress=false", "threads=1",
        "model.codec.pitch_codebook_size=8", "model.codec.codebook_size=16", "model.codec.n_mels=32",
        "model.codec.kmeans_iterations=20", "model.lm.num_layers=2", "model.lm.hidden_size=32",
        "model.lm.num_heads=2", "model.lm.ffn_dim=64", "model.lm.text_hidden_size=16", "model.lm.text_layers=1",
        "model.lm.text_heads=2", "model.lm.max_frames=128", "model.train.epochs=40", "model.train.batch_size=4",
        "model.train.crop_frames=48", "model.train.lr=0.003", "model.train.warmup_steps=5",
        "model.train.checkpoints=1", "model.train.resume_every=7",
        *(study if config_name == "ground_truth" else []), *extra,
    ]
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides)


def study_of(cfg: DictConfig, manifest: Manifest) -> Study:
    """The study of `cfg.ground_truth`, as the apps open it (missing models trained)."""
    return open_study(manifest, OmegaConf.to_container(cfg.model, resolve=True), cfg.paths.cache, cfg.ground_truth,
                      progress=False)


@pytest.fixture(scope="module")
def study(corpus, tmp_path_factory):
    cfg = tiny_cfg(corpus, tmp_path_factory.mktemp("gt_out"))
    manifest = load_corpus(cfg)
    return cfg, manifest, study_of(cfg, manifest)


def test_oracle_that_marks_the_duplicate_gets_positive_lds(study):
    _, manifest, result = study
    queries = ["q_nc_0", "q_nc_1"]
    oracle = np.zeros((len(result.train_ids), 2))
    for j, q in enumerate(queries):
        oracle[result.train_ids.index(manifest.sources_of(q)[0]), j] = 1.0
    lds = lds_per_query(oracle, result.membership, result.loss_of(queries))
    assert lds.mean() > 0.5, lds
    assert lds_per_query(-oracle, result.membership, result.loss_of(queries)).mean() < -0.5
    # the model learns its training set: a track's own loss is lower when it is in the subset
    train_losses = result.loss_of(result.train_ids)
    assert np.mean(train_losses[result.membership]) < np.mean(train_losses[~result.membership]) - 0.2
    assert two_way_effect(train_losses, result.membership.astype(float))["t"] < -3


def test_subsets_are_recorded_and_retraining_is_deterministic_in_parallel_workers(study, corpus, tmp_path):
    cfg, manifest, reference = study
    plan = json.loads((reference.folder / PLAN_FILE).read_text())
    assert plan["subsets"] == reference.subsets and len(reference.subsets) == N_MODELS
    assert all(len(s) == len(reference.train_ids) // 2 for s in reference.subsets)
    assert reference.subsets[0] == draw_subset(reference.train_ids, 0.5, 0, 0)
    assert [r["subset_seed"] for r in reference.records] == [[0, m] for m in range(N_MODELS)]
    assert all(r["provenance"]["machine"] == machine() for r in reference.records)  # the machine of its bits
    # same seeds, fresh caches, two spawned worker processes with one thread each → the same bits
    again_cfg = tiny_cfg(corpus, tmp_path, "ground_truth.n_models=2", "ground_truth.workers=2")
    again = study_of(again_cfg, load_corpus(again_cfg))
    assert [r["model_identity"] for r in again.records] == [r["model_identity"] for r in reference.records[:2]]
    np.testing.assert_array_equal(again.losses, reference.losses[:2])
    np.testing.assert_array_equal(again.codebook_losses, reference.codebook_losses[:2])


def test_interrupted_study_resumes_without_retraining_and_gives_the_same_results(study, corpus, tmp_path,
                                                                                  monkeypatch):
    _, _, reference = study
    cfg = tiny_cfg(corpus, tmp_path, "ground_truth.n_models=3")
    manifest = load_corpus(cfg)
    steps = json.loads((Path(reference.records[0]["model_path"]) / "training_record.json").read_text())["steps"]
    real_crop = training.pad_clips
    calls = {"n": 0, "kill_at": steps + steps // 2 + 1}

    def counting_crop(codes, starts, frames):
        if frames == cfg.model.train.crop_frames:  # a training step (evaluation crops whole clips)
            calls["n"] += 1
            if calls["n"] == calls["kill_at"]:
                raise KeyboardInterrupt("killed mid-way through the second model")
        return real_crop(codes, starts, frames)

    monkeypatch.setattr(training, "pad_clips", counting_crop)
    with pytest.raises(KeyboardInterrupt):
        study_of(cfg, manifest)
    first_json = next((tmp_path / "ground_truth").rglob("m000.json"))
    stamp = first_json.stat().st_mtime_ns
    assert not list(first_json.parent.glob("m001.json"))
    interrupted_calls, calls["n"], calls["kill_at"] = calls["n"] - 1, 0, -1
    resumed = study_of(cfg, manifest)
    # the finished model is not trained again; the cut one resumes from its last resume point
    assert first_json.stat().st_mtime_ns == stamp
    assert calls["n"] < 2 * steps + cfg.model.train.resume_every - (interrupted_calls - steps)
    assert calls["n"] + interrupted_calls < 3 * steps + cfg.model.train.resume_every
    np.testing.assert_array_equal(resumed.losses, reference.losses[:3])
    assert [r["model_identity"] for r in resumed.records] == [r["model_identity"] for r in reference.records[:3]]


def test_a_record_of_other_audio_is_refused_then_measured_again_without_retraining(study, tmp_path, monkeypatch):
    """Each record names the audio hash of every track it measured: a study whose clips changed is refused by
    its readers (naming the stage to rerun), and the stage measures that record again on the cached model, with
    the same losses, training nothing."""
    import shutil

    cfg, manifest, reference = study
    assert all(audio_mismatch(r, manifest) == "" for r in reference.records)
    assert reference.records[0]["audio_sha256"]["q_nc_0"] == manifest.audio_key("q_nc_0")
    folder = tmp_path / reference.folder.name
    shutil.copytree(reference.folder, folder)
    record_path = folder / MODELS_DIR / "m001.json"
    record = json.loads(record_path.read_text())
    record["audio_sha256"]["q_nc_0"] = "0" * 64  # as if q_nc_0 had been decoded otherwise when it was measured
    record["losses"] = [0.0] * len(record["losses"])
    record_path.write_text(json.dumps(record))
    assert load_study(folder).n_models == reference.n_models  # read without a corpus: nothing to check against
    with pytest.raises(ParameterError, match=r"m001.json: the audio of track q_nc_0 differs.*experiments.subsets"):
        load_study(folder, manifest=manifest)
    monkeypatch.setattr(embedded_recipe, "train_lm", lambda *a, **k: pytest.fail("a model was trained again"))
    again = run_subsets(manifest, OmegaConf.to_container(cfg.model, resolve=True), cfg.paths.cache, folder,
                        n_models=reference.n_models, workers=1, progress=False)
    np.testing.assert_array_equal(again.losses, reference.losses)
    assert json.loads(record_path.read_text())["audio_sha256"] == reference.records[1]["audio_sha256"]


def test_ground_truth_command_on_the_tiny_study(study):
    cfg, manifest, result = study
    results = Path(cfg.ground_truth.results)
    runs = Path(cfg.ground_truth.runs or layout(cfg, manifest).runs)  # null: the experiment's runs
    queries = manifest.query_ids
    train = result.train_ids
    oracle = np.zeros((len(train), len(queries)))
    for j, q in enumerate(queries):
        for s in manifest.sources_of(q):
            oracle[train.index(s), j] = 1.0
    noise = np.random.default_rng(0).standard_normal(oracle.shape)
    board = []
    for i, (method, setting, scores) in enumerate([
            ("oracle", "planted", oracle), ("random", "gaussian", noise), ("lumina", "lumina-P", oracle + 0.01 * noise),
            ("lumina", "lumina-M", noise)]):
        matrix = ScoreMatrix(scores, train, queries, method=method, setting=setting)
        write_run(runs / method / setting, {"method": method, "setting": setting}, stamp(), matrix)
        # what `python -m experiments.leaderboard` would leave: z per query in the run folder, z̄ in the board
        z = np.random.default_rng(i).standard_normal((len(queries), 3))
        pd.DataFrame({"query_id": queries, "stage": "original", "k": 10, "rhythm": z[:, 0], "harmony": z[:, 1],
                      "timbre": z[:, 2]}).to_csv(runs / method / setting / "aria_queries.csv", index=False)
        board.append({"method": method, "setting": setting, "rhythm_z": z[:, 0].mean(), "harmony_z": z[:, 1].mean(),
                      "timbre_z": z[:, 2].mean(), "rank": i + 1})
    Path(cfg.ground_truth.leaderboard).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(board).to_csv(cfg.ground_truth.leaderboard, index=False)
    table = ground_truth(cfg, "python -m experiments.ground_truth <tiny>")
    written = pd.read_csv(results / "ground_truth.csv")
    assert list(written.columns[:8]) == ["method", "setting", "lds", "lds_ci_low", "lds_ci_high",
                                         "near_copy_hit_at_10", "composition_hit_at_10", "production_hit_at_10"]
    assert len(written) == 4 and (written["command"] == "python -m experiments.ground_truth <tiny>").all()
    by = table.set_index("setting")
    assert by.loc["planted", "lds_near_copy"] > 0.5
    assert by.loc["planted", "near_copy_mrr"] == 1.0 and by.loc["planted", "near_copy_hit_at_10"] == 1.0
    assert by.loc["planted", "lds_ci_low"] <= by.loc["planted", "lds"] <= by.loc["planted", "lds_ci_high"]
    channels = pd.read_csv(results / "ground_truth_channels.csv")
    assert set(channels["kind"]) == {"composition", "production"}
    assert channels.set_index("kind").loc["composition", "mrr"] == 1.0
    agreement = pd.read_csv(results / "ground_truth_aria.csv").set_index(["aria", "truth"])
    kept = written[~written["collapsed"]]
    assert agreement.loc[("harmony_z", "lds"), "n"] == len(kept) >= 3
    assert agreement.loc[("harmony_z", "lds"), "spearman"] == pytest.approx(
        stats.spearmanr(kept["aria_harmony_z"], kept["lds"]).statistic)
    assert agreement.loc[("rho1", "lds"), "spearman"] == pytest.approx(
        stats.spearmanr(-kept["rho1"], kept["lds"]).statistic)
    production = [q for q in queries if manifest.row(q)["query_kind"] == "production"]
    assert agreement.loc[("timbre_z", "production_precision_at_10 per query"), "n"] == len(production)  # queries
    assert {"top1_effect", "top1_p", "top10_effect", "top10_p"} <= set(written.columns)
    np.testing.assert_allclose(written["top1_p_holm"], holm(written["top1_p"]))  # Holm over the settings
    # the oracle ranks each planted query's sources first: their presence lowers its loss on the tiny study
    assert by.loc["planted", "top1_effect"] < 0
    readme = (results / "README.md").read_text()
    assert "python -m experiments.ground_truth <tiny>" in readme and "## Findings" in readme
    assert "## The top-ranked tracks, in vs out of the subset models" in readme and "**Top-1 in vs out**" in readme
    assert (results / "planted_influence.md").is_file()


def test_causal_verification_on_the_tiny_corpus_and_its_rerun_from_the_caches(corpus, tmp_path, monkeypatch):
    from experiments.causal_verification import verify
    from lumina.models import embedded_recipe as embedded
    cfg = tiny_cfg(corpus, tmp_path, "causal.queries=2", config_name="causal_verification")
    rows = verify(cfg)
    assert [(r["query"], r["role"]) for r in rows] == [(q, role) for q in ("q_nc_0", "q_comp_0")
                                                       for role in ("top", "control", "top_kept")]
    for top, control, kept in zip(rows[::3], rows[1::3], rows[2::3], strict=True):
        assert top["measured"] == top["removed"] and top["rank_before"] == 1
        assert control["measured"] == control["removed"] and 3 <= control["rank_before"] <= 6  # middle third of 8
        # top_kept: the top song measured in the control's model, where it stayed in training
        assert (kept["measured"], kept["removed"], kept["model"]) == (top["measured"], control["removed"],
                                                                      control["model"])
        assert kept["cosine_before"] == top["cosine_before"] and top["model"] != control["model"]
        for r in (top, control, kept):
            assert math.isclose(r["drop"], r["cosine_before"] - r["cosine_after"])
            assert r["passed"] == (r["drop"] >= 2 * r["sigma"])
    table = (tmp_path / "results" / "causal_verification.md").read_text()
    assert "2 of 2 queries done" in table and "| top_kept |" in table
    assert len(pd.read_csv(tmp_path / "results" / "causal_verification.csv")) == 6
    # a rerun retrains nothing: the same rows from the cached models and signatures
    monkeypatch.setattr(embedded, "train_lm", lambda *a, **k: pytest.fail("a cached model was trained again"))
    assert verify(cfg) == rows
