"""Is each query attributable at all? The abstention study over every method setting of this experiment.

    python -m experiments.abstention
    python -m experiments.abstention abstention.results=results/seed0
    python -m experiments.abstention method.mode=jl      # LUMINA's settings from its jl database

Per setting: the signals of every query (lumina.methods.attributable), the rule chosen and fitted on the calibration
half (near-copies against held-out and out-of-domain queries), its rates on the evaluation half, and the per-query
verdicts written into the run folder (`abstention.csv`, joined by Aria's per-query table). For LUMINA (its options
`method.*`, conf/method/lumina.yaml: the database they sign into, the gates they score with), the false-share rate
of each gate before and after abstention. Writes `abstention.{md,csv,json}` and `figures/abstention_roc.png` into
`abstention.results` (docs/abstention.md).
"""

from __future__ import annotations

from pathlib import Path

import hydra
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from groundtruth.abstention import (
    evaluate_setting,
    loss_signal,
    lumina_checks,
    query_table,
    setting_signals,
    study_provenance,
    track_losses,
    write_flags,
)
from groundtruth.judge import find_matrices
from groundtruth.tables import write_abstention_report
from lumina.configure import configure_runtime, generator_loader, layout, load_corpus
from lumina.methods.lumina.checks import LuminaOptions, ScoringConfig, catalogue_database, reference_tops
from lumina.methods.options import options_for
from lumina.runs.cli import one_line_errors
from lumina.runs.errors import ParameterError
from lumina.runs.provenance import command_line


def lumina_options(cfg: DictConfig) -> LuminaOptions:
    """LUMINA's options as configured (`method.*`, conf/method/lumina.yaml with the command's overrides)."""
    return options_for("lumina", OmegaConf.to_container(cfg.method, resolve=True))  # type: ignore[return-value]


@hydra.main(config_path="../conf", config_name="abstention", version_base="1.3")
@one_line_errors("experiments.abstention")
def main(cfg: DictConfig) -> None:
    configure_runtime(cfg)
    options, lumina = cfg.abstention, lumina_options(cfg)
    manifest = load_corpus(cfg)
    runs = Path(options.runs or layout(cfg, manifest).runs)
    matrices, refused = find_matrices(runs)
    if not matrices:
        raise ParameterError(f"{runs}: no finished runs (python -m experiments.run +method=NAME)")
    generator = generator_loader(cfg, manifest)()
    losses = track_losses(generator, manifest, Path(cfg.paths.cache))
    reference = manifest.control_ids if len(manifest.control_ids) >= 3 else manifest.train_ids
    queries = query_table(manifest, manifest.query_ids, int(options.split_seed))
    loss_z = dict(zip(queries["query_id"], loss_signal(losses, queries["query_id"], reference), strict=True))
    db = catalogue_database(lumina, cfg.paths.cache, generator, manifest)
    tops = reference_tops(db) if db is not None and len(db.ids("control")) >= 3 else {}
    rows, rocs, flags_by_setting = [], {}, {}
    for folder, artefact in matrices:
        reference_top = tops.get(artefact.setting) if artefact.method == "lumina" else None
        signals = setting_signals(artefact, queries, loss_z, reference_top)
        row, flags, curve = evaluate_setting(signals, list(options.signals),
                                             max_false_rate=float(options.max_false_rate))
        write_flags(flags, folder)
        rows.append({"method": artefact.method, "setting": artefact.setting, **row})
        rocs[f"{artefact.method}/{artefact.setting}"] = curve
        flags_by_setting[artefact.setting] = flags
    gates, description = (lumina_checks(db, generator, manifest, queries, tops, flags_by_setting,
                                        list(options.gates), bool(options.empty_description),
                                        max_false_rate=float(options.max_false_rate),
                                        scoring=ScoringConfig.from_options(lumina.as_dict()))
                          if db is not None else (pd.DataFrame(), pd.DataFrame()))
    provenance = study_provenance(command_line("experiments.abstention"),
                                  {"abstention": OmegaConf.to_container(options, resolve=True),
                                   "method": lumina.as_dict()}, manifest, runs, matrices, generator, db)
    path = write_abstention_report(pd.DataFrame(rows), gates, rocs, queries, refused, Path(options.results),
                                   provenance, description)
    print(pd.DataFrame(rows)[["method", "setting", "signal", "evaluation_auc", "recall_near_copy",
                              "false_share_negatives"]].to_string(index=False))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
