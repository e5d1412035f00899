"""Embedding-retrieval baselines (docs/embeddings.md): cosine between time-averaged embeddings of each training
track and each query, track-level, z-scored per query by Aria.

    python -m experiments.run +method=embedding                        # madmom deep chroma, offline
    python -m experiments.run +method=embedding method.encoder=madmom-chordfeat
    python -m experiments.run +method=clap method.checkpoint=/models/larger_clap_music
    python -m experiments.run +method=mert method.checkpoint=/models/MERT-v1-95M method.trust_remote_code=true
"""

from __future__ import annotations

from lumina.methods.base import NotConfigured, RunContext
from lumina.methods.retrieval import CHECKPOINT_ENCODERS, cosine_matrix, embed_files, load_encoder
from lumina.runs.score_matrix import ScoreMatrix

DEFAULT_ENCODER = "madmom-deepchroma"


def run_clap(ctx: RunContext) -> list[ScoreMatrix | NotConfigured]:
    """`+method=clap`: CLAP from `method.checkpoint` (not configured when it is null)."""
    return run_encoder(ctx, "clap", "clap")


def run_mert(ctx: RunContext) -> list[ScoreMatrix | NotConfigured]:
    """`+method=mert`: MERT from `method.checkpoint`; MERT-v1's remote code needs `method.trust_remote_code`."""
    return run_encoder(ctx, "mert", "mert")


def run_embedding(ctx: RunContext) -> list[ScoreMatrix | NotConfigured]:
    """`+method=embedding`: any registered encoder, `method.encoder` (default: madmom deep chroma)."""
    return run_encoder(ctx, "embedding", ctx.options.encoder or DEFAULT_ENCODER)  # type: ignore[attr-defined]


def run_encoder(ctx: RunContext, method: str, kind: str) -> list[ScoreMatrix | NotConfigured]:
    """Score every query against every training track of `ctx.manifest` with encoder `kind`.

    Returns one track-level ScoreMatrix (N_train, Q) named for the encoder really used, or NotConfigured
    when the encoder needs a checkpoint and none is set.
    """
    options = {k: v for k, v in ctx.options.as_dict().items()
               if k not in ("name", "encoder", "progress") and v is not None}
    if kind in CHECKPOINT_ENCODERS and not options.get("checkpoint"):
        return [NotConfigured(method, kind, f"no {kind} checkpoint configured: set method.checkpoint to a local "
                                            "directory in transformers layout (docs/embeddings.md)")]
    encoder = load_encoder(kind, options)
    train, queries = ctx.manifest.train_ids, ctx.manifest.query_ids
    paths = {track: ctx.manifest.path_of(track) for track in [*train, *queries]}
    vectors = embed_files(encoder, paths, ctx.cache_dir, workers=ctx.threads, progress=ctx.progress)
    scores = cosine_matrix(vectors[: len(train)], vectors[len(train):])
    return [ScoreMatrix(
        scores=scores, segment_track=train, query_ids=queries, method=method, setting=encoder.name,
        normalization="zscore", settings={**encoder.settings, "score": "cosine of time-averaged embeddings"},
        provenance={"model_id": encoder.checkpoint or encoder.identity.get("model"),
                    "model_hash": encoder.identity.get("checkpoint_sha256") or encoder.identity.get("models_sha256")},
    )]
