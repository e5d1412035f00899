"""The abstention study (docs/abstention.md#how-the-rules-are-measured): per method setting, which signal tells
queries with a measured source (near-copies) from queries without one (held-out music, out-of-domain audio),
with the operating point fitted on one half of the queries and the rates reported on the other.

Composition, production, sample and generated queries are reported apart: similar to training songs, or of
unknown origin, not measured influence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from aria.io import ScoreArtefact
from aria.normalize import track_scores
from groundtruth.study import study_losses
from lumina.data.audio import file_sha256
from lumina.data.manifest import Manifest
from lumina.methods.attributable import (
    DIRECTIONS,
    HALVES,
    NEGATIVE_KINDS,
    POSITIVE_KINDS,
    choose_rule,
    column_signals,
    fit_rule,
    flag_queries,
    reference_z,
    roc,
    split_halves,
)
from lumina.methods.lumina.checks import ScoringConfig, SignatureDatabase, empty_description_tops, gate_shares
from lumina.models.codes import encode_tracks
from lumina.models.protocol import Generator
from lumina.runs.provenance import Provenance, relative, stamp

QUERIES_FILE = "abstention.csv"
"""Per-query verdicts written into each run folder (Aria's per-query table joins them)."""


def query_table(manifest: Manifest, query_ids: Sequence[str], seed: int) -> pd.DataFrame:
    """query_id, kind and half (calibration | evaluation, stratified by kind) of the queries."""
    kinds = [str(manifest.row(q)["query_kind"]) for q in query_ids]
    return pd.DataFrame({"query_id": list(query_ids), "kind": kinds, "half": split_halves(query_ids, kinds, seed)})


def loss_signal(losses: Mapping[str, float], queries: Sequence[str], reference: Sequence[str]) -> np.ndarray:
    """`loss_z` of each query: its generator loss against the reference tracks' losses (Q,)."""
    return reference_z(np.array([losses[q] for q in queries]), np.array([losses[t] for t in reference]))


def setting_signals(artefact: ScoreArtefact, queries: pd.DataFrame, loss_z: Mapping[str, float],
                    reference_tops: np.ndarray | None = None) -> pd.DataFrame:
    """Every signal of every query of one matrix (rows in `queries` order; queries the matrix lacks are NaN).

    `reference_tops`: the top scores of reference queries (control tracks) in the matrix's units, when the method
    can score them (LUMINA's cosine settings); otherwise `reference_z` is NaN."""
    tracks = track_scores(artefact.scores, artefact.segment_track, artefact.track_ids, None)
    signals = column_signals(tracks).assign(query_id=artefact.query_ids)
    signals["top_track"] = [artefact.track_ids[i] for i in signals["top_track"]]
    signals["reference_z"] = (reference_z(signals["top_score"].to_numpy(), reference_tops)
                              if reference_tops is not None else np.nan)
    out = queries.merge(signals, on="query_id", how="left")
    out["loss_z"] = out["query_id"].map(loss_z).astype(float)
    return out


def evaluate_setting(signals: pd.DataFrame, candidates: Sequence[str], *, max_false_rate: float
                     ) -> tuple[dict, pd.DataFrame, dict]:
    """Fit the rule on the calibration half, flag every query, measure on the evaluation half.

    Returns (summary row, per-query flags, ROC of the chosen signal on the evaluation half {fpr, tpr, auc})."""
    labelled = signals[signals["kind"].isin(POSITIVE_KINDS + NEGATIVE_KINDS)]
    calibration = labelled[labelled["half"] == HALVES[0]]
    evaluation = labelled[labelled["half"] == HALVES[1]]
    rule, calibration_aucs = choose_rule(
        calibration, calibration["kind"].isin(POSITIVE_KINDS).to_numpy(), candidates,
        max_false_rate=max_false_rate, fitted_on="calibration half")
    flags = flag_queries(signals, rule)
    held = flags[flags["half"] == HALVES[1]]
    row = {"signal": rule.signal, "threshold": rule.threshold, "direction": rule.direction,
           **{f"calibration_auc_{k}": v for k, v in calibration_aucs.items()}}
    values = evaluation[rule.signal].to_numpy(dtype=np.float64)
    ok = ~np.isnan(values)
    fpr, tpr, auc = roc(values[ok], evaluation["kind"].isin(POSITIVE_KINDS).to_numpy()[ok], DIRECTIONS[rule.signal])
    row["evaluation_auc"] = auc
    row["recall_near_copy"] = float(held.loc[held["kind"] == "near_copy", "attributable"].mean())
    negatives = held[held["kind"].isin(NEGATIVE_KINDS)]
    row["false_share_negatives"] = float(negatives["attributable"].mean())
    for kind in sorted(set(held["kind"])):
        row[f"attributable_{kind}"] = float(held.loc[held["kind"] == kind, "attributable"].mean())
        row[f"n_{kind}"] = int((held["kind"] == kind).sum())
    return row, flags, {"fpr": fpr, "tpr": tpr, "auc": auc}


def gate_rates(shared: pd.DataFrame, attributable: pd.Series) -> dict:
    """False-share rate on negatives and share rate on near-copies of a LUMINA gate, before (the sources' rule:
    any qualified song gets a share) and after abstention (shares only for attributable queries).

    shared: query_id, kind, half, any_share (bool) for one gate; attributable: query_id → bool. Evaluation half."""
    held = shared[shared["half"] == HALVES[1]].copy()
    held["after"] = held["any_share"] & held["query_id"].map(attributable).fillna(False).astype(bool)
    negatives = held["kind"].isin(NEGATIVE_KINDS)
    positives = held["kind"].isin(POSITIVE_KINDS)
    return {"false_share_before": float(held.loc[negatives, "any_share"].mean()),
            "false_share_after": float(held.loc[negatives, "after"].mean()),
            "recall_before": float(held.loc[positives, "any_share"].mean()),
            "recall_after": float(held.loc[positives, "after"].mean())}


def write_flags(flags: pd.DataFrame, run_dir: Path) -> Path:
    columns = ["query_id", "kind", "half", "attributable", "abstain_reason", "rule", "threshold", "top_track",
               *DIRECTIONS]
    path = Path(run_dir) / QUERIES_FILE
    flags[[c for c in columns if c in flags]].to_csv(path, index=False)
    return path


def lumina_gate_shares(db: SignatureDatabase, queries: pd.DataFrame, gates: Sequence[str],
                       scoring: ScoringConfig | None = None) -> pd.DataFrame:
    """Whether each query gets any share under each gate and channel with the sources' rule (no abstention;
    `lumina.methods.lumina.gate_shares`): rows (query_id, kind, half, gate, channel, any_share)."""
    shares = gate_shares(db, queries["query_id"].tolist(), gates, scoring)
    return shares.merge(queries[["query_id", "kind", "half"]], on="query_id", how="left")[
        ["query_id", "kind", "half", "gate", "channel", "any_share"]]


def lumina_empty_description_z(db: SignatureDatabase, generator: Generator, manifest: Manifest,
                               queries: pd.DataFrame, reference_tops: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """`reference_z` of each query's LUMINA signature extracted with the empty description instead of its own
    (the user who does not know the prompt): rows query_id, setting (lumina-P | lumina-M), reference_z."""
    tops = empty_description_tops(db, generator, {q: manifest.path_of(q) for q in queries["query_id"]})
    z = [float(reference_z(np.array([t.top]), reference_tops[f"lumina-{t.channel}"])[0]) for t in tops.itertuples()]
    return pd.DataFrame({"query_id": tops["query_id"], "setting": "lumina-" + tops["channel"], "reference_z": z},
                        columns=["query_id", "setting", "reference_z"])


def description_effect(flags: pd.DataFrame, empty: pd.DataFrame, *, max_false_rate: float) -> dict:
    """The report's rule (`reference_z` at or above a threshold, docs/abstention.md#the-report-rule) fitted on the
    calibration half with each query's own description, then applied on the evaluation half to the signatures
    extracted with its own description and with the empty one: the fitted threshold, recall and false-share rate
    for both. flags: one LUMINA setting's per-query flags (with their `reference_z`); empty: its rows of
    `lumina_empty_description_z`."""
    labelled = flags[flags["kind"].isin(POSITIVE_KINDS + NEGATIVE_KINDS)]
    calibration = labelled[labelled["half"] == HALVES[0]]
    rule = fit_rule(calibration["reference_z"].to_numpy(dtype=np.float64),
                    calibration["kind"].isin(POSITIVE_KINDS).to_numpy(), "reference_z",
                    max_false_rate=max_false_rate, fitted_on="calibration half")
    held = labelled[labelled["half"] == HALVES[1]].merge(empty[["query_id", "reference_z"]], on="query_id",
                                                         suffixes=("", "_empty"))
    own, without = held["reference_z"] >= rule.threshold, held["reference_z_empty"] >= rule.threshold
    positives, negatives = held["kind"].isin(POSITIVE_KINDS), held["kind"].isin(NEGATIVE_KINDS)
    return {"report_threshold": rule.threshold,
            "recall_own": float(own[positives].mean()), "recall_empty": float(without[positives].mean()),
            "false_share_own": float(own[negatives].mean()), "false_share_empty": float(without[negatives].mean()),
            "mean_reference_z_shift": float((held["reference_z_empty"] - held["reference_z"]).mean()),
            "n_evaluation": len(held)}


def track_losses(generator: Generator, manifest: Manifest, cache: Path) -> dict[str, float]:
    """Each track's teacher-forcing loss under `generator` (the `loss_z` signal's input), codes from the cache."""
    ids = manifest.table["track_id"].tolist()
    codes = encode_tracks(generator.codec, manifest, ids, Path(cache), progress=False)
    descriptions = dict(zip(ids, manifest.table["description"], strict=True))
    return dict(zip(ids, study_losses(generator, codes, descriptions, ids)[0], strict=True))


def lumina_checks(db: SignatureDatabase, generator: Generator, manifest: Manifest, queries: pd.DataFrame,
                  tops: Mapping[str, np.ndarray], flags: Mapping[str, pd.DataFrame], gates: Sequence[str],
                  empty_description: bool, *, max_false_rate: float, scoring: ScoringConfig | None = None
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """LUMINA's gates before and after abstention (`gate_rates`, one row per gate and channel; the other scoring
    options `scoring`'s) and, per channel, the report rule's threshold and the empty description's effect
    (`description_effect`). flags: per-query flags by setting (`evaluate_setting`)."""
    rows = []
    shares = lumina_gate_shares(db, queries, gates, scoring)
    for (gate, channel), part in shares.groupby(["gate", "channel"]):
        setting = flags.get(f"lumina-{channel}")
        after = setting.set_index("query_id")["attributable"] if setting is not None else pd.Series(dtype=bool)
        rows.append({"gate": gate, "channel": channel, **gate_rates(part, after)})
    judged = [s for s in ("lumina-P", "lumina-M") if s in flags]
    description = []
    if judged and tops and empty_description:
        empty = lumina_empty_description_z(db, generator, manifest, queries, tops)
        description = [{"setting": s, **description_effect(flags[s], empty[empty["setting"] == s],
                                                            max_false_rate=max_false_rate)} for s in judged]
    return pd.DataFrame(rows), pd.DataFrame(description)


def study_provenance(command: str, config: Mapping, manifest: Manifest, runs: Path,
                     matrices: Sequence[tuple[Path, ScoreArtefact]], generator: Generator,
                     db: SignatureDatabase | None) -> Provenance:
    """What the abstention tables are made from: the manifest, each judged matrix (`<method>/<setting>` → SHA-256
    of its scores.h5), the generator whose losses give `loss_z` and LUMINA's signature database (None: not built)."""
    upstream = {"manifest": manifest.sha256(), "catalogue": manifest.catalogue_key, "model": generator.identity(),
                **{f"{a.method}/{a.setting}": file_sha256(a.path) for _, a in matrices}}
    return stamp(command=command, config=config, upstream=upstream, runs=relative(runs),
                 manifest=relative(manifest.path), signature_database=relative(db.path) if db is not None else None)
