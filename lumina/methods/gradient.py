"""The gradient baselines as harness methods (docs/baselines.md): TRAK, Grad-Cos, GradDot, TracIn,
LoGra, FactGraSS and Fisher-regularised unlearning, each writing a segment-level score matrix.

    python -m experiments.run +method=trak
    python -m experiments.run +method=gradcos method.parameters=[10,11] method.proj_dim=4096
    python -m experiments.run +method=unlearning method.target=cross_attn
    python -m experiments.run +method=gradients          # TRAK … FactGraSS from one shared gradient pass

Rows are the training tracks cut into `segment_s` segments, columns the queries (whole tracks). Every
method caches its intermediate results under its cache folder, keyed by the model, the options and the
items, so an interrupted run resumes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from lumina.data.audio import load_audio
from lumina.methods.base import RunContext
from lumina.methods.baselines.block_projected import (
    Compression,
    block_projected,
    block_scores,
    projected_rows,
    set_up_compressors,
)
from lumina.methods.baselines.gradient_pass import Inner, InnerRows, Raw, SplitRows, Visit, gradient_pass
from lumina.methods.baselines.gradient_similarity import inner_product_scores, projected_inner, weighted_sum
from lumina.methods.baselines.gradients import digest
from lumina.methods.baselines.items import loud_frames, segment_items, track_items
from lumina.methods.baselines.trak import projected_members, trak, trak_result
from lumina.methods.baselines.unlearning import unlearning_scores
from lumina.methods.baselines.weights import parameter_count, restored, weights_copy
from lumina.methods.options import (
    GRADIENT_PASS_METHODS,
    METHOD_OPTIONS,
    FactGraSSOptions,
    GradDotOptions,
    GradientsOptions,
    LayerChoice,
    LoGraOptions,
    MethodOptions,
    SegmentOptions,
    TrakOptions,
    UnlearningOptions,
    options_for,
)
from lumina.models.codes import Segment, cut_segments, encode_tracks
from lumina.models.protocol import Generator, Item
from lumina.models.training import checkpoint_weights
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
           settings: Mapping, extra: Mapping | None = None, options: MethodOptions | None = None) -> ScoreMatrix:
    """The score-matrix artefact with every option (`options`, default the run's) and resolved value recorded."""
    return ScoreMatrix(
        scores=scores, segment_track=[s.track_id for s in corpus.segments], query_ids=corpus.query_ids,
        method=method, setting=setting, normalization=NORMALIZATION[method],
        segment_start_s=np.array([s.start_s for s in corpus.segments]),
        settings={**(options or ctx.options).as_dict(), **settings, "segments": len(corpus.segments),
                  "score_sign": "positive = the segment helps the query"},
        provenance={"model_id": generator.source, "model_hash": generator.identity(), **(extra or {})},
    )


def inner_checkpoints(generator: Generator, method: str) -> tuple[list, list[float], list]:
    """GradDot's and Grad-Cos's one checkpoint (the trained weights, weight 1) or TracIn's saved checkpoints and
    learning rates: (checkpoints, weights, their description)."""
    if method == "tracin":
        saved = generator.checkpoints()
        return [path for path, _ in saved], [lr for _, lr in saved], [{"path": str(p), "lr": lr} for p, lr in saved]
    return [weights_copy(generator)], [1.0], ["final"]


def inner_setting(options: GradDotOptions, generator: Generator) -> str:
    """The setting name of GradDot, Grad-Cos or TracIn: `raw` or `k<dim>`, and the parameter tag."""
    return ("raw" if options.proj_dim <= 0 else f"k{options.proj_dim}") + (
        "" if options.parameters == "all" else f"-{parameter_tag(options.parameters, generator.num_layers)}")


def inner_settings(generator: Generator, names: Sequence[str], options: GradDotOptions, ckpt_desc: list,
                   weights: list[float]) -> dict:
    """What GradDot, Grad-Cos and TracIn record beside their options."""
    return {
        "parameter_names": len(names), "parameter_count": parameter_count(generator, names),
        "checkpoints": ckpt_desc, "checkpoint_weights": weights,
        "projection": "identity (raw gradients)" if options.proj_dim <= 0 else "dattri dense Gaussian, 1/sqrt(k)",
    }


def run_inner(ctx: RunContext, method: str) -> list[ScoreMatrix]:
    """GradDot (final weights), Grad-Cos (final weights, cosine) or TracIn (saved checkpoints, η-weighted)."""
    options: GradDotOptions = ctx.options  # type: ignore[assignment]
    generator = ctx.generator
    corpus = segment_corpus(ctx, generator)
    names = generator.parameter_group(options.parameters)
    checkpoints, weights, ckpt_desc = inner_checkpoints(generator, method)
    key = digest([generator.identity(), names, options.proj_dim, options.proj_seed, ckpt_desc])
    with restored(generator):
        scores = inner_product_scores(
            generator, names, checkpoints, weights, corpus.train, corpus.queries,
            ctx.cache_dir / f"{method}-{key}", normalize=method == "gradcos", proj_dim=options.proj_dim,
            proj_seed=options.proj_seed, batch_size=options.batch_size, progress=ctx.progress,
        )
    return [matrix(ctx, generator, corpus, method, inner_setting(options, generator), scores,
                   inner_settings(generator, names, options, ckpt_desc, weights))]


def run_graddot(ctx: RunContext) -> list[ScoreMatrix]:
    """`+method=graddot`: gᵢ · g_q at the trained weights."""
    return run_inner(ctx, "graddot")


def run_gradcos(ctx: RunContext) -> list[ScoreMatrix]:
    """`+method=gradcos`: cos(P gᵢ, P g_q) at the trained weights."""
    return run_inner(ctx, "gradcos")


def run_tracin(ctx: RunContext) -> list[ScoreMatrix]:
    """`+method=tracin`: Σ_c η_c (P gᵢᶜ) · (P g_qᶜ) over the saved training checkpoints."""
    return run_inner(ctx, "tracin")


def trak_members(generator: Generator, options: TrakOptions) -> tuple[list, list[tuple[int, int]], list]:
    """TRAK's checkpoints, its members (checkpoint index, projection ensemble id) and the checkpoints' description."""
    if options.proj_dim <= 0 or options.ensemble < 1:
        raise ParameterError("TRAK needs method.proj_dim > 0 and method.ensemble >= 1")
    if options.ensemble_over == "projections":
        return [weights_copy(generator)], [(0, m) for m in range(options.ensemble)], ["final"]
    if options.ensemble_over == "checkpoints":
        saved = generator.checkpoints()[-options.ensemble:]
        return [path for path, _ in saved], [(c, c) for c in range(len(saved))], [str(p) for p, _ in saved]
    raise ParameterError(f"method.ensemble_over must be 'projections' or 'checkpoints', got {options.ensemble_over!r}")


def trak_setting(options: TrakOptions, members: Sequence[tuple[int, int]], generator: Generator) -> str:
    """TRAK's setting name: `k<dim>-x<members>`, `ckpt` when ensembled over checkpoints, the parameter tag."""
    return f"k{options.proj_dim}-x{len(members)}" + ("" if options.ensemble_over == "projections" else "ckpt") + (
        "" if options.parameters == "all" else f"-{parameter_tag(options.parameters, generator.num_layers)}")


def trak_settings(generator: Generator, names: Sequence[str], ckpt_desc: list, members: list, info: dict) -> dict:
    """What TRAK records beside its options."""
    return {
        "parameter_names": len(names), "parameter_count": parameter_count(generator, names),
        "checkpoints": ckpt_desc, "members": members, "output_weight_Q": 1.0,
        "features": "phi = P g (docs/baselines.md); dattri's TRAKAttributor with regularization lambda / D gives "
                    "the same scores",
        **info,
    }


def run_trak(ctx: RunContext) -> list[ScoreMatrix]:
    """`+method=trak`: TRAK ensembled over `ensemble` projections of the trained model, or over the saved
    training checkpoints (`ensemble_over: checkpoints`)."""
    options: TrakOptions = ctx.options  # type: ignore[assignment]
    generator = ctx.generator
    corpus = segment_corpus(ctx, generator)
    names = generator.parameter_group(options.parameters)
    checkpoints, members, ckpt_desc = trak_members(generator, options)
    key = digest([generator.identity(), names, ckpt_desc, "raw gradients"])
    with restored(generator):
        scores, info = trak(generator, names, checkpoints, members, corpus.train, corpus.queries,
                            ctx.cache_dir / f"grads-{key}", proj_dim=options.proj_dim,
                            regularization=options.regularization, proj_seed=options.proj_seed,
                            batch_size=options.batch_size, progress=ctx.progress)
    return [matrix(ctx, generator, corpus, "trak", trak_setting(options, members, generator), scores,
                   trak_settings(generator, names, ckpt_desc, members, info))]


def block_blowup(options: LoGraOptions) -> int:
    """FactGraSS's blow-up factor (LoGra has none: 4, unused)."""
    return options.blowup if isinstance(options, FactGraSSOptions) else 4


def block_setting(method: str, options: LoGraOptions, generator: Generator) -> str:
    """LoGra's or FactGraSS's setting name: `k<dim>`, FactGraSS's `-b<blowup>`, the layer tag."""
    return f"k{options.proj_dim}" + (f"-b{block_blowup(options)}" if method == "factgrass" else "") + (
        "" if options.layers == "all" else f"-{parameter_tag(options.layers, generator.num_layers)}")


def block_settings(method: str, options: LoGraOptions, info: dict) -> dict:
    """What LoGra and FactGraSS record beside their options."""
    return {
        **info, "damping_resolved": 1e-5 if options.damping is None else options.damping,
        "damping_scale": "times the per-layer mean eigenvalue tr(H)/dim (dattri stable_inverse)",
        "compression": "dattri LoGra: Gaussian factors" if method == "logra"
        else "dattri FactGraSS: random-mask factors, then dense Gaussian (SJLT on CUDA only)",
    }


def run_block(ctx: RunContext, method: str) -> list[ScoreMatrix]:
    """LoGra or FactGraSS at the trained weights."""
    options: LoGraOptions = ctx.options  # type: ignore[assignment]
    generator = ctx.generator
    corpus = segment_corpus(ctx, generator)
    blowup = block_blowup(options)
    key = digest([generator.identity(), method, options.layers if isinstance(options.layers, str)
                  else list(options.layers), options.proj_dim, blowup if method == "factgrass" else None,
                  options.proj_seed])
    scores, info = block_projected(
        generator, method, corpus.train, corpus.queries, ctx.cache_dir / f"{method}-{key}", layers=options.layers,
        proj_dim=options.proj_dim, blowup=blowup, hessian=options.hessian, damping=options.damping,
        proj_seed=options.proj_seed, batch_size=options.batch_size, progress=ctx.progress,
    )
    return [matrix(ctx, generator, corpus, method, block_setting(method, options, generator), scores,
                   block_settings(method, options, info))]


def run_logra(ctx: RunContext) -> list[ScoreMatrix]:
    """`+method=logra`."""
    return run_block(ctx, "logra")


def run_factgrass(ctx: RunContext) -> list[ScoreMatrix]:
    """`+method=factgrass`."""
    return run_block(ctx, "factgrass")


PASS_NOTE = ("computed by the shared gradient pass, python -m experiments.run +method=gradients "
             "(docs/baselines.md#the-shared-gradient-pass)")


def gradients_options(options: GradientsOptions) -> dict[str, MethodOptions]:
    """The options of each method the shared pass derives: its own defaults (conf/method/NAME.yaml), the pass's
    segment options, then `overrides[NAME]`."""
    unknown = sorted(set(options.methods) - set(GRADIENT_PASS_METHODS))
    stray = sorted(set(options.overrides) - set(options.methods))
    if unknown or stray or not options.methods:
        raise ParameterError(f"method.methods must name some of {GRADIENT_PASS_METHODS} (got {list(options.methods)}); "
                             f"method.overrides may only name those (got {stray})")
    shared = {f.name: getattr(options, f.name) for f in fields(SegmentOptions) if f.name != "name"}
    out = {}
    for name in dict.fromkeys(options.methods):
        overrides = dict(options.overrides.get(name) or {})
        clash = sorted(set(overrides) & set(shared))
        if clash:
            raise ParameterError(f"method.overrides.{name} sets {clash}: segment options are the pass's own, set "
                                 f"method.{clash[0]} for every method")
        out[name] = options_for(name, {**METHOD_OPTIONS[name]().as_dict(), **shared, **overrides, "name": name})
    return out


class PassPlan:
    """The visits of one shared pass: the trained weights first, then each saved checkpoint whose weights differ
    from them (one equal to them bit for bit, as the last training checkpoint usually is, is read from the trained
    weights' visit)."""

    def __init__(self, generator: Generator) -> None:
        self.final = weights_copy(generator)
        self.visits = [Visit("final", self.final)]
        self.shared_with_final: list[str] = []

    def visit(self, checkpoint: dict | str | Path) -> int:
        """Index of the visit of `checkpoint` (the trained weights' state, or a checkpoint folder)."""
        if isinstance(checkpoint, dict):
            return 0
        label = str(checkpoint)
        for v, known in enumerate(self.visits):
            if known.label == label:
                return v
        if label in self.shared_with_final:
            return 0
        state = checkpoint_weights(checkpoint)
        if state.keys() == self.final.keys() and all(torch.equal(state[n], self.final[n].cpu()) for n in state):
            self.shared_with_final.append(label)
            return 0
        self.visits.append(Visit(label, checkpoint))
        return len(self.visits) - 1


Finish = Callable[[list[list[InnerRows | SplitRows]]], ScoreMatrix]


def plan_inner(ctx: RunContext, plan: PassPlan, corpus: Corpus, method: str, options: GradDotOptions) -> Finish:
    """GradDot's, Grad-Cos's or TracIn's requests (inner products, or raw gradients to project) at each of its
    checkpoints, and how its matrix follows from them (`inner_product_scores`'s arithmetic)."""
    generator = ctx.generator
    names = tuple(generator.parameter_group(options.parameters))
    checkpoints, weights, ckpt_desc = inner_checkpoints(generator, method)
    request = Inner(names) if options.proj_dim <= 0 else Raw(names)
    refs = [(v, plan.visits[v].add(request)) for v in map(plan.visit, checkpoints)]

    def finish(results: list[list[InnerRows | SplitRows]]) -> ScoreMatrix:
        per_checkpoint = []
        for c, (v, j) in enumerate(refs):
            rows = results[v][j]
            if isinstance(rows, InnerRows):
                per_checkpoint.append((rows.dots, rows.train_norms, rows.query_norms))
            else:
                per_checkpoint.append(projected_inner(torch.from_numpy(rows.train), torch.from_numpy(rows.queries),
                                                      generator.device, options.proj_dim, options.proj_seed, c))
        scores = weighted_sum(per_checkpoint, weights, normalize=method == "gradcos")
        return matrix(ctx, generator, corpus, method, inner_setting(options, generator), scores,
                      {**inner_settings(generator, names, options, ckpt_desc, weights),
                       **pass_settings(plan, checkpoints)},
                      options=options)

    return finish


def plan_trak(ctx: RunContext, plan: PassPlan, corpus: Corpus, options: TrakOptions) -> Finish:
    """TRAK's raw-gradient request at each checkpoint it ensembles over, and its projections and solve after."""
    generator = ctx.generator
    names = tuple(generator.parameter_group(options.parameters))
    checkpoints, members, ckpt_desc = trak_members(generator, options)
    refs = {c: (v, plan.visits[v].add(Raw(names))) for c, v in
            ((c, plan.visit(checkpoints[c])) for c in sorted({c for c, _ in members}))}

    def finish(results: list[list[InnerRows | SplitRows]]) -> ScoreMatrix:
        features = []
        for c, (v, j) in refs.items():
            rows = results[v][j]
            stacked = torch.from_numpy(np.concatenate([rows.train, rows.queries])).to(generator.device)
            features += projected_members(stacked, len(corpus.train), [e for m, e in members if m == c],
                                          options.proj_dim, options.proj_seed, desc=f"trak: projections [{c}]",
                                          progress=ctx.progress)
            del stacked
        scores, info = trak_result(features, options.regularization, options.proj_dim)
        return matrix(ctx, generator, corpus, "trak", trak_setting(options, members, generator), scores,
                      {**trak_settings(generator, names, ckpt_desc, members, info),
                       **pass_settings(plan, checkpoints)},
                      options=options)

    return finish


def plan_block(ctx: RunContext, plan: PassPlan, corpus: Corpus, method: str, options: LoGraOptions) -> Finish:
    """LoGra's or FactGraSS's compression at the trained weights (dattri's compressors, as its own path sets them
    up), and its preconditioned scores after."""
    generator = ctx.generator
    compression = Compression(method, options.layers if isinstance(options.layers, str) else tuple(options.layers),
                              options.proj_dim, block_blowup(options), options.proj_seed, corpus.train[0])
    with torch.compiler.set_stance("force_eager"):
        setup = set_up_compressors(generator, compression)
    j = plan.visits[0].add_compression(compression, setup)

    def finish(results: list[list[InnerRows | SplitRows]]) -> ScoreMatrix:
        rows = results[0][j]
        train, queries = (projected_rows(setup, torch.from_numpy(r)) for r in (rows.train, rows.queries))
        scores, info = block_scores(train, queries, setup[1], options.proj_dim, hessian=options.hessian,
                                    damping=options.damping)
        return matrix(ctx, generator, corpus, method, block_setting(method, options, generator), scores,
                      {**block_settings(method, options, info), **pass_settings(plan)}, options=options)

    return finish


def pass_settings(plan: PassPlan, checkpoints: Sequence = ()) -> dict:
    """The note every matrix of the shared pass records (where it came from) and, for a method over saved
    checkpoints, which of them were read from the trained weights' visit (equal to them bit for bit)."""
    as_final = [str(c) for c in checkpoints if not isinstance(c, dict) and str(c) in plan.shared_with_final]
    return {"gradient_pass": PASS_NOTE, **({"gradient_pass_checkpoints_as_final": as_final}
                                           if any(not isinstance(c, dict) for c in checkpoints) else {})}


def run_gradients(ctx: RunContext) -> list[ScoreMatrix]:
    """`+method=gradients`: GradDot, Grad-Cos, TracIn, TRAK, LoGra and FactGraSS (`method.methods`) from one shared
    gradient pass, each matrix what `+method=NAME` writes (same folder, setting and recorded options)."""
    options: GradientsOptions = ctx.options  # type: ignore[assignment]
    derived = gradients_options(options)
    generator = ctx.generator
    corpus = segment_corpus(ctx, generator)
    with restored(generator):
        plan = PassPlan(generator)
        finishers = []
        for name, method_options in derived.items():
            if name in ("graddot", "gradcos", "tracin"):
                finishers.append(plan_inner(ctx, plan, corpus, name, method_options))  # type: ignore[arg-type]
            elif name == "trak":
                finishers.append(plan_trak(ctx, plan, corpus, method_options))  # type: ignore[arg-type]
            else:
                finishers.append(plan_block(ctx, plan, corpus, name, method_options))  # type: ignore[arg-type]
        results = gradient_pass(generator, plan.visits, corpus.train, corpus.queries, ctx.cache_dir,
                                batch_size=options.batch_size, progress=ctx.progress)
    return [finish(results) for finish in finishers]


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
