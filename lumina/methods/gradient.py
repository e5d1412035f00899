"""The gradient baselines as harness methods (docs/baselines.md): TRAK, Grad-Cos, GradDot, TracIn,
LoGra, FactGraSS and Fisher-regularised unlearning, each writing a segment-level score matrix.

    python -m experiments.run +method=trak
    python -m experiments.run +method=gradcos method.parameters=[10,11] method.proj_dim=4096
    python -m experiments.run +method=unlearning method.target=cross_attn

Rows are the training tracks cut into `segment_s` segments, columns the queries (whole tracks). Every
method caches its intermediate results under its cache folder, keyed by the model, the options and the
items, so an interrupted run resumes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lumina.data.audio import load_audio
from lumina.methods.base import RunContext
from lumina.methods.baselines.block_projected import block_projected
from lumina.methods.baselines.gradient_similarity import inner_product_scores
from lumina.methods.baselines.gradients import digest
from lumina.methods.baselines.items import loud_frames, segment_items, track_items
from lumina.methods.baselines.trak import trak
from lumina.methods.baselines.unlearning import unlearning_scores
from lumina.methods.baselines.weights import parameter_count, restored, weights_copy
from lumina.methods.options import (
    FactGraSSOptions,
    GradDotOptions,
    LayerChoice,
    LoGraOptions,
    SegmentOptions,
    TrakOptions,
    UnlearningOptions,
)
from lumina.models.codes import Segment, cut_segments, encode_tracks
from lumina.models.protocol import Generator, Item
from lumina.runs.errors import ParameterError
from lumina.runs.score_matrix import ScoreMatrix

NORMALIZATION = {
    "trak": "zscore", "gradcos": "zscore", "graddot": "zscore", "tracin": "zscore",
    "logra": "rank", "factgrass": "rank", "unlearning": "rank",
}
"""Per-query normalisation for Aria (docs/aria.md): z-score for symmetric scores, rank for heavy-tailed ones."""

CONDITIONS = ("description", "empty")


@dataclass
class Corpus:
    """The scored units of a run: training segments (rows) and queries (columns) as items."""

    segments: list[Segment]
    train: list[Item]
    query_ids: list[str]
    queries: list[Item]
    codes: dict[str, np.ndarray]
    texts: dict[str, str]


def segment_corpus(ctx: RunContext, generator: Generator) -> Corpus:
    """Tokens of every training track and query (cached), cut into segments; texts per `condition`."""
    options: SegmentOptions = ctx.options  # type: ignore[assignment]
    if options.condition not in CONDITIONS:
        raise ParameterError(f"method.condition must be one of {CONDITIONS}, got {options.condition!r}")
    manifest = ctx.manifest
    train_ids, query_ids = manifest.train_ids, manifest.query_ids
    if not train_ids or not query_ids:
        raise ParameterError("the corpus needs training tracks and queries")
    codes = encode_tracks(generator.codec, manifest, train_ids + query_ids, ctx.layout.cache, progress=ctx.progress)
    table = manifest.table.set_index("track_id")["description"]
    texts = {t: (str(table[t]) if options.condition == "description" else "") for t in train_ids + query_ids}
    rate = generator.codec.frame_rate
    segments = cut_segments(codes, train_ids, rate, options.segment_s, options.min_segment_s)
    return Corpus(segments, segment_items(codes, segments, texts, rate), query_ids,
                  track_items(codes, query_ids, texts), codes, texts)


def parameter_tag(choice: LayerChoice, num_layers: int) -> str:
    """Short name of a parameter choice for setting names: the group, or `L10.11` for layers [-2, -1] of 12."""
    return choice if isinstance(choice, str) else "L" + ".".join(str(i % num_layers) for i in sorted(
        {int(i) % num_layers for i in choice}))


def matrix(ctx: RunContext, generator: Generator, corpus: Corpus, method: str, setting: str, scores: np.ndarray,
           settings: Mapping, extra: Mapping | None = None) -> ScoreMatrix:
    """The score-matrix artefact with every option and resolved value recorded."""
    return ScoreMatrix(
        scores=scores, segment_track=[s.track_id for s in corpus.segments], query_ids=corpus.query_ids,
        method=method, setting=setting, normalization=NORMALIZATION[method],
        segment_start_s=np.array([s.start_s for s in corpus.segments]),
        settings={**ctx.options.as_dict(), **settings, "segments": len(corpus.segments),
                  "score_sign": "positive = the segment helps the query"},
        provenance={"model_id": generator.source, "model_hash": generator.identity(), **(extra or {})},
    )


def run_inner(ctx: RunContext, method: str) -> list[ScoreMatrix]:
    """GradDot (final weights), Grad-Cos (final weights, cosine) or TracIn (saved checkpoints, η-weighted)."""
    options: GradDotOptions = ctx.options  # type: ignore[assignment]
    generator = ctx.generator
    corpus = segment_corpus(ctx, generator)
    names = generator.parameter_group(options.parameters)
    if method == "tracin":
        saved = generator.checkpoints()
        checkpoints: list = [path for path, _ in saved]
        weights = [lr for _, lr in saved]
        ckpt_desc: list = [{"path": str(p), "lr": lr} for p, lr in saved]
    else:
        checkpoints, weights, ckpt_desc = [weights_copy(generator)], [1.0], ["final"]
    key = digest([generator.identity(), names, options.proj_dim, options.proj_seed, ckpt_desc])
    with restored(generator):
        scores = inner_product_scores(
            generator, names, checkpoints, weights, corpus.train, corpus.queries,
            ctx.cache_dir / f"{method}-{key}", normalize=method == "gradcos", proj_dim=options.proj_dim,
            proj_seed=options.proj_seed, batch_size=options.batch_size, progress=ctx.progress,
        )
    setting = ("raw" if options.proj_dim <= 0 else f"k{options.proj_dim}") + (
        "" if options.parameters == "all" else f"-{parameter_tag(options.parameters, generator.num_layers)}")
    return [matrix(ctx, generator, corpus, method, setting, scores, {
        "parameter_names": len(names), "parameter_count": parameter_count(generator, names),
        "checkpoints": ckpt_desc, "checkpoint_weights": weights,
        "projection": "identity (raw gradients)" if options.proj_dim <= 0 else "dattri dense Gaussian, 1/sqrt(k)",
    })]


def run_graddot(ctx: RunContext) -> list[ScoreMatrix]:
    """`+method=graddot`: gᵢ · g_q at the trained weights."""
    return run_inner(ctx, "graddot")


def run_gradcos(ctx: RunContext) -> list[ScoreMatrix]:
    """`+method=gradcos`: cos(P gᵢ, P g_q) at the trained weights."""
    return run_inner(ctx, "gradcos")


def run_tracin(ctx: RunContext) -> list[ScoreMatrix]:
    """`+method=tracin`: Σ_c η_c (P gᵢᶜ) · (P g_qᶜ) over the saved training checkpoints."""
    return run_inner(ctx, "tracin")


def run_trak(ctx: RunContext) -> list[ScoreMatrix]:
    """`+method=trak`: TRAK ensembled over `ensemble` projections of the trained model, or over the saved
    training checkpoints (`ensemble_over: checkpoints`)."""
    options: TrakOptions = ctx.options  # type: ignore[assignment]
    generator = ctx.generator
    corpus = segment_corpus(ctx, generator)
    names = generator.parameter_group(options.parameters)
    if options.proj_dim <= 0 or options.ensemble < 1:
        raise ParameterError("TRAK needs method.proj_dim > 0 and method.ensemble >= 1")
    if options.ensemble_over == "projections":
        checkpoints: list = [weights_copy(generator)]
        members = [(0, m) for m in range(options.ensemble)]
        ckpt_desc: list = ["final"]
    elif options.ensemble_over == "checkpoints":
        saved = generator.checkpoints()[-options.ensemble:]
        checkpoints = [path for path, _ in saved]
        members = [(c, c) for c in range(len(saved))]
        ckpt_desc = [str(p) for p, _ in saved]
    else:
        raise ParameterError(f"method.ensemble_over must be 'projections' or 'checkpoints', got "
                             f"{options.ensemble_over!r}")
    key = digest([generator.identity(), names, ckpt_desc, "raw gradients"])
    with restored(generator):
        scores, info = trak(generator, names, checkpoints, members, corpus.train, corpus.queries,
                            ctx.cache_dir / f"grads-{key}", proj_dim=options.proj_dim,
                            regularization=options.regularization, proj_seed=options.proj_seed,
                            batch_size=options.batch_size, progress=ctx.progress)
    setting = f"k{options.proj_dim}-x{len(members)}" + ("" if options.ensemble_over == "projections" else "ckpt") + (
        "" if options.parameters == "all" else f"-{parameter_tag(options.parameters, generator.num_layers)}")
    return [matrix(ctx, generator, corpus, "trak", setting, scores, {
        "parameter_names": len(names), "parameter_count": parameter_count(generator, names),
        "checkpoints": ckpt_desc, "members": members, "output_weight_Q": 1.0,
        "features": "phi = P g (docs/baselines.md); dattri's TRAKAttributor with regularization lambda / D gives "
                    "the same scores",
        **info,
    })]


def run_block(ctx: RunContext, method: str) -> list[ScoreMatrix]:
    """LoGra or FactGraSS at the trained weights."""
    options: LoGraOptions = ctx.options  # type: ignore[assignment]
    generator = ctx.generator
    corpus = segment_corpus(ctx, generator)
    blowup = options.blowup if isinstance(options, FactGraSSOptions) else 4
    key = digest([generator.identity(), method, options.layers if isinstance(options.layers, str)
                  else list(options.layers), options.proj_dim, blowup if method == "factgrass" else None,
                  options.proj_seed])
    scores, info = block_projected(
        generator, method, corpus.train, corpus.queries, ctx.cache_dir / f"{method}-{key}", layers=options.layers,
        proj_dim=options.proj_dim, blowup=blowup, hessian=options.hessian, damping=options.damping,
        proj_seed=options.proj_seed, batch_size=options.batch_size, progress=ctx.progress,
    )
    setting = f"k{options.proj_dim}" + (f"-b{blowup}" if method == "factgrass" else "") + (
        "" if options.layers == "all" else f"-{parameter_tag(options.layers, generator.num_layers)}")
    return [matrix(ctx, generator, corpus, method, setting, scores, {
        **info, "damping_resolved": 1e-5 if options.damping is None else options.damping,
        "damping_scale": "times the per-layer mean eigenvalue tr(H)/dim (dattri stable_inverse)",
        "compression": "dattri LoGra: Gaussian factors" if method == "logra"
        else "dattri FactGraSS: random-mask factors, then dense Gaussian (SJLT on CUDA only)",
    })]


def run_logra(ctx: RunContext) -> list[ScoreMatrix]:
    """`+method=logra`."""
    return run_block(ctx, "logra")


def run_factgrass(ctx: RunContext) -> list[ScoreMatrix]:
    """`+method=factgrass`."""
    return run_block(ctx, "factgrass")


def silence_masked(ctx: RunContext, generator: Generator, items: Sequence[Item],
                   sources: Sequence[tuple[str, float]], threshold_db: float) -> list[Item]:
    """Items with their quiet frames left out of the loss (the unlearning source's mask M_U,
    docs/baselines.md#fisher-regularised-unlearning): `sources` gives each item's track and start (s)."""
    codec = generator.codec
    hop = int(round(codec.sample_rate / codec.frame_rate))
    out, audio_of = [], {}
    for item, (track, start_s) in zip(items, sources, strict=True):
        if track not in audio_of:
            audio_of[track] = load_audio(ctx.manifest.path_of(track), codec.sample_rate)
        start = int(round(start_s * codec.sample_rate))
        keep = loud_frames(audio_of[track][start:], item.frames, hop, threshold_db)
        out.append(Item(item.tokens, item.text, keep if keep.any() else None))
    return out


def unlearning_settings(options: UnlearningOptions) -> dict:
    """The options that determine unlearning's scores (its cache key and recorded settings)."""
    return {"target": options.target if isinstance(options.target, str) else list(options.target),
            **{k: getattr(options, k) for k in ("steps", "lr", "optimizer", "fisher_samples", "silence_mask",
                                                "silence_db", "fisher_seed")}}


def fisher_sample(n: int, size: int, seed: int) -> np.ndarray:
    """Indices of the training segments the Fisher is estimated on (sorted; all when size >= n)."""
    return np.sort(np.random.default_rng(seed).choice(n, size=min(size, n), replace=False))



def run_unlearning(ctx: RunContext) -> list[ScoreMatrix]:
    """`+method=unlearning`: τ = L(zᵢ, Θ_unlearned) − L(zᵢ, Θ₀) per training segment and query."""
    options: UnlearningOptions = ctx.options  # type: ignore[assignment]
    generator = ctx.generator
    corpus = segment_corpus(ctx, generator)
    settings = unlearning_settings(options)
    names = generator.parameter_group(options.target)
    queries = corpus.queries
    if options.silence_mask:
        queries = silence_masked(ctx, generator, queries, [(q, 0.0) for q in corpus.query_ids], options.silence_db)
    fisher_items = [corpus.train[i] for i in fisher_sample(len(corpus.train), options.fisher_samples,
                                                           options.fisher_seed)]
    key = digest([generator.identity(), names, settings])
    with restored(generator):
        scores, info = unlearning_scores(
            generator, names, corpus.train, queries, fisher_items, ctx.cache_dir / f"unlearn-{key}",
            steps=options.steps, lr=options.lr, optimizer=options.optimizer, batch_size=options.batch_size,
            progress=ctx.progress,
        )
    setting = parameter_tag(options.target, generator.num_layers) + ("" if options.silence_mask else "-nomask")
    return [matrix(ctx, generator, corpus, "unlearning", setting, scores, {
        **settings, "parameter_names": len(names), "parameter_count": parameter_count(generator, names),
        "n_train_segments": len(corpus.train), **info,
    })]
