"""LUMINA causal verification (docs/lumina.md#causal-verification) on the embedded default: ablate, retrain,
re-sign, compare.

    python -m experiments.causal_verification                           # 8 queries, Channel P
    python -m experiments.causal_verification causal.queries=4 causal.channel=M

For each chosen query: remove its top-attributed training song, retrain the embedded model without it
(cached), sign the query and the training songs under that model, and pass when the query's cosine to the
removed song dropped by at least `causal.sigmas` times the query's population std of cosines; the
same with a random mid-ranked song removed as the control; and, in that control's model, the top song's own
drop (`top_kept`: what retraining alone does to a song ranked first). Writes
`<paths.results>/causal_verification.md` and `.csv` after every query, so an interrupted run leaves its table
so far (and a rerun reuses every retrained model and signature).
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig

from lumina.configure import build_context, configure_runtime
from lumina.methods.lumina.causal import ROLES, choose_queries, pass_rates, plan, verdict
from lumina.methods.lumina.database import build_database, manifest_tracks
from lumina.methods.lumina.method import channel_matrix, database_path
from lumina.methods.lumina.scoring import cosine_scores
from lumina.methods.lumina.signatures import SignatureConfig
from lumina.methods.lumina.stats import population, sts
from lumina.methods.options import LuminaOptions
from lumina.runs.cli import one_line_errors
from lumina.runs.errors import ParameterError

COLUMNS = ["query", "kind", "role", "measured", "removed", "planted", "rank_before", "cosine_before", "cosine_after",
           "sigma", "drop", "drop_sigmas", "passed", "sts_before", "sts_after", "rank_after", "model"]


def write_results(rows: list[dict], header: dict, folder: Path) -> tuple[Path, Path]:
    """`causal_verification.csv` (one row per ablation) and `causal_verification.md` (table and pass rates)."""
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = folder / "causal_verification.csv", folder / "causal_verification.md"
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({k: r[k] for k in COLUMNS} for r in rows)
    rates = pass_rates(rows)
    lines = ["# LUMINA causal verification", "", f"Command: `{header['command']}`", "",
             f"- {header['status']}; channel {header['channel']}; pass when the query's cosine to the measured song "
             f"drops by at least {header['sigmas']} sigma (sigma: the query's population std of cosines under the "
             "full model); the measured song and the query are both re-signed under the ablated model",
             "- roles: `top` removes the query's top-attributed song and measures it; `control` removes a random "
             "mid-ranked song and measures it; `top_kept` measures the top song in the control's model, where it "
             "stayed in training (what retraining alone does to a song ranked first)",
             f"- full model `{header['model_hash']}` ({header['n_train']} training tracks); signatures "
             f"{header['signature']}", f"- written {header['time']}", "",
             "| role | passed | checked | pass rate |", "|---|---:|---:|---:|"]
    for role in ROLES:
        passed, checked = rates[role]
        lines.append(f"| {role} | {passed} | {checked} | {passed / checked:.0%} |" if checked
                     else f"| {role} | 0 | 0 | – |")
    lines += ["", "| query | kind | role | measured | removed | planted source | rank | cos before | cos after | "
              "drop / sigma | passed | STS before | STS after | rank after |",
              "|---|---|---|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['query']} | {r['kind']} | {r['role']} | {r['measured']} | {r['removed']} | "
                     f"{'yes' if r['planted'] else 'no'} | {r['rank_before']} | "
                     f"{r['cosine_before']:.4f} | {r['cosine_after']:.4f} | {r['drop_sigmas']:.2f} | "
                     f"{'yes' if r['passed'] else 'no'} | {r['sts_before']:.2f} | {r['sts_after']:.2f} | "
                     f"{r['rank_after']} |")
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path


def verify(cfg: DictConfig) -> list[dict]:
    """Run the causal verification the config describes; returns one row per ablation."""
    configure_runtime(cfg)
    ctx = build_context(cfg)
    options: LuminaOptions = ctx.options  # type: ignore[assignment]
    causal = cfg.causal
    channel = str(causal.channel)
    if channel not in ("P", "M", "PM"):
        raise ParameterError(f"causal.channel must be P, M or PM, got {channel!r}")
    config = SignatureConfig.from_options(options.as_dict())
    manifest, load, cache_dir = ctx.manifest, ctx.load_generator, ctx.cache_dir
    tracks = {t.track_id: t for t in manifest_tracks(manifest)}
    full = load()
    db = build_database(database_path(options, cache_dir), full, list(tracks.values()), config,
                        batch_size=options.batch_size)
    train_ids = [t for t in manifest.train_ids if t in set(db.song_ids)]
    train = channel_matrix(db, channel, train_ids)
    rng = np.random.default_rng(int(causal.seed))
    queries = choose_queries(manifest, int(causal.queries), int(causal.seed))
    header = {"command": " ".join(["python -m experiments.causal_verification", *sys.argv[1:]]), "channel": channel,
              "sigmas": float(causal.sigmas), "model_hash": db.provenance["model_hash"], "n_train": len(train_ids),
              "signature": f"{config.mode}, channel_split {config.channel_split}, segments {config.segments}"}
    kinds = dict(zip(manifest.table["track_id"], manifest.table["query_kind"], strict=True))
    rows: list[dict] = []
    for number, query in enumerate(queries, start=1):
        before = cosine_scores(train, channel_matrix(db, channel, [query]))[:, 0]
        ablations = plan(before, train_ids, rng)
        mu, sigma = ablations["mu"], ablations["sigma"]
        top, control = ablations["top"], ablations["control"]
        # each ablated model is trained and signed once; the control's also measures the top song (top_kept)
        for ablation, measured in ((top, [("top", top)]), (control, [("control", control), ("top_kept", top)])):
            removed = ablation["removed"]
            ablated = load([t for t in manifest.train_ids if t != removed])
            signed = build_database(cache_dir / "causal" / f"signatures-{ablated.identity()}.h5", ablated,
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
                    **verdict(float(before[i]), float(after[i]), sigma, float(causal.sigmas)),
                    "sts_before": float(sts(before[i], mu, sigma)),
                    "sts_after": float(sts(after[i], mu_after, sigma_after)),
                    "rank_after": int((after > after[i]).sum()) + 1, "model": ablated.identity(),
                })
        header |= {"status": f"{number} of {len(queries)} queries done",
                   "time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        csv_path, md_path = write_results(rows, header, Path(cfg.paths.results))
        print(f"[{number}/{len(queries)}] {query}: " + ", ".join(
            f"{r['role']} {r['measured']} drop {r['drop_sigmas']:.2f} sigma ({'pass' if r['passed'] else 'fail'})"
            for r in rows[-len(ROLES):]))
    print(f"wrote {csv_path} and {md_path}")
    return rows


@hydra.main(config_path="../conf", config_name="causal_verification", version_base="1.3")
@one_line_errors("experiments.causal_verification")
def main(cfg: DictConfig) -> None:
    verify(cfg)


if __name__ == "__main__":
    main()
