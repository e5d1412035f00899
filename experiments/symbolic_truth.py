"""Ground truth of the symbolic setting and Aria's Table 1 put to the test (docs/symbolic.md#ground-truth).

    python -m experiments.symbolic_truth data=chorales model=musictransformer \
        data.generated_dir=results/symbolic/generated

Reads the finished subset models of the study (`python -m experiments.subsets` with the same overrides trains
them; this app trains none), judges every run of the experiment with LDS on the last-token target (primary)
and the whole-window loss, planted retrieval per kind and Aria's reliability diagnostics, attaches the
symbolic leaderboard's channel z̄, and writes `ground_truth.csv`, `planted_influence.csv` and `table1.csv`
into `symbolic.results`, with `tables.md` (every table in Markdown and the criterion's verdicts computed).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import hydra
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from aria.channels import SYMBOLIC
from execution.files import write_text
from groundtruth.agreement import RELIABILITY, attach_aria, diagnostics_against_truth
from groundtruth.identity import write_truth_identity
from groundtruth.judge import judge_runs
from groundtruth.lds import own_effect_to_spread
from groundtruth.planted import planted_effects
from groundtruth.study import Study, load_study, study_folder
from groundtruth.tables import symbolic_tables
from lumina.configure import configure_runtime, layout, load_corpus
from lumina.runs.errors import ParameterError
from lumina.runs.provenance import command_line


def judged(cfg: DictConfig) -> tuple[pd.DataFrame, pd.DataFrame, Study, str]:
    """(ground-truth table with `lds` (last token) and `lds_window` per setting, planted in-vs-out effects,
    the subset study, the catalogue key of the corpus judged)."""
    gt = cfg.ground_truth
    manifest = load_corpus(cfg)
    model = OmegaConf.to_container(cfg.model, resolve=True)
    study = load_study(study_folder(gt.dir, manifest, model, float(gt.fraction), int(gt.subset_seed)),
                       manifest=manifest)
    if study.last_losses is None:
        raise ParameterError(f"{study.folder}: its records hold no last-step losses; retrain the study")
    options = {"k": int(gt.k), "n_bootstrap": int(gt.n_bootstrap), "confidence": float(gt.confidence),
               "seed": int(gt.seed), "collapse_rho1": float(cfg.aria.collapse_rho1),
               "collapse_concentration": float(cfg.aria.collapse_concentration),
               "headline_k": int(cfg.aria.headline_k), "leaderboard": "", "channel_names": SYMBOLIC.names}
    runs = layout(cfg, manifest).runs
    last, _, _ = judge_runs(runs, dataclasses.replace(study, losses=study.last_losses), manifest, **options)
    window, _, _ = judge_runs(runs, study, manifest, **options)
    window = window[["method", "setting", "lds", "lds_ci_low", "lds_ci_high"]].rename(
        columns={"lds": "lds_window", "lds_ci_low": "lds_window_ci_low", "lds_ci_high": "lds_window_ci_high"})
    table = last.drop(columns=[c for c in last.columns if c.startswith("aria_")]).merge(window,
                                                                                         on=["method", "setting"])
    table = attach_aria(table, Path(cfg.symbolic.results) / "leaderboard.csv", SYMBOLIC.names)
    effects, _ = planted_effects(study, manifest, seed=int(gt.seed))
    return table, effects, study, manifest.catalogue_key


def symbolic_truth(cfg: DictConfig, command: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Write `ground_truth.csv` (with `truth.json`, what it was measured on), `planted_influence.csv` and
    `table1.csv` (each row stamped with `command`) and `tables.md` (`groundtruth.tables.symbolic_tables`) into
    `symbolic.results`; returns the three tables."""
    table, effects, study, catalogue_key = judged(cfg)
    train = study.train_ids
    targets = pd.DataFrame([  # can each LDS target show a window's influence on itself at all?
        {"target": "lds", **own_effect_to_spread(dataclasses.replace(study, losses=study.last_losses).loss_of(train),
                                                 study.membership)},
        {"target": "lds_window", **own_effect_to_spread(study.loss_of(train), study.membership)}])
    agreement = diagnostics_against_truth(table, dict(cfg.symbolic.paper_methods), SYMBOLIC.names)
    out = Path(cfg.symbolic.results)
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in (("ground_truth", table), ("planted_influence", effects), ("table1", agreement)):
        frame.assign(command=command).to_csv(out / f"{name}.csv", index=False)
    write_truth_identity(out, study, command, catalogue_key=catalogue_key)
    write_text(out / "tables.md", symbolic_tables(
        table, effects, agreement, targets, command, study.n_models, dict(cfg.symbolic.paper_methods),
        dict(cfg.symbolic.paper_lds), dict(cfg.symbolic.paper_names), SYMBOLIC.names))
    return table, effects, agreement


@hydra.main(config_path="../conf", config_name="symbolic_truth", version_base="1.3")
def main(cfg: DictConfig) -> None:
    configure_runtime(cfg)
    table, _, agreement = symbolic_truth(cfg, command_line("experiments.symbolic_truth"))
    shown = ["method", "setting", "lds", "lds_ci_low", "lds_ci_high", "lds_window", *RELIABILITY]
    print(table[shown].sort_values("lds", ascending=False).to_string(index=False))
    print(agreement.to_string(index=False))
    print(f"written to {cfg.symbolic.results}/ground_truth.csv, planted_influence.csv, table1.csv")


if __name__ == "__main__":
    main()
