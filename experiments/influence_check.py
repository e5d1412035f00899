"""Do planted sources really influence their queries? The in-vs-out effect measured on the subset models.

    python -m experiments.influence_check                          # the M = 32 study of conf/ground_truth.yaml
    python -m experiments.influence_check ground_truth.n_models=8  # its first 8 models

For each query kind, a query's loss under each subset model is regressed on the fraction of its planted
sources in that model's training subset, with query and model fixed effects (two-way demeaning): the slope is
the loss change in nats from none to all of its sources in the subset, with its t-statistic. The same for
training tracks on their own presence (sanity check: a model learns its training set) and for a placebo (each
query's sources replaced by as many random other training tracks). Also per codebook and per query.
Writes `planted_influence.{md,csv}` into `ground_truth.results`, with the command.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
from omegaconf import DictConfig
from scipy import stats

from experiments.setup import configure_runtime, load_corpus
from experiments.subsets import Study, study_from_config
from lumina.manifest import Manifest

PLANTED_KINDS = ("near_copy", "composition", "production")


def two_way_effect(y: np.ndarray, x: np.ndarray) -> dict[str, float]:
    """Slope of y on x with row (model) and column (track) fixed effects; y, x: (M, Q).

    Returns effect (the slope), se, t, dof (M·Q − M − Q) and a two-sided p-value; NaN when x does not vary
    within tracks and models.
    """
    def demean(a: np.ndarray) -> np.ndarray:
        return a - a.mean(axis=0, keepdims=True) - a.mean(axis=1, keepdims=True) + a.mean()

    xd, yd = demean(np.asarray(x, dtype=np.float64)), demean(np.asarray(y, dtype=np.float64))
    m, q = xd.shape
    dof = m * q - m - q
    sxx = float(np.sum(xd**2))
    if sxx <= 1e-12 or dof < 1:
        return {"effect": np.nan, "se": np.nan, "t": np.nan, "dof": dof, "p": np.nan}
    slope = float(np.sum(xd * yd) / sxx)
    se = float(np.sqrt(np.sum((yd - slope * xd) ** 2) / dof / sxx))
    t = slope / se if se > 0 else np.nan
    return {"effect": slope, "se": se, "t": t, "dof": dof, "p": float(2 * stats.t.sf(abs(t), dof))}


def query_effect(y: np.ndarray, x: np.ndarray) -> dict[str, float]:
    """Per-query slope of the loss (M,) on the fraction of its sources in (M,), with its t (M − 2 dof)."""
    if np.ptp(x) == 0:
        return {"effect": np.nan, "t": np.nan}
    fit = stats.linregress(x, y)
    return {"effect": float(fit.slope), "t": float(fit.slope / fit.stderr) if fit.stderr > 0 else np.nan}


def placebo_sources(manifest: Manifest, queries: Sequence[str], seed: int) -> dict[str, list[str]]:
    """For each query, as many random training tracks as it has planted sources, none of them a source."""
    rng = np.random.default_rng(seed)
    train = manifest.train_ids
    out = {}
    for q in queries:
        sources = set(manifest.sources_of(q))
        pool = [t for t in train if t not in sources]
        out[q] = [pool[i] for i in sorted(rng.choice(len(pool), size=len(sources), replace=False))]
    return out


def _panel(study: Study, ids: Sequence[str], sources: dict[str, list[str]], codebook: int | None) -> tuple:
    y = study.loss_of(ids, codebook)
    x = np.stack([study.fraction_in(sources[t]) for t in ids], axis=1)
    return y, x


def planted_effects(study: Study, manifest: Manifest, *, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Effects per group (kinds, own track, placebo) and per query.

    Returns (groups, queries): groups has one row per group with `effect` (nats), `se`, `t`, `dof`, `p`,
    `n_tracks`, `n_models` and `effect_cbK`, `t_cbK` per codebook; queries has one row per query with
    `kind`, `variant`, `n_sources`, `effect`, `t`.
    """
    kinds = {kind: [q for q in manifest.query_ids if manifest.row(q)["query_kind"] == kind] for kind in PLANTED_KINDS}
    kinds = {kind: ids for kind, ids in kinds.items() if ids}
    groups: dict[str, tuple[list[str], dict[str, list[str]]]] = {
        kind: (ids, {q: manifest.sources_of(q) for q in ids}) for kind, ids in kinds.items()
    }
    train = study.train_ids
    groups["own_track"] = (train, {t: [t] for t in train})
    planted = [q for ids in kinds.values() for q in ids]
    if planted:
        groups["placebo"] = (planted, placebo_sources(manifest, planted, seed))
    n_codebooks = study.codebook_losses.shape[2]
    rows = []
    for name, (ids, sources) in groups.items():
        row = {"group": name, "n_tracks": len(ids), "n_models": study.n_models,
               **two_way_effect(*_panel(study, ids, sources, None))}
        for k in range(n_codebooks):
            effect = two_way_effect(*_panel(study, ids, sources, k))
            row[f"effect_cb{k + 1}"], row[f"t_cb{k + 1}"] = effect["effect"], effect["t"]
        rows.append(row)
    per_query = []
    for kind, ids in kinds.items():
        y, x = _panel(study, ids, groups[kind][1], None)
        for j, q in enumerate(ids):
            per_query.append({"query_id": q, "kind": kind, "variant": manifest.row(q)["variant"],
                              "n_sources": len(groups[kind][1][q]), **query_effect(y[:, j], x[:, j])})
    return pd.DataFrame(rows), pd.DataFrame(per_query)


def to_markdown(groups: pd.DataFrame, queries: pd.DataFrame, command: str, study: Study) -> str:
    """The report: the group table, per-codebook effects and per-query effects, with the command."""
    n_codebooks = sum(c.startswith("effect_cb") for c in groups.columns)
    lines = [
        "# Planted influence: does a query's loss fall when its planted sources are in the training subset?",
        "",
        f"Command: `{command}`",
        "",
        f"{study.n_models} subset models (α = {study.membership.mean():.2f}, study `{study.folder}`). Effect = "
        "slope of the query's teacher-forcing loss (nats) on the fraction of its planted sources in the "
        "subset, with query and model fixed effects: the change from none to all of its sources in. "
        "Negative = the sources help. `own_track`: training tracks on their own presence (sanity check); "
        "`placebo`: each planted query with random other training tracks standing in for its sources.",
        "",
        "| group | tracks | models | effect (nats) | se | t | p |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in groups.itertuples():
        lines.append(f"| {r.group} | {r.n_tracks} | {r.n_models} | {r.effect:+.4f} | {r.se:.4f} | {r.t:+.2f} | "
                     f"{r.p:.2g} |")
    lines += ["", "Per codebook (effect in nats, t):", "",
              "| group | " + " | ".join(f"codebook {k + 1}" for k in range(n_codebooks)) + " |",
              "|---|" + "---|" * n_codebooks]
    for _, r in groups.iterrows():
        cells = [f"{r[f'effect_cb{k + 1}']:+.4f} (t {r[f't_cb{k + 1}']:+.2f})" for k in range(n_codebooks)]
        lines.append(f"| {r['group']} | " + " | ".join(cells) + " |")
    lines += ["", "Per query (plain regression over the models, M − 2 dof):", "",
              "| query | kind | variant | sources | effect (nats) | t |", "|---|---|---|---|---|---|"]
    for r in queries.itertuples():
        lines.append(f"| {r.query_id} | {r.kind} | {r.variant} | {r.n_sources} | {r.effect:+.4f} | {r.t:+.2f} |")
    return "\n".join(lines) + "\n"


def write_report(groups: pd.DataFrame, queries: pd.DataFrame, study: Study, results: str | Path, command: str
                 ) -> Path:
    """Write `planted_influence.csv` (groups, then queries) and `planted_influence.md` into `results`."""
    results = Path(results)
    results.mkdir(parents=True, exist_ok=True)
    table = pd.concat([groups.assign(level="group"), queries.rename(columns={"query_id": "group"})
                       .assign(level="query")], ignore_index=True)
    table.insert(0, "level", table.pop("level"))
    table.assign(command=command).to_csv(results / "planted_influence.csv", index=False)
    (results / "planted_influence.md").write_text(to_markdown(groups, queries, command, study))
    return results / "planted_influence.md"


@hydra.main(config_path="../conf", config_name="ground_truth", version_base="1.3")
def main(cfg: DictConfig) -> None:
    configure_runtime(cfg)
    manifest = load_corpus(cfg)
    study = study_from_config(cfg, manifest)
    groups, queries = planted_effects(study, manifest, seed=int(cfg.ground_truth.seed))
    command = " ".join(["python -m experiments.influence_check", *sys.argv[1:]])
    path = write_report(groups, queries, study, cfg.ground_truth.results, command)
    print(groups[["group", "n_tracks", "n_models", "effect", "se", "t"]].to_string(index=False))
    print(f"written to {path} and planted_influence.csv")


if __name__ == "__main__":
    main()
