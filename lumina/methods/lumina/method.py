"""LUMINA as a method of the harness: sign the corpus into a database, then score matrices for Aria.

Settings: `lumina-P`, `lumina-M` and `lumina-PM` (cosine; Aria normalisation zscore) and `lumina-P-kr`,
`lumina-M-kr`, `lumina-PM-kr` (kernel regression; rank). Rows: training tracks; columns: every query.
Non-default signature options add a tag to the names (`lumina-P-jl`, `lumina-M-heads-smart3`, …).
Each matrix carries the `lumina_evidence` table (written as `lumina_evidence.csv` beside it): per query, training
track and channel of the setting, the tier, confidence and share of the attribution report's statistics.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from lumina.methods.base import RunContext
from lumina.methods.lumina.attribution import Reference, attribute, reference_for
from lumina.methods.lumina.database import SignatureDatabase, build_database, manifest_tracks
from lumina.methods.lumina.scoring import ScoringConfig, combined, cosine_scores, kernel_scores
from lumina.methods.lumina.signatures import CHANNELS, STATISTICS, SignatureConfig, statistic_report
from lumina.methods.lumina.stats import TIER_NAMES
from lumina.methods.options import LuminaOptions
from lumina.models.protocol import Generator
from lumina.runs import layout
from lumina.runs.errors import ParameterError
from lumina.runs.provenance import relative
from lumina.runs.score_matrix import ScoreMatrix

SCORING_SUFFIX = {"cosine": "", "kernel": "-kr"}
NORMALIZATION = {"cosine": "zscore", "kernel": "rank"}
EVIDENCE = "lumina_evidence"
"""The table of tiers, confidences and shares each matrix writes beside itself (`<run>/lumina_evidence.csv`)."""
EVIDENCE_COLUMNS = ["query_id", "track_id", "channel", "tier", "confidence", "share"]


def signature_tag(config: SignatureConfig) -> str:
    """`-<value>` for each non-default mode, channel split, segment policy, weighting and text policy."""
    default = SignatureConfig()
    tags = [getattr(config, k) for k in ("mode", "channel_split", "segments")
            if getattr(config, k) != getattr(default, k)]
    tags += ["unweighted"] if config.codebook_weighting != default.codebook_weighting else []
    tags += ["notext"] if config.text != default.text else []
    return "".join(f"-{t}" for t in tags)


def signature_store(cache: str | Path, generator: Generator) -> Path:
    """Where `generator`'s signature databases live (`lumina.runs.layout.signature_store`), shared by every version
    of every catalogue it signs (docs/execution.md#incremental-catalogues)."""
    return layout.signature_store(cache, generator.identity())


def database_path(options: LuminaOptions, cache_dir: str | Path) -> Path:
    """`method.database`, or `<cache_dir>/signatures<tag>.h5` (`cache_dir`: the model's `signature_store`)."""
    config = SignatureConfig.from_options(options.as_dict())
    return Path(options.database) if options.database else Path(cache_dir) / f"signatures{signature_tag(config)}.h5"


def channel_matrix(db: SignatureDatabase, channel: str, ids: list[str]) -> np.ndarray:
    """Signatures (len(ids), d) of `P`, `M` or `PM` (both, `combined`) for tracks of the database."""
    rows = [db.row_of(t) for t in ids]
    if channel == "PM":
        return combined(db.signatures["P"][rows], db.signatures["M"][rows])
    return db.signatures[channel][rows].astype(np.float64)


def diagnostics(db: SignatureDatabase, train_ids: list[str], config: SignatureConfig) -> dict:
    """Per channel, the statistic shares and pairwise cosines of the training signatures (`stats` mode)."""
    if config.mode != "stats" or len(train_ids) < 2:
        return {}
    return {c: statistic_report(channel_matrix(db, c, train_ids)) for c in CHANNELS}


def format_diagnostics(report: dict) -> str:
    """The statistic-share table printed after a run."""
    lines = ["share of the squared norm | " + " | ".join(f"{s:>8}" for s in STATISTICS) + " | mean cos (all, "
             "without skewness, z-scored)"]
    for c, r in report.items():
        shares = " | ".join(f"{100 * r['statistic_share'][s]:7.1f}%" for s in STATISTICS)
        cos = r["mean_cosine"]
        lines.append(f"Channel {c}{'':17} | {shares} | {cos['all']:.3f}, {cos['without_skewness']:.3f}, "
                     f"{cos['zscored']:.3f}")
    return "\n".join(lines)


def evidence(db: SignatureDatabase, reference: Reference, query_ids: list[str]) -> pd.DataFrame:
    """LUMINA's statistics of each query against every training track of `reference`, per channel, as the
    attribution report computes them (`attribute`: abstention, tier, confidence, share): (Q × 2 × N) rows of
    EVIDENCE_COLUMNS, ordered by query, channel, then track."""
    frames = []
    for query in query_ids:
        row = db.row_of(query)
        scored = attribute({c: db.signatures[c][row] for c in CHANNELS}, reference)
        frames += [pd.DataFrame({"query_id": query, "track_id": reference.track_ids, "channel": c,
                                 "tier": [TIER_NAMES[t] for t in scored[c].tier],
                                 "confidence": scored[c].confidence, "share": scored[c].share}) for c in CHANNELS]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=EVIDENCE_COLUMNS)


def run(ctx: RunContext) -> list[ScoreMatrix]:
    """Sign every track of the corpus (resumable) and return the six score matrices."""
    options: LuminaOptions = ctx.options  # type: ignore[assignment]
    config = SignatureConfig.from_options(options.as_dict())
    scoring = ScoringConfig.from_options(options.as_dict())
    generator = ctx.generator
    path = database_path(options, signature_store(ctx.layout.cache, generator))
    started = time.perf_counter()
    db = build_database(path, generator, manifest_tracks(ctx.manifest), config, batch_size=options.batch_size,
                        catalogue_key=ctx.manifest.catalogue_key, progress=ctx.progress)
    extraction_s = round(time.perf_counter() - started, 2)
    signed = set(db.song_ids)
    train_ids = [t for t in ctx.manifest.train_ids if t in signed]
    query_ids = [t for t in ctx.manifest.query_ids if t in signed]
    wanted = set(ctx.manifest.table["track_id"])
    skipped = [{"track_id": t, "split": s, "reason": r} for t, s, r in db.skipped if t in wanted]
    report = diagnostics(db, train_ids, config)
    if report:
        print("\nLUMINA signature statistics (training tracks)\n" + format_diagnostics(report))
    for item in skipped:
        print(f"skipped {item['track_id']} ({item['split']}): {item['reason']}")
    settings = {**options.as_dict(), **asdict(config), **asdict(scoring),
                "p_layers_resolved": db.provenance["p_layers_resolved"],
                "m_layers_resolved": db.provenance["m_layers_resolved"]}
    provenance = {
        "model_id": relative(db.provenance["model_id"]), "model_hash": db.provenance["model_hash"],
        "signature_database": relative(path), "extraction_seconds": extraction_s,
        "signature_dims": db.provenance["dims"], "skipped": skipped, "signature_statistics": report,
    }
    try:  # the tiers and shares need a noise floor: no empirical calibration without control tracks
        table = evidence(db, reference_for(db, scoring, generator), query_ids)
    except ParameterError as err:
        table = None
        provenance["evidence_skipped"] = str(err)
    matrices = []
    for channel in ("P", "M", "PM"):
        train = channel_matrix(db, channel, train_ids)
        queries = channel_matrix(db, channel, query_ids)
        for kind in ("cosine", "kernel"):
            scores = (cosine_scores(train, queries) if kind == "cosine"
                      else kernel_scores(train, queries, scoring.kernel_lambda))
            matrices.append(ScoreMatrix(
                scores=scores, segment_track=train_ids, query_ids=query_ids, method="lumina",
                setting=f"lumina-{channel}{signature_tag(config)}{SCORING_SUFFIX[kind]}",
                normalization=NORMALIZATION[kind], settings={**settings, "channel": channel, "scoring": kind},
                provenance=provenance,
                tables={} if table is None else {EVIDENCE: table[table["channel"].isin(list(channel))]},
            ))
    return matrices
