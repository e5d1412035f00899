"""Abstention: is a query attributable at all, before anything is ranked (docs/abstention.md).

A score matrix ranks training tracks for every query, even for audio nothing in the catalogue influenced. The
signals below say, per query, whether any training track stands out beyond what queries without a source get;
a rule (one signal, one threshold, fitted on labelled queries) turns them into an `attributable` flag with its
reason. Shapes: `tracks` is a track-level score matrix (N, Q), rows training tracks, columns queries.

Signals (direction: +1 means larger is more attributable):
- `top_score` (+1): the query's largest track score, in the method's units.
- `top_standout` (+1): that score's z within its own column, (max - mean) / std over the N tracks.
- `collapse` (-1): the share of the query's centred column along the matrix's first left singular vector (the
  direction common to all queries, Aria's collapse seen per query), in [0, 1].
- `reference_z` (+1): the top score against the top scores of reference queries known to have no source in
  training (control tracks scored as queries): (top - mean_ref) / std_ref.
- `loss_z` (-1): the query's teacher-forcing loss under the generator against the reference tracks' losses,
  (loss - mean_ref) / std_ref; audio the model finds no likelier than unrelated audio was not learned from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from lumina.runs.errors import ParameterError

DIRECTIONS = {"top_score": 1, "top_standout": 1, "collapse": -1, "reference_z": 1, "loss_z": -1}
"""Each signal's direction: +1 when larger values mean more attributable."""

POSITIVE_KINDS = ("near_copy",)
"""Queries whose sources measurably influence the model (the positives of the abstention study)."""
NEGATIVE_KINDS = ("held_out", "out_of_domain")
"""Queries with no source in training (the negatives); the control tracks are never among them."""
HALVES = ("calibration", "evaluation")


def column_signals(tracks: np.ndarray) -> pd.DataFrame:
    """`top_score`, `top_standout`, `collapse` and `top_track` (row index) of each query of `tracks` (N, Q);
    tracks with NaN scores (none given) are left out. One query gives `collapse` NaN (no common direction)."""
    t = np.asarray(tracks, dtype=np.float64)
    if t.ndim != 2 or t.shape[0] < 2:
        raise ParameterError(f"abstention needs a track-level matrix (N >= 2, Q), got shape {t.shape}")
    t = np.where(np.isnan(t), np.nanmean(t, axis=0, keepdims=True), t)
    top = t.max(axis=0)
    std = t.std(axis=0)
    standout = np.divide(top - t.mean(axis=0), std, out=np.zeros_like(top), where=std > 0)
    centred = t - t.mean(axis=0, keepdims=True)
    collapse = np.full(t.shape[1], np.nan)
    if t.shape[1] > 1:
        u = np.linalg.svd(centred, full_matrices=False)[0][:, 0]
        norms = (centred**2).sum(axis=0)
        collapse = np.divide((u @ centred) ** 2, norms, out=np.zeros_like(norms), where=norms > 0)
    return pd.DataFrame({"top_score": top, "top_standout": standout, "collapse": collapse,
                         "top_track": t.argmax(axis=0)})


def reference_z(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(values - mean(reference)) / std(reference) (ddof 1); at least 3 reference values are needed."""
    reference = np.asarray(reference, dtype=np.float64)
    if reference.size < 3:
        raise ParameterError(f"a reference distribution needs at least 3 values, got {reference.size}")
    sd = reference.std(ddof=1)
    if not sd > 0:
        raise ParameterError("the reference values are all equal; their spread cannot scale a z-score")
    return (np.asarray(values, dtype=np.float64) - reference.mean()) / sd


def split_halves(query_ids: Sequence[str], kinds: Sequence[str], seed: int = 0) -> np.ndarray:
    """`calibration` or `evaluation` for each query: within each kind, a seeded shuffle split in two (the
    calibration half gets the extra query of an odd kind)."""
    halves = np.empty(len(query_ids), dtype=object)
    kinds = np.asarray(kinds, dtype=object)
    for kind in sorted(set(kinds)):
        members = np.flatnonzero(kinds == kind)
        order = members[np.random.default_rng([seed, sum(map(ord, kind))]).permutation(members.size)]
        cut = (members.size + 1) // 2
        halves[order[:cut]], halves[order[cut:]] = HALVES[0], HALVES[1]
    return halves


def roc(values: np.ndarray, positive: np.ndarray, direction: int = 1) -> tuple[np.ndarray, np.ndarray, float]:
    """ROC of `direction * values` separating `positive` (bool) from the rest: (false-positive rates,
    true-positive rates, AUC), thresholds from high to low; ties count half in the AUC (Mann-Whitney)."""
    v = direction * np.asarray(values, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    if positive.all() or not positive.any():
        raise ParameterError("a ROC needs both positive and negative queries")
    thresholds = np.unique(v)[::-1]
    tpr = np.array([0.0, *[(v[positive] >= t).mean() for t in thresholds]])
    fpr = np.array([0.0, *[(v[~positive] >= t).mean() for t in thresholds]])
    greater = (v[positive][:, None] > v[~positive][None, :]).mean()
    ties = (v[positive][:, None] == v[~positive][None, :]).mean()
    return fpr, tpr, float(greater + 0.5 * ties)


@dataclass(frozen=True)
class AbstentionRule:
    """`attributable` iff direction * value >= direction * threshold for `signal`."""

    signal: str
    threshold: float
    direction: int
    fitted_on: str = ""

    def attributable(self, values: np.ndarray) -> np.ndarray:
        v = np.asarray(values, dtype=np.float64)
        return np.where(np.isnan(v), False, self.direction * v >= self.direction * self.threshold)

    def reason(self, value: float) -> str:
        """One sentence on why a query was (not) attributable."""
        relation = ">=" if self.direction > 0 else "<="
        if self.attributable(np.array([value]))[0]:
            return f"{self.signal} {value:.4g} {relation} {self.threshold:.4g}: a training track stands out"
        return (f"no training track stands out: {self.signal} {value:.4g} is not {relation} {self.threshold:.4g}, "
                "the level of queries without a source")

    def as_dict(self) -> dict:
        return asdict(self)


def fit_rule(values: np.ndarray, positive: np.ndarray, signal: str, *, max_false_rate: float = 0.05,
             fitted_on: str = "") -> AbstentionRule:
    """The threshold on `values` with the most positives attributable among those that keep the false rate
    (negatives attributable) at or below `max_false_rate`, on the queries given (the calibration half).

    The threshold sits halfway between the last negative it excludes and the next value, so it does not sit on
    a calibration query."""
    direction = DIRECTIONS[signal]
    v = direction * np.asarray(values, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    keep = ~np.isnan(v)
    v, positive = v[keep], positive[keep]
    if positive.all() or not positive.any():
        raise ParameterError(f"fitting {signal} needs both positive and negative queries")
    negatives = np.sort(v[~positive])[::-1]
    allowed = int(np.floor(max_false_rate * negatives.size))  # negatives that may stay attributable
    boundary = negatives[allowed]  # the largest negative that must be excluded
    above = v[v > boundary]
    threshold = (boundary + above.min()) / 2 if above.size else boundary + 1e-12
    return AbstentionRule(signal, float(direction * threshold), direction, fitted_on)


def choose_rule(signals: pd.DataFrame, positive: np.ndarray, candidates: Sequence[str], *,
                max_false_rate: float = 0.05, fitted_on: str = "") -> tuple[AbstentionRule, dict[str, float]]:
    """The candidate signal with the best AUC on these queries, with its `fit_rule` threshold; also each
    candidate's AUC (NaN where the signal is missing)."""
    aucs = {}
    for name in candidates:
        column = signals[name].to_numpy(dtype=np.float64)
        ok = ~np.isnan(column)
        aucs[name] = (roc(column[ok], positive[ok], DIRECTIONS[name])[2]
                      if ok.any() and positive[ok].any() and not positive[ok].all() else float("nan"))
    usable = {k: v for k, v in aucs.items() if not np.isnan(v)}
    if not usable:
        raise ParameterError("no abstention signal could be measured on these queries")
    best = max(usable, key=lambda k: (usable[k], -list(candidates).index(k)))
    column = signals[best].to_numpy(dtype=np.float64)
    return fit_rule(column, positive, best, max_false_rate=max_false_rate, fitted_on=fitted_on), aucs


def flag_queries(signals: pd.DataFrame, rule: AbstentionRule) -> pd.DataFrame:
    """`signals` with `attributable` (bool) and `abstain_reason` (text; empty when attributable) columns."""
    values = signals[rule.signal].to_numpy(dtype=np.float64)
    attributable = rule.attributable(values)
    reasons = ["" if ok else rule.reason(v) for ok, v in zip(attributable, values, strict=True)]
    return signals.assign(attributable=attributable, abstain_reason=reasons, rule=rule.signal,
                          threshold=rule.threshold)


def rates(flags: pd.DataFrame, kinds: Mapping[str, str] | pd.Series) -> dict[str, float]:
    """Share of attributable queries per kind (`flags` has `query_id` and `attributable`)."""
    kind = flags["query_id"].map(kinds)
    return {k: float(flags.loc[kind == k, "attributable"].mean()) for k in sorted(set(kind.dropna()))}
