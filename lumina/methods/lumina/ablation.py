"""The ablation loop of LUMINA's causal verification (docs/lumina.md#causal-verification) and its tables; the
choice of queries, the plan of each query's two ablations and the verdicts are `causal`'s.

For each chosen query: remove its top-attributed training song, retrain the model without it (the recipe caches
it), sign the query and the training songs under that model, and compare the query's cosine to the removed song
with the full model's; the same with a random mid-ranked song removed (the control) and, in that control's model,
the top song's own drop (`top_kept`). `causal_verification.{md,csv}` are rewritten after every query, so an
interrupted check leaves its table so far and a rerun reuses every retrained model and signature.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from execution.files import atomic_path, markdown_table, write_text
from lumina.methods.base import RunContext
from lumina.methods.lumina.causal import ROLES, choose_queries, pass_rates, plan, verdict
from lumina.methods.lumina.database import build_database, manifest_tracks
from lumina.methods.lumina.method import channel_matrix, database_path
from lumina.methods.lumina.scoring import cosine_scores
from lumina.methods.lumina.signatures import SignatureConfig
from lumina.methods.lumina.stats import population, sts
from lumina.methods.options import LuminaOptions
from lumina.runs.errors import ParameterError
from lumina.runs.layout import ablation_database

COLUMNS = ["query", "kind", "role", "measured", "removed", "planted", "rank_before", "cosine_before", "cosine_after",
           "sigma", "drop", "drop_sigmas", "passed", "sts_before", "sts_after", "rank_after", "model"]
"""The columns of `causal_verification.csv`, one row per ablation and measured song."""


def causal_check(ctx: RunContext, *, channel: str, queries: int, sigmas: float, seed: int, results: Path,
                 command: str) -> list[dict]:
    """Ablate, retrain, re-sign and compare for `queries` queries of `ctx`'s corpus (LUMINA's options `ctx.options`),
    `channel` P, M or PM; writes the tables into `results` after every query. Returns one row (`COLUMNS`) per
    ablation and measured song, three per query (`ROLES`)."""
    if channel not in ("P", "M", "PM"):
        raise ParameterError(f"causal.channel must be P, M or PM, got {channel!r}")
    options: LuminaOptions = ctx.options  # type: ignore[assignment]
    config = SignatureConfig.from_options(options.as_dict())
    manifest, load = ctx.manifest, ctx.load_generator
    tracks = {t.track_id: t for t in manifest_tracks(manifest)}
    db = build_database(database_path(options, ctx.cache_dir), load(), list(tracks.values()), config,
                        batch_size=options.batch_size)
    train_ids = [t for t in manifest.train_ids if t in set(db.song_ids)]
    train = channel_matrix(db, channel, train_ids)
    rng = np.random.default_rng(seed)
    chosen = choose_queries(manifest, queries, seed)
    header = {"command": command, "channel": channel, "sigmas": sigmas, "model_hash": db.provenance["model_hash"],
              "n_train": len(train_ids),
              "signature": f"{config.mode}, channel_split {config.channel_split}, segments {config.segments}"}
    kinds = dict(zip(manifest.table["track_id"], manifest.table["query_kind"], strict=True))
    rows: list[dict] = []
    for number, query in enumerate(chosen, start=1):
        before = cosine_scores(train, channel_matrix(db, channel, [query]))[:, 0]
        ablations = plan(before, train_ids, rng)
        mu, sigma = ablations["mu"], ablations["sigma"]
        top, control = ablations["top"], ablations["control"]
        # each ablated model is trained and signed once; the control's also measures the top song (top_kept)
        for ablation, measured in ((top, [("top", top)]), (control, [("control", control), ("top_kept", top)])):
            removed = ablation["removed"]
            ablated = load([t for t in manifest.train_ids if t != removed])
            signed = build_database(ablation_database(ctx.cache_dir, ablated.identity()), ablated,
                                    [tracks[query], *(tracks[t] for t in train_ids)], config,
                                    batch_size=options.batch_size)
            after = cosine_scores(channel_matrix(signed, channel, train_ids), channel_matrix(signed, channel, [query]))
            after = after[:, 0]
            mu_after, sigma_after = population(after)
            for role, song in measured:
                name = song["removed"]  # the song this plan entry removes in its own ablation
                i = train_ids.index(name)
                rows.append({
                    "query": query, "kind": kinds[query], "role": role, "measured": name, "removed": removed,
                    "planted": name in manifest.sources_of(query),
                    "rank_before": song["rank"], "cosine_before": song["cosine"],
                    "cosine_after": float(after[i]), "sigma": sigma,
                    **verdict(float(before[i]), float(after[i]), sigma, sigmas),
                    "sts_before": float(sts(before[i], mu, sigma)),
                    "sts_after": float(sts(after[i], mu_after, sigma_after)),
                    "rank_after": int((after > after[i]).sum()) + 1, "model": ablated.identity(),
                })
        header |= {"status": f"{number} of {len(chosen)} queries done",
                   "time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        csv_path, md_path = write_results(rows, header, results)
        print(f"[{number}/{len(chosen)}] {query}: " + ", ".join(
            f"{r['role']} {r['measured']} drop {r['drop_sigmas']:.2f} sigma ({'pass' if r['passed'] else 'fail'})"
            for r in rows[-len(ROLES):]))
    print(f"wrote {csv_path} and {md_path}")
    return rows


def results_markdown(rows: Sequence[dict], header: dict) -> str:
    """`causal_verification.md`: what was checked (`header`: command, status, channel, sigmas, model_hash, n_train,
    signature, time), the pass rate of each role and one line per row of `causal_check` (at least one row)."""
    rates = pass_rates(rows)
    summary = pd.DataFrame([{"role": role, "passed": str(passed), "checked": str(checked),
                             "pass rate": f"{passed / checked:.0%}" if checked else "–"}
                            for role, (passed, checked) in rates.items()])
    yes = {True: "yes", False: "no"}
    table = pd.DataFrame({
        "query": [r["query"] for r in rows], "kind": [r["kind"] for r in rows], "role": [r["role"] for r in rows],
        "measured": [r["measured"] for r in rows], "removed": [r["removed"] for r in rows],
        "planted source": [yes[bool(r["planted"])] for r in rows], "rank": [str(r["rank_before"]) for r in rows],
        "cos before": [f"{r['cosine_before']:.4f}" for r in rows],
        "cos after": [f"{r['cosine_after']:.4f}" for r in rows],
        "drop / sigma": [f"{r['drop_sigmas']:.2f}" for r in rows], "passed": [yes[bool(r["passed"])] for r in rows],
        "STS before": [f"{r['sts_before']:.2f}" for r in rows], "STS after": [f"{r['sts_after']:.2f}" for r in rows],
        "rank after": [str(r["rank_after"]) for r in rows]})
    lines = ["# LUMINA causal verification", "", f"Command: `{header['command']}`", "",
             f"- {header['status']}; channel {header['channel']}; pass when the query's cosine to the measured song "
             f"drops by at least {header['sigmas']} sigma (sigma: the query's population std of cosines under the "
             "full model); the measured song and the query are both re-signed under the ablated model",
             "- roles: `top` removes the query's top-attributed song and measures it; `control` removes a random "
             "mid-ranked song and measures it; `top_kept` measures the top song in the control's model, where it "
             "stayed in training (what retraining alone does to a song ranked first)",
             f"- full model `{header['model_hash']}` ({header['n_train']} training tracks); signatures "
             f"{header['signature']}", f"- written {header['time']}", "",
             markdown_table(summary, right=["passed", "checked", "pass rate"]), "",
             markdown_table(table, right=["rank", "cos before", "cos after", "drop / sigma", "STS before",
                                          "STS after", "rank after"])]
    return "\n".join(lines) + "\n"


def write_results(rows: Sequence[dict], header: dict, folder: Path) -> tuple[Path, Path]:
    """`causal_verification.csv` (one row per ablation and measured song, `COLUMNS`) and `causal_verification.md`
    (`results_markdown`) in `folder`, each written atomically."""
    csv_path, md_path = Path(folder) / "causal_verification.csv", Path(folder) / "causal_verification.md"
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({k: r[k] for k in COLUMNS} for r in rows)
    write_text(md_path, results_markdown(rows, header))
    return csv_path, md_path
