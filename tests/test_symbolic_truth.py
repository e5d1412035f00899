"""`python -m experiments.symbolic_truth` end to end on a tiny MIDI folder: four real subset retrainings of a
tiny MusicTransformer, hand-made score matrices for the paper's four methods (an oracle that names each
planted source, its negation, noise) and a circular retrieval row; the written tables are checked against
scipy computed here from the same columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from scipy import stats

from experiments.symbolic_truth import symbolic_truth
from groundtruth.study import open_study
from lumina.configure import layout, load_corpus
from lumina.runs.errors import ParameterError
from lumina.runs.provenance import stamp
from lumina.runs.score_matrix import ScoreMatrix, write_run
from tests.test_symbolic import TINY_ARCH, midi_folder

CONF = str(Path(__file__).resolve().parents[1] / "conf")
SETTINGS = {  # (method, setting) → how its scores are made from the oracle O and noise N
    ("trak", "k2048-x4-L0.1"): lambda o, n: o + 0.05 * n,
    ("tracin", "raw-L0.1"): lambda o, n: o + 0.5 * n,
    ("gradcos", "raw"): lambda o, n: n,
    ("graddot", "raw"): lambda o, n: -o + 0.05 * n,
    ("symbolic", "cosine"): lambda o, n: o + 0.2 * n,
}


def test_symbolic_truth_on_a_tiny_study(tmp_path):
    folder = midi_folder(tmp_path / "midi", n_pieces=8)
    overrides = [
        "data=chorales", "data.source=folder", f"data.path={folder}", "data.window=48",
        "data.queries.near_copy=3", "data.queries.composition=2", "data.queries.held_out=1",
        "model=musictransformer", *[f"model.arch.{k}={v}" for k, v in TINY_ARCH.items()],
        "model.train.epochs=20", "model.train.batch_size=4", "model.train.lr=0.01", "model.train.warmup_steps=5",
        "model.train.checkpoints=1", "ground_truth.n_models=4", "ground_truth.workers=1",
        "ground_truth.n_bootstrap=200", f"paths.outputs={tmp_path / 'out'}", f"paths.results={tmp_path / 'results'}",
        "progress=false", "threads=1",
    ]
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name="symbolic_truth", overrides=overrides)
    manifest = load_corpus(cfg)
    train, queries = manifest.train_ids, manifest.query_ids
    oracle = np.zeros((len(train), len(queries)))
    for j, q in enumerate(queries):
        for source in manifest.sources_of(q):
            oracle[train.index(source), j] = 1.0
    runs = layout(cfg, manifest).runs
    board = []
    for i, ((method, setting), make) in enumerate(SETTINGS.items()):
        noise = np.random.default_rng(i).standard_normal(oracle.shape)
        matrix = ScoreMatrix(make(oracle, noise), train, queries, method=method, setting=setting)
        write_run(Path(runs) / method / setting, {"method": method, "setting": setting}, stamp(), matrix)
        board.append({"method": method, "setting": setting, "melody_z": float(i), "harmony_z": -float(i),
                      "rhythm_z": 0.5, "dynamic_z": 0.1 * i, "texture_z": 1.0 - i, "rank": i + 1})
    results = Path(cfg.symbolic.results)
    results.mkdir(parents=True)
    pd.DataFrame(board).to_csv(results / "leaderboard.csv", index=False)

    with pytest.raises(ParameterError, match="experiments.subsets"):  # this app trains no subset model
        symbolic_truth(cfg, "python -m experiments.symbolic_truth <tiny>")
    study = open_study(manifest, OmegaConf.to_container(cfg.model, resolve=True), cfg.paths.cache, cfg.ground_truth,
               progress=False)  # what `python -m experiments.subsets` does: 4 tiny retrainings
    table, effects, table1 = symbolic_truth(cfg, "python -m experiments.symbolic_truth <tiny>")

    written = {name: pd.read_csv(results / f"{name}.csv") for name in ("ground_truth", "planted_influence", "table1")}
    assert all((t["command"] == "python -m experiments.symbolic_truth <tiny>").all() for t in written.values())
    by = table.set_index("setting")
    assert len(table) == len(SETTINGS)
    # the oracle ranks the planted sources first; its negation last; both LDS targets are there with intervals
    assert by.loc["k2048-x4-L0.1", "near_copy_mrr"] == 1.0
    oracle_row, negated_row = by.loc["k2048-x4-L0.1"], table[table["method"] == "graddot"].iloc[0]
    for target in ("lds", "lds_window"):
        assert oracle_row[target] > 0 > negated_row[target]
    for target in ("lds", "lds_window"):
        assert (table[f"{target}_ci_low"] <= table[target]).all()
        assert (table[target] <= table[f"{target}_ci_high"]).all()
    assert by.loc["cosine", "aria_melody_z"] == 4.0  # the leaderboard's channel z̄ joined by setting
    assert {"near_copy", "composition"} <= set(effects["group"])  # each kind's in-vs-out effect, queries as units
    near = effects.set_index("group").loc["near_copy"]  # at most one degree of freedom per query, less one
    assert near["n_tracks"] == 3 and 1 <= near["dof"] <= 2

    # Table 1: each diagnostic's τ over the paper's four methods, oriented as Aria reads it (lower ρ₁ is better)
    four = table[table["method"].isin(["trak", "tracin", "gradcos", "graddot"])]
    row = table1[(table1["diagnostic"] == "rho1") & (table1["truth"] == "lds") & (table1["over"] == "four methods")]
    expected = stats.kendalltau(-four["rho1"], four["lds"])
    assert row["kendall"].item() == pytest.approx(expected.statistic)
    assert row["kendall_p"].item() == pytest.approx(expected.pvalue)
    # channel rows leave out the circular retrieval baseline: four settings, not five
    melody = table1[(table1["diagnostic"] == "melody_z") & (table1["truth"] == "lds")]
    assert melody["over"].item() == "all settings but symbolic" and melody["n"].item() == 4
    family = table1[(table1["truth"] == "lds") & (table1["over"] == "four methods")]
    assert (family["kendall_p_holm"] >= family["kendall_p"] - 1e-12).all()
    # tables.md: the paper's LDS beside ours, each in decreasing order, and the criterion's verdict
    tables = (results / "tables.md").read_text()
    paper = "| Aria paper, Table 1 (LDS) | 0.318 | 0.149 | 0.112 | 0.089 | TRAK > TracIn > Grad-Cos > GradDot |"
    assert paper in tables
    labels = {"trak": "TRAK", "tracin": "TracIn", "gradcos": "Grad-Cos", "graddot": "GradDot"}
    ours = four.sort_values("lds", ascending=False)
    assert ("| here, last-token LDS | " + " | ".join(f"{four.set_index('method').loc[m, 'lds']:.3f}" for m in labels)
            + " | " + " > ".join(labels[m] for m in ours["method"]) + " |") in tables
    exact = table1[(table1["truth"] == "lds") & (table1["over"] == "four methods") & (table1["kendall"] > 0.999)]
    assert ("exactly as the last-token LDS does (τ = 1): " + (", ".join(exact["diagnostic"]) or "none")) in tables
    # how much each target can show: the whole-window row recomputed from the study by hand
    losses, member = study.loss_of(train), study.membership
    varied = [j for j in range(len(train)) if 0 < member[:, j].sum() < len(member)]
    effect = np.mean([losses[member[:, j], j].mean() - losses[~member[:, j], j].mean() for j in varied])
    assert f"| lds_window | {effect:.3f} | {losses.std(axis=0).mean():.3f} |" in tables
