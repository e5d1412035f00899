"""All Aria diagnostics of one score matrix: reliability, normalisation, homogeneity against the null,
rank-1 residual, axis–channel alignment and the confound check (docs/aria.md#what-is-computed), over the
channels of the pool's channel set (docs/aria.md#channel-sets)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from aria.alignment import alignment, dominant_axis
from aria.channels import AUDIO, ChannelSet
from aria.errors import ParameterError
from aria.extract import FeatureTable
from aria.homogeneity import homogeneity, null_distribution, stratify, valid_ks
from aria.io import NORMALIZATIONS, ScoreArtefact
from aria.normalize import track_scores
from aria.reliability import is_collapsed, reliability, remove_rank1
from aria.similarity import feature_std, similarity_matrices


@dataclass(frozen=True)
class AriaSettings:
    """Options of the diagnostics (conf/aria/default.yaml; docs/aria.md#diagnostic-defaults)."""

    normalization: str = "auto"
    ks: tuple[int, ...] = (5, 10, 20, 50)
    headline_k: int = 10
    n_groups: int = 1000
    seed: int = 0
    sig_z: float = 1.645
    collapse_rho1: float = 0.78
    collapse_concentration: float = 0.5
    n_components: int = 5
    confound_columns: tuple[str, ...] = ("collection", "instrument_family")

    def __post_init__(self) -> None:
        if self.normalization not in ("auto", *NORMALIZATIONS):
            raise ParameterError(f"normalization must be auto, zscore or rank, got {self.normalization!r}")
        if self.n_groups < 2:
            raise ParameterError(f"n_groups must be at least 2, got {self.n_groups}")
        object.__setattr__(self, "ks", tuple(int(k) for k in self.ks))
        object.__setattr__(self, "confound_columns", tuple(self.confound_columns))


@dataclass
class Pool:
    """The training pool of an experiment: features, the per-dimension std fixed once for the experiment,
    the (N, N) similarity matrix of every feature, and the channel set that groups the features into the
    channels the diagnostics report. Nulls are cached per (pool, K) in memory and, when `cache_dir` is set,
    on disk."""

    features: FeatureTable
    std: dict[str, np.ndarray]
    sims: dict[str, np.ndarray]
    cache_dir: Path | None = None
    channel_set: ChannelSet = AUDIO
    _nulls: dict = field(default_factory=dict, repr=False)

    @property
    def track_ids(self) -> list[str]:
        return self.features.track_ids

    @property
    def channels(self) -> ChannelSet:
        """`channel_set` restricted to the features that have a similarity matrix in this pool."""
        return self.channel_set.restrict(self.sims)

    @property
    def fingerprint(self) -> str:
        """Identifies what the nulls depend on: the features, the std and (for a set other than `AUDIO`,
        whose pools keep the fingerprints they always had) the channel set."""
        digest = hashlib.sha256(self.features.fingerprint.encode())
        for name in sorted(self.std):
            digest.update(np.ascontiguousarray(self.std[name], dtype=np.float64).tobytes())
        if self.channel_set != AUDIO:
            digest.update(self.channel_set.key.encode())
        return digest.hexdigest()[:16]

    def restrict(self, track_ids: Sequence[str]) -> Pool:
        """The pool of the tracks `track_ids` (same std, similarities re-indexed), sharing the null cache."""
        if list(track_ids) == self.track_ids:
            return self
        index = self.features.index(track_ids)
        sims = {name: sim[np.ix_(index, index)] for name, sim in self.sims.items()}
        return Pool(self.features.subset(track_ids), self.std, sims, self.cache_dir, self.channel_set, self._nulls)

    def null(self, k: int, n_groups: int, seed: int) -> dict:
        """The random-reference null of `null_distribution` for this pool and K."""
        key = f"{self.fingerprint}-k{k}-r{n_groups}-s{seed}"
        if key in self._nulls:
            return self._nulls[key]
        path = self.cache_dir / "null" / f"{key}.json" if self.cache_dir else None
        if path is not None and path.is_file():
            null = json.loads(path.read_text())
        else:
            null = null_distribution(self.sims, k, channel_set=self.channels, n_groups=n_groups, seed=seed)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(null, indent=1))
        self._nulls[key] = null
        return null


def build_pool(
    features: FeatureTable,
    std_tracks: Sequence[str],
    cache_dir: str | Path | None = None,
    *,
    channel_set: ChannelSet = AUDIO,
) -> Pool:
    """Pool over all tracks of `features`, the per-dimension std taken over `std_tracks` (the experiment's
    training tracks), each feature's similarity of the kind `channel_set` names. A pool with precomputed
    similarity matrices is built directly: `Pool(features, std, sims, cache_dir, channel_set)`."""
    reference = features.subset(std_tracks)
    std = {name: feature_std(X) for name, X in reference.vectors.items()}
    sims = similarity_matrices(features.vectors, features.sequences, std, channel_set)
    return Pool(features, std, sims, Path(cache_dir) if cache_dir else None, channel_set)


def diagnose(
    artefact: ScoreArtefact,
    pool: Pool,
    settings: AriaSettings | None = None,
    query_labels: Mapping[str, Sequence[str]] | None = None,
) -> tuple[dict, pd.DataFrame]:
    """Every diagnostic of `artefact` over `pool` (restricted to the matrix's training tracks), for the
    channels of the pool's channel set (`build_pool(..., channel_set=...)`; default `AUDIO`).

    `query_labels` maps a group column (e.g. `collection`) to one label per query for the confound check.
    Returns the diagnostics (JSON-ready apart from NumPy scalars) and a per-query table of z per channel
    for each stage (original, residual) and K.
    """
    settings = settings or AriaSettings()
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = now - clock
        clock = now

    S = artefact.scores.astype(np.float64)
    rel = reliability(S)
    lap("reliability")
    method = artefact.normalization if settings.normalization == "auto" else settings.normalization
    pool = pool.restrict(artefact.track_ids)
    ks = valid_ks([*settings.ks, settings.headline_k], len(pool.track_ids))

    def null_for(k: int) -> dict:
        return pool.null(k, settings.n_groups, settings.seed)

    for k in ks:
        null_for(k)
    lap("null")
    channel_set = pool.channels

    def tracks(scores: np.ndarray, normalization: str | None) -> np.ndarray:
        return track_scores(scores, artefact.segment_track, artefact.track_ids, normalization)

    def judge(T: np.ndarray) -> dict[int, dict]:
        return homogeneity(T, pool.sims, ks, null_for, channel_set=channel_set, sig_z=settings.sig_z)

    T = tracks(S, method)
    lap("normalization")
    results = {"original": judge(T)}
    lap("homogeneity")
    results["residual"] = judge(tracks(remove_rank1(S), method))
    lap("residual")
    T_raw = tracks(S, None)
    aligned = alignment(dominant_axis(T_raw), pool.features.vectors, channel_set=channel_set,
                        n_components=settings.n_components)
    lap("alignment")
    confound = {}
    headline = results["original"].get(settings.headline_k)
    for column, labels in (query_labels or {}).items():
        if headline is not None:
            confound[column] = {c: stratify(z, labels, settings.sig_z) for c, z in headline["channels"].items()}
    lap("confound")

    collapsed = S.shape[1] > 1 and is_collapsed(rel["rho1"], rel["concentration"], rho1_max=settings.collapse_rho1,
                                                 concentration_max=settings.collapse_concentration)
    diagnostics = {
        "method": artefact.method,
        "setting": artefact.setting,
        "source": str(artefact.path),
        "level": artefact.level,
        "n_segments": int(S.shape[0]),
        "n_tracks": len(artefact.track_ids),
        "n_queries": int(S.shape[1]),
        "normalization": method,
        "reliability": {k: rel[k] for k in ("rho1", "rho2_5", "concentration", "inter_query_corr")},
        "energy": rel["energy"].tolist(),
        "collapsed": collapsed,
        "notes": undefined_notes(S.shape, len(pool.track_ids), settings.headline_k, ks),
        "headline_k": settings.headline_k,
        "ks": ks,
        "homogeneity": {
            stage: {str(k): {"channels": r["summary"], "features": r["feature_summary"]} for k, r in res.items()}
            for stage, res in results.items()
        },
        "null": {str(k): null_for(k) for k in ks},
        "alignment": aligned,
        "confound": confound,
        "pool": {"fingerprint": pool.fingerprint, "n_tracks": len(pool.track_ids)},
        "settings": asdict(settings),
        "feature_settings": asdict(pool.features.settings),
        "seconds": seconds,
    }
    rows = []
    for stage, res in results.items():
        for k, r in res.items():
            frame = pd.DataFrame({"query_id": artefact.query_ids, "stage": stage, "k": k,
                                  **{c: z for c, z in r["channels"].items()}})
            for column, labels in (query_labels or {}).items():
                frame[column] = list(labels)
            rows.append(frame)
    per_query = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame({"query_id": []})
    return diagnostics, per_query


def undefined_notes(shape: tuple[int, int], n_pool: int, headline_k: int, ks: Sequence[int]) -> list[str]:
    """Why a diagnostic of a matrix of `shape` (units, queries) over a pool of `n_pool` training tracks is
    undefined, in words for the leaderboard (docs/aria.md#small-catalogues-and-single-queries)."""
    notes = []
    if headline_k not in ks:
        notes.append(f"K={headline_k} needs more than {headline_k} training tracks; the pool has {n_pool}")
    if shape[1] < 2:
        notes.append("one query: inter-query correlation and collapse undefined")
    if shape[0] < 2:
        notes.append("one training unit: reliability undefined")
    return notes


def jsonable(value: object) -> object:
    """`value` with NumPy scalars and arrays made plain, NaN and infinities as None (strict JSON)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value
