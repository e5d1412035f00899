"""Unlearning's self-influence check (docs/baselines.md#self-influence-check): unlearn a training segment and see where
it ranks itself.

    python -m experiments.self_influence                                   # the embedded default
    python -m experiments.self_influence self_influence.samples=16 method.steps=16

For each setting of `self_influence.settings` (target layers and silence mask, the unlearning source's
Table 1 choices) and each of `samples` training segments drawn with `seed`, the segment is unlearned as if it were
a query and every training segment is scored by its loss change; R(z_tar) is the unlearned segment's rank
among them (1 = it changed most). Writes `self_influence.{md,csv}` into `paths.results`, with the command;
each unlearning run is cached like the method's (an interrupted check resumes).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from lumina.configure import build_context, configure_runtime
from lumina.methods import gradient
from lumina.methods.base import RunContext
from lumina.methods.baselines.gradients import digest
from lumina.methods.baselines.unlearning import unlearning_scores
from lumina.methods.baselines.weights import restored
from lumina.methods.options import UnlearningOptions
from lumina.runs.cli import one_line_errors

SOURCE_TABLE = (
    "For comparison, the unlearning source's Table 1 (docs/sources.md; a latent DiT, 40 samples, mean R(z_tar)): "
    "cross-attention to_kv weights "
    "with M_U 103.2; cross-attention layers with M_U 1.4; self-attention layers with M_U 1.1; all transformer "
    "layers with M_U and M_L 1.0, with neither 6615.7, with M_U 1.0. This harness implements M_U only."
)


def self_ranks(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Rank (1 = highest score) of each target row in its own column: scores (N, S), targets (S,)."""
    return np.array([1 + int(np.sum(scores[:, j] > scores[t, j])) for j, t in enumerate(targets)])


def run_check(ctx: RunContext, samples: int, seed: int, settings: list[tuple[str | list[int], bool]]) -> pd.DataFrame:
    """One row per setting and sample: the unlearned segment, its rank and the query-loss increase."""
    generator = ctx.generator
    corpus = gradient.load_corpus(ctx, generator)
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
                                     [(corpus.segments[i].track_id, corpus.segments[i].start_s) for i in targets],
                                     s["silence_db"])
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
    """Per setting: mean R(z_tar) (docs/sources.md#unlearning-poster-table-1), median, share ranked first, worst
    rank."""
    grouped = table.groupby(["target", "silence_mask"], sort=False)["rank"]
    return pd.DataFrame({
        "R(z_tar) mean": grouped.mean().round(2), "median": grouped.median(), "ranked first": grouped.apply(
            lambda r: f"{int((r == 1).sum())}/{len(r)}"), "worst": grouped.max(),
    }).reset_index()


def markdown(table: pd.DataFrame) -> str:
    """A pipe table of `table`."""
    head = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    return "\n".join([head, rule, *("| " + " | ".join(map(str, row)) + " |" for row in table.itertuples(index=False))])


def write_results(table: pd.DataFrame, folder: Path, command: str, options: dict, n_segments: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    table.to_csv(folder / "self_influence.csv", index=False)
    lines = [
        "# Unlearning self-influence check (docs/sources.md#unlearning-poster-table-1)", "",
        f"Command: `{command}`", "",
        f"Each sampled training segment is unlearned as a query; R(z_tar) is its rank among all {n_segments} "
        "training segments by loss change (1 = best). Options: " + ", ".join(
            f"{k}={options[k]}" for k in ("steps", "lr", "optimizer", "fisher_samples", "silence_db")) + ".", "",
        markdown(summary(table)), "", "Per segment: `self_influence.csv`.", "",
        SOURCE_TABLE, "",
    ]
    path = folder / "self_influence.md"
    path.write_text("\n".join(lines))
    return path


@hydra.main(config_path="../conf", config_name="self_influence", version_base="1.3")
@one_line_errors("experiments.self_influence")
def main(cfg: DictConfig) -> None:
    configure_runtime(cfg)
    ctx = build_context(cfg)
    check = OmegaConf.to_container(cfg.self_influence, resolve=True)
    table = run_check(ctx, int(check["samples"]), int(check["seed"]),
                      [(s["target"], s["silence_mask"]) for s in check["settings"]])
    command = " ".join(["python -m experiments.self_influence", *sys.argv[1:]])
    path = write_results(table, Path(cfg.paths.results), command, gradient.unlearning_settings(ctx.options),
                         int(table["n_segments"].iloc[0]))
    print("\n" + summary(table).to_string(index=False) + f"\n\nwritten to {path}")


if __name__ == "__main__":
    main()
