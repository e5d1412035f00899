"""LUMINA signature extraction (docs/lumina.md#signatures): chunks, energy filter, chunk-averaged gradients, stats
or JL, L2 norm.

Per track: load at the model's rate (mono) → 10 s chunks (a tail of at least 1 s kept) → drop chunks below
-50 dBFS → per chunk the teacher-forcing loss with per-codebook weights, one truncated backward → average
each captured tensor's gradient over the chunks → per channel (P, M) six statistics per tensor (`stats`)
or a 512-D Gaussian projection of the concatenated gradient (`jl`) → L2-normalise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch

from lumina.data.audio import chunk_bounds, rms_dbfs
from lumina.models.capture import LUMINA_TENSORS, capture_gradients, stack_tensor
from lumina.models.codes import is_untimed
from lumina.models.protocol import Generator
from lumina.runs.device import to_numpy
from lumina.runs.errors import ParameterError

CHANNELS = ("P", "M")
STATISTICS = ("mean", "std", "l2", "max", "min", "skewness")
MODES = ("stats", "jl")
CHANNEL_SPLITS = ("layers", "tensors", "heads")
SEGMENT_POLICIES = ("all", "smart3")
CODEBOOK_WEIGHTINGS = ("loss", "none")
TEXT_POLICIES = ("description", "empty")
JL_BLOCK_ROWS = 8192
"""Rows of a tensor's projection block generated (and multiplied) at a time; fixed, since it fixes the bits."""
SMART3_HOP = 1024
SMART3_MFCC = 13


@dataclass(frozen=True)
class SignatureConfig:
    """Everything that determines a signature (conf/method/lumina.yaml;
    docs/lumina.md#options-and-where-the-sources-disagree defaults)."""

    mode: str = "stats"
    chunk_s: float = 10.0
    min_chunk_s: float = 1.0
    energy_floor_dbfs: float = -50.0
    codebook_weights: tuple[float, ...] = (0.4, 1.2, 1.3, 1.4)
    codebook_weighting: str = "loss"
    channel_split: str = "layers"
    p_layers: tuple[int, ...] | None = None
    m_layers: tuple[int, ...] | None = None
    segments: str = "all"
    text: str = "description"
    jl_dim: int = 512
    jl_seed: int = 422024

    def __post_init__(self) -> None:
        for value, allowed, name in (
            (self.mode, MODES, "mode"), (self.channel_split, CHANNEL_SPLITS, "channel_split"),
            (self.segments, SEGMENT_POLICIES, "segments"), (self.codebook_weighting, CODEBOOK_WEIGHTINGS,
                                                            "codebook_weighting"),
            (self.text, TEXT_POLICIES, "text"),
        ):
            if value not in allowed:
                raise ParameterError(f"method.{name} must be one of {allowed}, got {value!r}")
        if not self.chunk_s > 0 or self.min_chunk_s < 0:
            raise ParameterError(f"chunk_s must be > 0 and min_chunk_s >= 0, got {self.chunk_s}, {self.min_chunk_s}")
        if self.jl_dim < 1:
            raise ParameterError(f"jl_dim must be >= 1, got {self.jl_dim}")

    @classmethod
    def from_options(cls, options: Mapping) -> SignatureConfig:
        """The signature settings among a method config's options (other keys are ignored)."""
        values = {}
        for f in fields(cls):
            if f.name in options:
                value = options[f.name]
                if isinstance(value, list | tuple):
                    value = tuple(float(v) if f.name == "codebook_weights" else int(v) for v in value)
                values[f.name] = value
        return cls(**values)


@dataclass(frozen=True)
class Skipped:
    """A track that gets no signature, and why."""

    reason: str


@dataclass
class TrackGradients:
    """A track's chunk-averaged gradients per channel, each a list of arrays in signature order.

    windows: the sample ranges [start, stop) each channel's gradient averages over; tokens: code tokens
    predicted in all backward passes (K · T summed over the passes).
    """

    tensors: dict[str, list[np.ndarray]]
    windows: dict[str, list[tuple[int, int]]]
    tokens: int


def default_layers(num_layers: int) -> tuple[list[int], list[int]]:
    """docs/lumina.md#channels layer ranges for depth L: P = ⌊42L/48⌋ … L-1, M = ⌊12L/48⌋ … max(⌊12L/48⌋, ⌊18L/48⌋
    - 1)."""
    p_first = 42 * num_layers // 48
    m_first = 12 * num_layers // 48
    m_last = max(m_first, 18 * num_layers // 48 - 1)
    return list(range(p_first, num_layers)), list(range(m_first, m_last + 1))


def channel_layers(num_layers: int, config: SignatureConfig) -> dict[str, list[int]]:
    """The layers of each channel: docs/baselines.md#trak's ranges unless `p_layers` / `m_layers` list them (for
    `heads`, P
    defaults to every layer and M has none)."""
    p_default, m_default = default_layers(num_layers)
    if config.channel_split == "heads":
        p_default, m_default = list(range(num_layers)), []
    layers = {
        "P": list(config.p_layers) if config.p_layers is not None else p_default,
        "M": list(config.m_layers) if config.m_layers is not None else m_default,
    }
    for channel, values in layers.items():
        bad = [v for v in values if not 0 <= v < num_layers]
        if bad:
            raise ParameterError(f"{channel} layers {bad} out of range for a {num_layers}-layer decoder")
    return layers


def channel_tensors(generator: Generator, config: SignatureConfig) -> dict[str, list[tuple[str, list[str]]]]:
    """Per channel, its tensors in signature order as (label, parameter names) — layer ascending, then the
    docs/generator.md#six-tensors-per-layer tensor order (`layers`), attention tensors for P and linear1/linear2
    for M (`tensors`), or
    self-attention of P's layers for P and the per-codebook output heads for M (`heads`)."""
    layers = channel_layers(generator.num_layers, config)
    per_channel = {
        "layers": {"P": LUMINA_TENSORS, "M": LUMINA_TENSORS},
        "tensors": {"P": LUMINA_TENSORS[:4], "M": LUMINA_TENSORS[4:]},
        "heads": {"P": LUMINA_TENSORS[:2], "M": ()},
    }[config.channel_split]
    out: dict[str, list[tuple[str, list[str]]]] = {}
    for channel in CHANNELS:
        out[channel] = []
        for layer in layers[channel]:
            available = generator.lumina_tensors(layer)
            out[channel] += [(f"layers.{layer}.{tensor}", available[tensor])
                             for tensor in per_channel[channel] if tensor in available]
    if config.channel_split == "heads":
        out["M"] = [(f"lm_heads.{k}", [name]) for k, name in enumerate(generator.output_heads())]
    for channel, tensors in out.items():
        if not tensors:
            raise ParameterError(f"channel {channel} has no tensors (channel_split={config.channel_split})")
    return out


def signature_dims(generator: Generator, config: SignatureConfig) -> dict[str, int]:
    """Signature length per channel: 6 per tensor (`stats`) or `jl_dim` (`jl`)."""
    tensors = channel_tensors(generator, config)
    return {c: len(STATISTICS) * len(t) if config.mode == "stats" else config.jl_dim for c, t in tensors.items()}


def signature_labels(generator: Generator, config: SignatureConfig) -> dict[str, list[str]]:
    """Name of each signature dimension per channel: `<tensor label>.<statistic>` (`stats`) or `jl.<i>`."""
    if config.mode == "jl":
        return {c: [f"jl.{i}" for i in range(config.jl_dim)] for c in CHANNELS}
    return {
        c: [f"{label}.{stat}" for label, _ in tensors for stat in STATISTICS]
        for c, tensors in channel_tensors(generator, config).items()
    }


def energy_filtered(audio: np.ndarray, windows: Sequence[tuple[int, int]], floor_dbfs: float
                    ) -> list[tuple[int, int]]:
    """The windows whose RMS level is at least `floor_dbfs`."""
    return [(a, b) for a, b in windows if rms_dbfs(audio[a:b]) >= floor_dbfs]


def smart3_windows(audio: np.ndarray, sample_rate: int, chunk_s: float, sections: int = 3) -> list[tuple[int, int]]:
    """docs/sources.md#lumina-due-diligence's segment policy: agglomerative segmentation (librosa) of the track
    into `sections` sections on
    z-scored chroma and MFCC, and one `chunk_s` window centred in each, kept inside the track. A track not
    longer than `chunk_s` gives one window, the whole track."""
    import librosa

    n = audio.shape[0]
    size = int(round(chunk_s * sample_rate))
    if n <= size:
        return [(0, n)]
    chroma = librosa.feature.chroma_stft(y=audio, sr=sample_rate, hop_length=SMART3_HOP)
    mfcc = librosa.feature.mfcc(y=audio, sr=sample_rate, n_mfcc=SMART3_MFCC, hop_length=SMART3_HOP)
    features = np.vstack([chroma, mfcc]).astype(np.float64)
    spread = features.std(axis=1, keepdims=True)
    features = (features - features.mean(axis=1, keepdims=True)) / np.where(spread > 0, spread, 1.0)
    frames = features.shape[1]
    starts = librosa.segment.agglomerative(features, min(sections, frames))
    edges = [*(int(s) for s in starts), frames]
    windows = []
    for first, last in zip(edges[:-1], edges[1:], strict=True):
        centre = (first + last) / 2 * SMART3_HOP
        start = min(max(int(round(centre - size / 2)), 0), n - size)
        windows.append((start, start + size))
    return windows


def track_windows(audio: np.ndarray, sample_rate: int, config: SignatureConfig
                  ) -> dict[str, list[tuple[int, int]]] | Skipped:
    """Sample windows each channel averages over, after the energy filter; Skipped when none is left.

    Both channels use every chunk, except that `segments: smart3` gives Channel M its three librosa segments.
    """
    chunks = chunk_bounds(audio.shape[0], sample_rate, config.chunk_s, config.min_chunk_s)
    kept = energy_filtered(audio, chunks, config.energy_floor_dbfs)
    if not kept:
        loudest = max((rms_dbfs(audio[a:b]) for a, b in chunks), default=float("-inf"))
        return Skipped(f"no chunk at or above the {config.energy_floor_dbfs:g} dBFS energy floor "
                       f"({len(chunks)} chunk(s), loudest {loudest:.1f} dBFS)")
    windows = {"P": kept, "M": kept}
    if config.segments == "smart3":
        windows["M"] = energy_filtered(
            audio, smart3_windows(audio, sample_rate, config.chunk_s), config.energy_floor_dbfs
        )
        if not windows["M"]:
            return Skipped(f"no smart3 segment at or above the {config.energy_floor_dbfs:g} dBFS energy floor")
    return windows


def average_gradients(
    generator: Generator,
    audio: np.ndarray,
    windows: Sequence[tuple[int, int]],
    text: str,
    names: Sequence[str],
    codebook_weights: Sequence[float] | None,
    capture: Sequence[str] | None = None,
) -> tuple[dict[str, torch.Tensor], int]:
    """g = (1/n) Σ ∇L(window) for the parameters `names`, and the number of code tokens predicted.

    One backward per window through the parameters `capture` (default `names`: a truncated backward)."""
    capture = list(names) if capture is None else list(dict.fromkeys([*capture, *names]))
    total: dict[str, torch.Tensor] = {}
    tokens = 0
    for start, stop in windows:
        codes = torch.from_numpy(np.ascontiguousarray(generator.codec.encode(audio[start:stop])))[None]
        tokens += int(codes.shape[1] * codes.shape[2])
        grads = capture_gradients(generator, codes, [text], capture, codebook_weights=codebook_weights)
        for name in names:
            g = grads[name].to(torch.float64)
            total[name] = g if name not in total else total[name] + g
    return {name: (g / len(windows)).to(torch.float32) for name, g in total.items()}, tokens


def track_gradients(
    generator: Generator,
    audio: np.ndarray,
    text: str,
    config: SignatureConfig,
    *,
    capture: Sequence[str] | None = None,
) -> TrackGradients | Skipped:
    """Chunk-averaged gradients of both channels' tensors for one track (audio (n,) at the codec's rate).

    `text` is the track's description (ignored with `text: empty`). `capture`: the parameters that get
    gradients in each backward (default exactly the channels' tensors, a truncated backward; pass every LM
    parameter for a full backward — same gradients, more work).
    """
    if is_untimed(generator.codec):  # a symbolic window is one chunk; no energy filter (docs/symbolic.md#lumina)
        windows: dict[str, list[tuple[int, int]]] | Skipped = {c: [(0, audio.shape[0])] for c in CHANNELS}
    else:
        windows = track_windows(audio, generator.codec.sample_rate, config)
    if isinstance(windows, Skipped):
        return windows
    tensors = channel_tensors(generator, config)
    # one token stream: a codebook weight would only scale the loss, which L2 normalisation removes
    weighted = config.codebook_weighting == "loss" and generator.codec.num_codebooks > 1
    weights = list(config.codebook_weights) if weighted else None
    text = "" if config.text == "empty" else text
    out: dict[str, list[np.ndarray]] = {}
    tokens = 0
    groups: dict[tuple, list[str]] = {}
    for channel in CHANNELS:
        groups.setdefault(tuple(windows[channel]), []).append(channel)
    for group_windows, channels in groups.items():
        names = list(dict.fromkeys(n for c in channels for _, parts in tensors[c] for n in parts))
        grads, used = average_gradients(generator, audio, group_windows, text, names, weights, capture)
        tokens += used
        for c in channels:
            out[c] = [to_numpy(stack_tensor(grads, parts)) for _, parts in tensors[c]]
    return TrackGradients(tensors=out, windows={c: list(w) for c, w in windows.items()}, tokens=tokens)


def tensor_statistics(grad: np.ndarray) -> np.ndarray:
    """The six statistics of a gradient tensor, float64 (6,): mean, population std, L2 norm, max, min and
    biased skewness m3 / m2^1.5 (0 when m2 = 0)."""
    x = np.asarray(grad, dtype=np.float64).ravel()
    if x.size == 0:
        raise ParameterError("cannot summarise an empty gradient tensor")
    mean = x.mean()
    centred = x - mean
    m2 = np.mean(centred**2)
    m3 = np.mean(centred**3)
    skew = m3 / m2**1.5 if m2 > 0 else 0.0
    return np.array([mean, math.sqrt(m2), np.sqrt(np.sum(x * x)), x.max(), x.min(), skew], dtype=np.float64)


def stats_vector(tensors: Sequence[np.ndarray]) -> np.ndarray:
    """Concatenated statistics of a channel's tensors, (6 · n_tensors,), tensor-major."""
    return np.concatenate([tensor_statistics(t) for t in tensors])


def jl_vectors(tensor_sets: Sequence[Sequence[np.ndarray]], dim: int = 512, seed: int = 422024) -> np.ndarray:
    """Gaussian Johnson-Lindenstrauss projection of each set's concatenated, flattened tensors: (B, dim).

    The projection's rows for the tensor at position p (size n_p) are an (n_p, dim) block of N(0, 1/dim)
    entries drawn row-major from `numpy.random.default_rng([seed, p])`, generated `JL_BLOCK_ROWS` rows at a
    time and shared by the B sets, so the whole matrix never exists. Each set is projected alone, so a
    track's vector does not depend on the others in the batch.
    """
    if not tensor_sets:
        raise ParameterError("nothing to project")
    count = len(tensor_sets[0])
    if any(len(s) != count for s in tensor_sets):
        raise ParameterError("every set must hold the same tensors")
    out = np.zeros((len(tensor_sets), dim), dtype=np.float64)
    scale = np.float32(1.0 / math.sqrt(dim))
    for position in range(count):
        flats = [np.asarray(s[position], dtype=np.float32).ravel() for s in tensor_sets]
        size = flats[0].size
        if any(f.size != size for f in flats):
            raise ParameterError(f"tensor {position} differs in size between sets")
        rng = np.random.default_rng([seed, position])
        for start in range(0, size, JL_BLOCK_ROWS):
            stop = min(start + JL_BLOCK_ROWS, size)
            block = rng.standard_normal((stop - start, dim), dtype=np.float32) * scale
            for i, flat in enumerate(flats):
                out[i] += flat[start:stop] @ block
    return out


def l2_normalise(vector: np.ndarray) -> np.ndarray | None:
    """vector / ‖vector‖ (float64), or None when the norm is 0 or not finite."""
    norm = float(np.linalg.norm(vector))
    if not norm > 0 or not math.isfinite(norm):
        return None
    return np.asarray(vector, dtype=np.float64) / norm


def signatures_from_gradients(batch: Sequence[TrackGradients], config: SignatureConfig
                              ) -> list[dict[str, np.ndarray] | Skipped]:
    """L2-normalised signatures {"P": (d_P,), "M": (d_M,)} float32 of each track's gradients (or Skipped
    when a channel's vector is zero)."""
    if not batch:
        return []
    raw: dict[str, np.ndarray] = {}
    for channel in CHANNELS:
        sets = [g.tensors[channel] for g in batch]
        raw[channel] = (np.stack([stats_vector(s) for s in sets]) if config.mode == "stats"
                        else jl_vectors(sets, config.jl_dim, config.jl_seed))
    out: list[dict[str, np.ndarray] | Skipped] = []
    for i in range(len(batch)):
        unit = {c: l2_normalise(raw[c][i]) for c in CHANNELS}
        zero = [c for c, v in unit.items() if v is None]
        out.append(Skipped(f"zero or non-finite signature in channel {', '.join(zero)}") if zero
                   else {c: v.astype(np.float32) for c, v in unit.items()})
    return out


def signature(generator: Generator, audio: np.ndarray, text: str, config: SignatureConfig
              ) -> dict[str, np.ndarray] | Skipped:
    """One track's signatures {"P", "M"} (float32, unit norm), or Skipped with the reason."""
    grads = track_gradients(generator, audio, text, config)
    return grads if isinstance(grads, Skipped) else signatures_from_gradients([grads], config)[0]


def statistic_report(vectors: np.ndarray) -> dict:
    """How the six statistics shape `stats` signatures (n, 6 · n_tensors), n >= 2 tracks of one channel.

    statistic_share: each statistic's share of the squared norm (mean over tracks; sums to 1);
    mean_cosine / std_cosine: over all pairs of distinct tracks, with every statistic (`all`), without one
    (`without_<statistic>`), and with each dimension z-scored across the tracks (`zscored`).
    """
    v = np.asarray(vectors, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] % len(STATISTICS) or v.shape[0] < 2:
        raise ParameterError(f"need (tracks >= 2, 6 · tensors) stats signatures, got shape {v.shape}")
    squared = v**2
    total = squared.sum(axis=1)
    share = {s: float(np.mean(squared[:, j :: len(STATISTICS)].sum(axis=1) / total)) for j, s in enumerate(STATISTICS)}

    def pairwise(x: np.ndarray) -> tuple[float, float]:
        norms = np.linalg.norm(x, axis=1)
        unit = x / np.where(norms > 0, norms, 1.0)[:, None]
        cos = (unit @ unit.T)[~np.eye(len(x), dtype=bool)]
        return float(cos.mean()), float(cos.std())

    spread = v.std(axis=0)
    variants = {"all": v, "zscored": (v - v.mean(axis=0)) / np.where(spread > 0, spread, 1.0)}
    for j, s in enumerate(STATISTICS):
        variants[f"without_{s}"] = np.delete(v, np.arange(j, v.shape[1], len(STATISTICS)), axis=1)
    cosines = {name: pairwise(x) for name, x in variants.items()}
    return {"statistic_share": share, "mean_cosine": {k: c[0] for k, c in cosines.items()},
            "std_cosine": {k: c[1] for k, c in cosines.items()}}
