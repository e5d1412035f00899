"""The gradient baselines as harness methods (SPEC §3; docs/baselines.md): TRAK, Grad-Cos, GradDot, TracIn,
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
from pathlib import Path

import numpy as np

from lumina.audio import load_audio
from lumina.baselines.blockif import block_projected
from lumina.baselines.data import Item, loud_frames, segment_items, track_items
from lumina.baselines.gradients import digest
from lumina.baselines.inner import inner_product_scores
from lumina.baselines.task import (
    lm_state,
    parameter_count,
    restored,
    select_parameters,
    training_checkpoints,
)
from lumina.baselines.trak import trak
from lumina.baselines.unlearning import unlearning_scores
from lumina.errors import ParameterError
from lumina.generator.codes import Segment, cut_segments, encode_tracks
from lumina.methods.base import RunContext
from lumina.scores import ScoreMatrix

NORMALIZATION = {
    "trak": "zscore", "gradcos": "zscore", "graddot": "zscore", "tracin": "zscore",
    "logra": "rank", "factgrass": "rank", "unlearning": "rank",
}
"""SPEC §4's suggested per-query normalisation: z-score for symmetric scores, rank for heavy-tailed ones."""

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


def shared_cache_root(ctx: RunContext) -> Path:
    """The harness cache root (`paths.cache`) when the method folder sits at `<root>/methods/<exp>/<name>`, so
    codes are shared with the generator's training; else the method's own folder."""
    parents = ctx.cache_dir.parents
    return parents[2] if len(parents) > 2 and parents[1].name == "methods" else ctx.cache_dir


def load_corpus(ctx: RunContext, generator) -> Corpus:
    """Codes of every training track and query (cached), cut into segments; texts per `condition`."""
    options = ctx.options
    condition = str(options.get("condition", "description"))
    if condition not in CONDITIONS:
        raise ParameterError(f"method.condition must be one of {CONDITIONS}, got {condition!r}")
    manifest = ctx.manifest
    train_ids, query_ids = manifest.train_ids, manifest.query_ids
    if not train_ids or not query_ids:
        raise ParameterError("the corpus needs training tracks and queries")
    codes = encode_tracks(generator.codec, manifest, train_ids + query_ids, shared_cache_root(ctx))
    table = manifest.table.set_index("track_id")["description"]
    texts = {t: (str(table[t]) if condition == "description" else "") for t in train_ids + query_ids}
    rate = generator.codec.frame_rate
    segments = cut_segments(codes, train_ids, rate, float(options.get("segment_s", 5.0)),
                            float(options.get("min_segment_s", 1.0)))
    return Corpus(segments, segment_items(codes, segments, texts, rate), query_ids,
                  track_items(codes, query_ids, texts), codes, texts)


def parameter_choice(value: object) -> str | list[int]:
    """`parameters` / `target` option: a group name or a list of layer indices."""
    return value if isinstance(value, str) else [int(i) for i in value]  # type: ignore[union-attr]


def parameter_tag(choice: str | Sequence[int], num_layers: int) -> str:
    """Short name of a parameter choice for setting names: the group, or `L10.11` for layers [-2, -1] of 12."""
    return choice if isinstance(choice, str) else "L" + ".".join(str(i % num_layers) for i in sorted(
        {int(i) % num_layers for i in choice}))


def matrix(ctx: RunContext, generator, corpus: Corpus, method: str, setting: str, scores: np.ndarray,
           settings: Mapping, extra: Mapping | None = None) -> ScoreMatrix:
    """The score-matrix artefact with every option and resolved value recorded."""
    return ScoreMatrix(
        scores=scores, segment_track=[s.track_id for s in corpus.segments], query_ids=corpus.query_ids,
        method=method, setting=setting, normalization=NORMALIZATION[method],
        segment_start_s=np.array([s.start_s for s in corpus.segments]),
        settings={**ctx.options, **settings, "segments": len(corpus.segments),
                  "score_sign": "positive = the segment helps the query"},
        provenance={"model_id": generator.source, "model_hash": generator.identity(), **(extra or {})},
    )


def _common(ctx: RunContext) -> tuple[object, Corpus, int]:
    generator = ctx.generator
    return generator, load_corpus(ctx, generator), int(ctx.options.get("batch_size", 8))


def run_inner(ctx: RunContext, method: str) -> list[ScoreMatrix]:
    """GradDot (final weights), Grad-Cos (final weights, cosine) or TracIn (saved checkpoints, η-weighted)."""
    generator, corpus, batch_size = _common(ctx)
    choice = parameter_choice(ctx.options.get("parameters", [-2, -1] if method == "tracin" else "all"))
    names = select_parameters(generator, choice)
    proj_dim, seed = int(ctx.options.get("proj_dim", 0)), int(ctx.options.get("proj_seed", 0))
    if method == "tracin":
        saved = training_checkpoints(generator)
        checkpoints: list = [path for path, _ in saved]
        weights = [lr for _, lr in saved]
        ckpt_desc = [{"path": str(p), "lr": lr} for p, lr in saved]
    else:
        checkpoints, weights, ckpt_desc = [lm_state(generator)], [1.0], ["final"]
    key = digest([generator.identity(), names, proj_dim, seed, ckpt_desc])
    with restored(generator):
        scores = inner_product_scores(
            generator, names, checkpoints, weights, corpus.train, corpus.queries,
            ctx.cache_dir / f"{method}-{key}", normalize=method == "gradcos", proj_dim=proj_dim,
            proj_seed=seed, batch_size=batch_size,
        )
    setting = ("raw" if proj_dim <= 0 else f"k{proj_dim}") + (
        "" if choice == "all" else f"-{parameter_tag(choice, generator.num_layers)}")
    return [matrix(ctx, generator, corpus, method, setting, scores, {
        "parameter_names": len(names), "parameter_count": parameter_count(generator, names),
        "checkpoints": ckpt_desc, "checkpoint_weights": weights,
        "projection": "identity (raw gradients)" if proj_dim <= 0 else "dattri dense Gaussian, 1/sqrt(k)",
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
    generator, corpus, batch_size = _common(ctx)
    options = ctx.options
    choice = parameter_choice(options.get("parameters", [-2, -1]))
    names = select_parameters(generator, choice)
    proj_dim, seed = int(options.get("proj_dim", 2048)), int(options.get("proj_seed", 0))
    regularization, size = float(options.get("regularization", 0.01)), int(options.get("ensemble", 4))
    over = str(options.get("ensemble_over", "projections"))
    if proj_dim <= 0 or size < 1:
        raise ParameterError("TRAK needs method.proj_dim > 0 and method.ensemble >= 1")
    if over == "projections":
        checkpoints: list = [lm_state(generator)]
        members = [(0, m) for m in range(size)]
        ckpt_desc: list = ["final"]
    elif over == "checkpoints":
        saved = training_checkpoints(generator)[-size:]
        checkpoints = [path for path, _ in saved]
        members = [(c, c) for c in range(len(saved))]
        ckpt_desc = [str(p) for p, _ in saved]
    else:
        raise ParameterError(f"method.ensemble_over must be 'projections' or 'checkpoints', got {over!r}")
    key = digest([generator.identity(), names, ckpt_desc, "raw gradients"])
    with restored(generator):
        scores, info = trak(generator, names, checkpoints, members, corpus.train, corpus.queries,
                            ctx.cache_dir / f"grads-{key}", proj_dim=proj_dim, regularization=regularization,
                            proj_seed=seed, batch_size=batch_size)
    setting = f"k{proj_dim}-x{len(members)}" + ("" if over == "projections" else "ckpt") + (
        "" if choice == "all" else f"-{parameter_tag(choice, generator.num_layers)}")
    return [matrix(ctx, generator, corpus, "trak", setting, scores, {
        "parameter_names": len(names), "parameter_count": parameter_count(generator, names),
        "checkpoints": ckpt_desc, "members": members, "output_weight_Q": 1.0,
        "features": "phi = P g (SPEC); dattri's TRAKAttributor with regularization lambda / D gives the same scores",
        **info,
    })]


def run_block(ctx: RunContext, method: str) -> list[ScoreMatrix]:
    """LoGra or FactGraSS at the trained weights."""
    generator, corpus, batch_size = _common(ctx)
    options = ctx.options
    layers = parameter_choice(options.get("layers", "all"))
    proj_dim, blowup = int(options.get("proj_dim", 256)), int(options.get("blowup", 4))
    hessian, seed = str(options.get("hessian", "eFIM")), int(options.get("proj_seed", 0))
    damping = options.get("damping")
    damping = None if damping is None else float(damping)
    key = digest([generator.identity(), method, layers, proj_dim, blowup if method == "factgrass" else None, seed])
    scores, info = block_projected(
        generator, method, corpus.train, corpus.queries, ctx.cache_dir / f"{method}-{key}", layers=layers,
        proj_dim=proj_dim, blowup=blowup, hessian=hessian, damping=damping, proj_seed=seed, batch_size=batch_size,
    )
    setting = f"k{proj_dim}" + (f"-b{blowup}" if method == "factgrass" else "") + (
        "" if layers == "all" else f"-{parameter_tag(layers, generator.num_layers)}")
    return [matrix(ctx, generator, corpus, method, setting, scores, {
        **info, "damping_resolved": 1e-5 if damping is None else damping,
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


def silence_masked(ctx: RunContext, generator, items: Sequence[Item], sources: Sequence[tuple[str, float]],
                   threshold_db: float) -> list[Item]:
    """Items with their quiet frames left out of the loss (seed 004's M_U): `sources` gives each item's track
    and start (s)."""
    codec = generator.codec
    hop = int(round(codec.sample_rate / codec.frame_rate))
    out, audio_of = [], {}
    for item, (track, start_s) in zip(items, sources, strict=True):
        if track not in audio_of:
            audio_of[track] = load_audio(ctx.manifest.path_of(track), codec.sample_rate)
        start = int(round(start_s * codec.sample_rate))
        keep = loud_frames(audio_of[track][start:], item.frames, hop, threshold_db)
        out.append(Item(item.codes, item.text, keep if keep.any() else None))
    return out


def unlearning_settings(options: Mapping) -> dict:
    """The unlearning options with their defaults."""
    return {
        "target": parameter_choice(options.get("target", [-2, -1])),
        "steps": int(options.get("steps", 8)),
        "lr": float(options.get("lr", 1e-4)),
        "optimizer": str(options.get("optimizer", "adam")),
        "fisher_samples": int(options.get("fisher_samples", 64)),
        "silence_mask": bool(options.get("silence_mask", True)),
        "silence_db": float(options.get("silence_db", -50.0)),
        "fisher_seed": int(options.get("fisher_seed", 0)),
    }


def fisher_sample(n: int, size: int, seed: int) -> np.ndarray:
    """Indices of the training segments the Fisher is estimated on (sorted; all when size >= n)."""
    return np.sort(np.random.default_rng(seed).choice(n, size=min(size, n), replace=False))


def run_unlearning(ctx: RunContext) -> list[ScoreMatrix]:
    """`+method=unlearning`: τ = L(zᵢ, Θ_unlearned) − L(zᵢ, Θ₀) per training segment and query."""
    generator, corpus, batch_size = _common(ctx)
    s = unlearning_settings(ctx.options)
    names = select_parameters(generator, s["target"])
    queries = corpus.queries
    if s["silence_mask"]:
        queries = silence_masked(ctx, generator, queries, [(q, 0.0) for q in corpus.query_ids], s["silence_db"])
    fisher_items = [corpus.train[i] for i in fisher_sample(len(corpus.train), s["fisher_samples"], s["fisher_seed"])]
    key = digest([generator.identity(), names, s])
    with restored(generator):
        scores, info = unlearning_scores(
            generator, names, corpus.train, queries, fisher_items, ctx.cache_dir / f"unlearn-{key}",
            steps=s["steps"], lr=s["lr"], optimizer=s["optimizer"], batch_size=batch_size,
        )
    setting = parameter_tag(s["target"], generator.num_layers) + ("" if s["silence_mask"] else "-nomask")
    return [matrix(ctx, generator, corpus, "unlearning", setting, scores, {
        **s, "parameter_names": len(names), "parameter_count": parameter_count(generator, names),
        "n_train_segments": len(corpus.train), **info,
    })]
