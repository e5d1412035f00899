"""Every method's options as a frozen dataclass with a help string per field.

`conf/method/NAME.yaml` writes the same defaults for Hydra (a test checks that the two agree for every method);
the options shared by the segment-level gradient methods live once, in `SegmentOptions` and
`conf/method_common/segments.yaml`. `options_for(name, mapping)` turns a method's Hydra config into its
dataclass, rejecting unknown keys with the list of known ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from lumina.runs.errors import ParameterError

LayerChoice = str | tuple[int, ...]
"""A parameter choice: a group name (`all`, `layers`, `self_attn`, `cross_attn`, `cross_attn_kv`) or decoder
layer indices (negative ones count from the top)."""


def option(default: Any, help: str) -> Any:
    """A dataclass field with its default and its help text."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class MethodOptions:
    """Options every method has."""

    name: str = option("", "the method's registered name")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> MethodOptions:
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(mapping) - set(known))
        if unknown:
            raise ParameterError(f"unknown option(s) method.{', method.'.join(unknown)} for {mapping.get('name')!r}; "
                                 f"known: {', '.join(sorted(known))}")
        return cls(**{k: _frozen(v) for k, v in mapping.items()})

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (tuples as lists), for provenance."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def help(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}


def _frozen(value: Any) -> Any:
    return tuple(_frozen(v) for v in value) if isinstance(value, list | tuple) else value


@dataclass(frozen=True)
class SegmentOptions(MethodOptions):
    """The options shared by the segment-level gradient methods (rows are training segments)."""

    segment_s: float = option(5.0, "training tracks are cut into segments of this length (s), the rows")
    min_segment_s: float = option(1.0, "a shorter tail segment is kept when at least this long (s)")
    condition: str = option("description", "description: each track's own text condition | empty: every track "
                                           "with the empty description")
    batch_size: int = option(8, "examples per per-example-gradient batch")


@dataclass(frozen=True)
class GradDotOptions(SegmentOptions):
    name: str = option("graddot", "the method's registered name")
    parameters: LayerChoice = option("all", "parameters the gradients cover: a group or layer indices")
    proj_dim: int = option(0, "0: raw gradients (exact inner products) | k: dattri's dense Gaussian projection")
    proj_seed: int = option(0, "projection seed (dattri's; with proj_dim > 0)")


@dataclass(frozen=True)
class GradCosOptions(GradDotOptions):
    name: str = option("gradcos", "the method's registered name")


@dataclass(frozen=True)
class TracInOptions(GradDotOptions):
    name: str = option("tracin", "the method's registered name")
    parameters: LayerChoice = option((-2, -1), "parameters the gradients cover: a group or layer indices")


@dataclass(frozen=True)
class TrakOptions(SegmentOptions):
    name: str = option("trak", "the method's registered name")
    parameters: LayerChoice = option((-2, -1), "parameters the gradients cover: a group or layer indices")
    proj_dim: int = option(2048, "projection dimension k")
    regularization: float = option(0.01, "lambda, on phi = P g (dattri's regularization is lambda / D)")
    ensemble: int = option(4, "ensemble members")
    ensemble_over: str = option("projections", "projections: independent projections of the trained model | "
                                               "checkpoints: the last `ensemble` saved training checkpoints")
    proj_seed: int = option(0, "projection seed")


@dataclass(frozen=True)
class LoGraOptions(SegmentOptions):
    name: str = option("logra", "the method's registered name")
    layers: LayerChoice = option("all", "all: every linear module of the LM | layer indices: their linears")
    proj_dim: int = option(256, "per-layer dimension k (a perfect square: sqrt(k) per factor)")
    hessian: str = option("eFIM", "eFIM | Identity")
    damping: float | None = option(None, "null: dattri's 1e-5; times the per-layer mean eigenvalue")
    proj_seed: int = option(0, "projection seed")


@dataclass(frozen=True)
class FactGraSSOptions(LoGraOptions):
    name: str = option("factgrass", "the method's registered name")
    proj_dim: int = option(256, "per-layer dimension k (k * blowup must be a perfect square)")
    blowup: int = option(4, "blow-up factor of the sparsified intermediate dimension")


GRADIENT_PASS_METHODS = ("graddot", "gradcos", "tracin", "trak", "logra", "factgrass")
"""The methods `+method=gradients` derives from one gradient pass (docs/baselines.md#the-shared-gradient-pass)."""


@dataclass(frozen=True)
class GradientsOptions(SegmentOptions):
    name: str = option("gradients", "the method's registered name")
    methods: tuple[str, ...] = option(GRADIENT_PASS_METHODS, "which of graddot, gradcos, tracin, trak, logra, "
                                                             "factgrass to derive, each with its own defaults")
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict, metadata={
        "help": "per-method options beyond their conf/method/NAME.yaml defaults, e.g. "
                "+method.overrides.trak.proj_dim=4096"})


@dataclass(frozen=True)
class UnlearningOptions(SegmentOptions):
    name: str = option("unlearning", "the method's registered name")
    target: LayerChoice = option((-2, -1), "parameters unlearning changes: a group or layer indices")
    steps: int = option(8, "optimiser steps")
    lr: float = option(1e-4, "step size")
    optimizer: str = option("adam", "adam | sgd")
    fisher_samples: int = option(64, "training segments the diagonal empirical Fisher is averaged over")
    fisher_seed: int = option(0, "which segments")
    silence_mask: bool = option(True, "leave the query's quiet frames out of the unlearning loss")
    silence_db: float = option(-50.0, "frames with RMS below this (dBFS) are quiet")


@dataclass(frozen=True)
class LuminaOptions(MethodOptions):
    """LUMINA's signature, scoring and running options (docs/lumina.md#options-and-where-the-sources-disagree)."""

    name: str = option("lumina", "the method's registered name")
    mode: str = option("stats", "stats: 6 statistics per tensor | jl: Gaussian projection to jl_dim")
    chunk_s: float = option(10.0, "chunk length (s)")
    min_chunk_s: float = option(1.0, "a shorter tail chunk is kept when at least this long (s)")
    energy_floor_dbfs: float = option(-50.0, "chunks with RMS below this are dropped (low-energy filter)")
    codebook_weights: tuple[float, ...] = option((0.4, 1.2, 1.3, 1.4), "weight of each codebook's loss term")
    codebook_weighting: str = option("loss", "loss: weight each codebook's loss term | none")
    channel_split: str = option("layers", "layers | tensors | heads")
    p_layers: tuple[int, ...] | None = option(None, "explicit Channel P layers; null: the depth-scaled default")
    m_layers: tuple[int, ...] | None = option(None, "explicit Channel M layers; null: the depth-scaled default")
    segments: str = option("all", "all chunks | smart3: Channel M on 3 structural segments")
    text: str = option("description", "description: each track's own | empty: the empty description")
    jl_dim: int = option(512, "dimension of the JL projection (mode jl)")
    jl_seed: int = option(422024, "seed of the JL projection")
    kernel_lambda: float = option(0.01, "kernel regression (K K^T + lambda I)^-1 K g")
    calibration: str = option("empirical", "empirical: noise floor from the control tracks | theoretical")
    confidence: str = option("two_sided", "two_sided: erf(z/sqrt 2) | one_sided: Phi(z)")
    lip_k: float = option(0.5, "LIP = tanh(k STS)")
    gate: str = option("sts1", "sts1: STS > 1 | conf95: confidence >= 0.95 | calibrated: cosine > mu0 + sigma0")
    weight: str = option("gated_sq", "gated_sq: max(0, STS-1)^2 | lip: tanh(k STS) | excess")
    positive_only: bool = option(True, "reports and shares: a song with cosine <= 0 never qualifies")
    abstain: bool = option(True, "reports: shares only for an attributable query (docs/abstention.md); "
                                 "false: the sources' rule, shares whatever the query")
    abstain_z: float = option(2.02, "attributable when the top cosine's z against the reference queries' top "
                                   "cosines reaches this (docs/abstention.md#the-report-rule)")
    database: str | None = option(None, "signature database (HDF5); null: the model's signature store")
    batch_size: int = option(8, "tracks committed to the database at a time")


@dataclass(frozen=True)
class EmbeddingOptions(MethodOptions):
    name: str = option("embedding", "the method's registered name")
    encoder: str = option("madmom-deepchroma", "madmom-deepchroma | madmom-chordfeat | madmom-notes | clap | mert")
    checkpoint: str | None = option(None, "clap / mert only: local checkpoint directory")
    trust_remote_code: bool = option(False, "mert only: allow the checkpoint's own Python code to run")
    layer: int = option(-1, "mert only: -1 the output, k the output of transformer layer k")
    chunk_s: float | None = option(None, "chunk length (s); null: the encoder's default")
    min_chunk_s: float = option(1.0, "a shorter tail chunk is dropped (unless it is the whole track)")
    progress: bool = option(True, "progress bars")


@dataclass(frozen=True)
class ClapOptions(MethodOptions):
    name: str = option("clap", "the method's registered name")
    checkpoint: str | None = option(None, "local directory in transformers layout; null: not configured")
    chunk_s: float = option(10.0, "chunk length (s), at most the feature extractor's max_length_s")
    min_chunk_s: float = option(1.0, "a shorter tail chunk is dropped (unless it is the whole track)")
    progress: bool = option(True, "progress bars")


@dataclass(frozen=True)
class MertOptions(MethodOptions):
    name: str = option("mert", "the method's registered name")
    checkpoint: str | None = option(None, "local directory; null: not configured")
    trust_remote_code: bool = option(False, "MERT-v1 ships its model as Python files: true runs them")
    layer: int = option(-1, "-1: the model's output; k: output of transformer layer k (1-based)")
    chunk_s: float = option(5.0, "chunk length (s)")
    min_chunk_s: float = option(1.0, "a shorter tail chunk is dropped (unless it is the whole track)")
    progress: bool = option(True, "progress bars")


@dataclass(frozen=True)
class SymbolicOptions(MethodOptions):
    name: str = option("symbolic", "the method's registered name")


METHOD_OPTIONS: dict[str, type[MethodOptions]] = {
    "lumina": LuminaOptions, "trak": TrakOptions, "gradcos": GradCosOptions, "graddot": GradDotOptions,
    "tracin": TracInOptions, "logra": LoGraOptions, "factgrass": FactGraSSOptions, "unlearning": UnlearningOptions,
    "gradients": GradientsOptions, "embedding": EmbeddingOptions, "clap": ClapOptions, "mert": MertOptions,
    "symbolic": SymbolicOptions,
}
"""Method name → its options dataclass (the keys of `lumina.methods.METHODS`)."""


def options_for(name: str, mapping: Mapping[str, Any]) -> MethodOptions:
    """The typed options of method `name` from its (resolved, plain) Hydra config."""
    if name not in METHOD_OPTIONS:
        raise ParameterError(f"unknown method {name!r}; registered: {sorted(METHOD_OPTIONS)}")
    return METHOD_OPTIONS[name].from_mapping(mapping)
