"""Unlearning's self-influence check (docs/baselines.md#self-influence-check): unlearn a training segment as if it
were a query and see where it ranks itself among all training segments.

For each setting (target layers and silence mask, the unlearning source's Table 1 choices) and each of `samples`
training segments drawn with `seed`, every training segment is scored by its loss change; R(z_tar) is the unlearned
segment's rank among them (1 = it changed most). Each unlearning run is cached like the method's, so an interrupted
check resumes. `write_results` writes `self_influence.{md,csv}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from execution.files import atomic_path, markdown_table, write_text
from lumina.methods import gradient
from lumina.methods.base import RunContext
from lumina.methods.baselines.gradients import digest
from lumina.methods.baselines.unlearning import unlearning_scores
from lumina.methods.baselines.weights import restored
from lumina.methods.options import UnlearningOptions

SOURCE_TABLE = (
    "For comparison, the unlearning source's Table 1 (docs/sources.md; a latent DiT, 40 samples, mean R(z_tar)): "
    "cross-attention to_kv weights "
    "with M_U 103.2; cross-attention layers with M_U 1.4; self-attention layers with M_U 1.1; all transformer "
    "layers with M_U and M_L 1.0, with neither 6615.7, with M_U 1.0. This harness implements M_U only."
)


def self_ranks(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Rank (1 = highest score) of each target row in its own column: scores (N, S), targets (S,) → (S,)."""
    return np.array([1 + int(np.sum(scores[:, j] > scores[t, j])) for j, t in enumerate(targets)])


def run_check(ctx: RunContext, samples: int, seed: int, settings: Sequence[tuple[str | Sequence[int], bool]]
              ) -> pd.DataFrame:
    """One row per setting (target, silence mask) and sampled segment: the unlearned segment, its rank among the
    `n_segments` training segments, its own loss change (`self_tau`) and the largest other one (`max_other_tau`).
    `ctx`: an unlearning method's context (its options are the base of every setting)."""
    generator = ctx.generator
    corpus = gradient.segment_corpus(ctx, generator)
    options: UnlearningOptions = ctx.options  # type: ignore[assignment]
    base = gradient.unlearning_settings(options)
    n = len(corpus.train)
    targets = np.sort(np.random.default_rng(seed).choice(n, size=min(samples, n), replace=False))
    fisher_items = [corpus.train[i] for i in gradient.fisher_sample(n, base["fisher_samples"], base["fisher_seed"])]
    rows = []
    for target, mask in settings:
        setting = replace(options, target=target if isinstance(target, str) else tuple(target),
                          silence_mask=bool(mask))
        s = gradient.unlearning_settings(setting)  # the method's cache key, as its runs
        names = generator.parameter_group(setting.target)
        queries = [corpus.train[i] for i in targets]
        if s["silence_mask"]:
            queries = gradient.silence_masked(ctx, generator, queries,
                                              [(corpus.segments[i].track_id, corpus.segments[i].start_s)
                                               for i in targets], s["silence_db"])
        key = digest([generator.identity(), names, s])
        tag = gradient.parameter_tag(s["target"], generator.num_layers)
        print(f"\nself-influence: target {tag}, silence mask {'on' if mask else 'off'}")
        with restored(generator):
            scores, info = unlearning_scores(
                generator, names, corpus.train, queries, fisher_items, ctx.cache_dir / f"unlearn-{key}",
                steps=s["steps"], lr=s["lr"], optimizer=s["optimizer"],
                batch_size=options.batch_size, progress=ctx.progress,
            )
        for j, (i, rank) in enumerate(zip(targets, self_ranks(scores, targets), strict=True)):
            seg = corpus.segments[i]
            rows.append({"target": tag, "silence_mask": bool(mask), "segment": int(i),
                         "track_id": seg.track_id, "start_s": seg.start_s, "rank": int(rank), "n_segments": n,
                         "self_tau": float(scores[i, j]), "max_other_tau": float(np.delete(scores[:, j], i).max())})
        ranks = [r["rank"] for r in rows[-len(targets):]]
        print(f"  ranks: {ranks} (query loss +{info['query_loss_increase_mean']:.4f})")
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per setting of `run_check`'s table: mean R(z_tar) (docs/sources.md#unlearning-poster-table-1), median, share
    ranked first, worst rank."""
    grouped = table.groupby(["target", "silence_mask"], sort=False)["rank"]
    return pd.DataFrame({
        "R(z_tar) mean": grouped.mean().round(2), "median": grouped.median(), "ranked first": grouped.apply(
            lambda r: f"{int((r == 1).sum())}/{len(r)}"), "worst": grouped.max(),
    }).reset_index()


def results_markdown(table: pd.DataFrame, command: str, options: dict) -> str:
    """`self_influence.md`: the command, the unlearning options (`gradient.unlearning_settings`), `summary` (each
    value as Python prints it) and the source's Table 1."""
    lines = [
        "# Unlearning self-influence check (docs/sources.md#unlearning-poster-table-1)", "",
        f"Command: `{command}`", "",
        f"Each sampled training segment is unlearned as a query; R(z_tar) is its rank among all "
        f"{int(table['n_segments'].iloc[0])} training segments by loss change (1 = best). Options: " + ", ".join(
            f"{k}={options[k]}" for k in ("steps", "lr", "optimizer", "fisher_samples", "silence_db")) + ".", "",
        markdown_table(summary(table).astype(str)), "", "Per segment: `self_influence.csv`.", "",
        SOURCE_TABLE, "",
    ]
    return "\n".join(lines)


def write_results(table: pd.DataFrame, folder: Path, command: str, options: dict) -> Path:
    """`self_influence.csv` (`run_check`'s table) and `self_influence.md` (`results_markdown`) in `folder`, each
    written atomically; returns the Markdown file."""
    with atomic_path(Path(folder) / "self_influence.csv") as tmp:
        table.to_csv(tmp, index=False)
    return write_text(Path(folder) / "self_influence.md", results_markdown(table, command, options))
