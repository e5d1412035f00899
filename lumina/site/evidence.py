"""The evidence a query page shows beside each method's top tracks (docs/report.md#query-pages): the top
training tracks with the segment that matched and the planted sources' rank (from the run's `scores.h5`),
LUMINA's tier, confidence and share (the `lumina_evidence.csv` the run wrote), and Aria's channel similarities
between the query and each track.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from aria.channels import ChannelSet
from aria.diagnose import build_pool
from aria.extract import extract_features
from aria.features import FeatureSettings
from aria.io import ScoreArtefact
from aria.normalize import aggregate_tracks
from lumina.runs.errors import ParameterError

LUMINA_EVIDENCE = "lumina_evidence.csv"
"""LUMINA's per-query tiers, confidences and shares, written by the method beside its `scores.h5`."""


@dataclass
class Ranking:
    """A matrix's training tracks ranked per query: track scores T (N, Q) (the mean of each track's raw
    segment scores, as Aria aggregates), and the start (s) of each track's best segment per query (N, Q)."""

    track_ids: list[str]
    query_ids: list[str]
    scores: np.ndarray
    best_start: np.ndarray

    def top(self, query: str, k: int) -> list[tuple[str, float, float]]:
        """The `k` best tracks for `query`: (track id, track score, start of its best segment)."""
        q = self.query_ids.index(query)
        order = np.argsort(-self.scores[:, q], kind="stable")[:k]
        return [(self.track_ids[i], float(self.scores[i, q]), float(self.best_start[i, q])) for i in order]

    def rank_of(self, query: str, tracks: Sequence[str]) -> int | None:
        """1-based rank of the best-ranked of `tracks` for `query` (None when none of them is a row)."""
        q = self.query_ids.index(query)
        rank = np.empty(len(self.track_ids), dtype=np.int64)
        rank[np.argsort(-self.scores[:, q], kind="stable")] = np.arange(1, len(self.track_ids) + 1)
        ranks = [int(rank[self.track_ids.index(t)]) for t in tracks if t in self.track_ids]
        return min(ranks) if ranks else None


def ranking(matrix: ScoreArtefact) -> Ranking:
    """Track scores and best segment starts of a score matrix (scores: (N_seg, Q))."""
    scores = matrix.scores.astype(np.float64)
    tracks = aggregate_tracks(scores, matrix.segment_track, matrix.track_ids)
    starts = _segment_starts(matrix)
    position = pd.Index(matrix.track_ids).get_indexer(matrix.segment_track)
    best_start = np.zeros(tracks.shape)
    best = np.full(tracks.shape, -np.inf)
    for row, track in enumerate(position):  # rows in order: ties keep the earliest segment
        better = scores[row] > best[track]
        best[track, better] = scores[row, better]
        best_start[track, better] = starts[row]
    return Ranking(list(matrix.track_ids), list(matrix.query_ids), tracks, best_start)


def _segment_starts(matrix: ScoreArtefact) -> np.ndarray:
    """The `segment_start_s` dataset (N_seg,) of the matrix's file (zeros when absent: track-level rows)."""
    with h5py.File(matrix.path, "r") as f:
        if "segment_start_s" in f:
            return np.asarray(f["segment_start_s"][()], dtype=np.float64)
    return np.zeros(len(matrix.segment_track))


def lumina_evidence(folder: Path) -> dict[str, dict[str, list[tuple[str, str, float, float]]]] | None:
    """The tiers, confidences and shares a LUMINA run wrote (`lumina_evidence.csv`: one row per query, training
    track and channel the setting uses; docs/lumina.md#scoring-statistics-and-shares): query → track → [(channel,
    tier, confidence, share)] in the file's channel order; None when the run wrote none."""
    path = Path(folder) / LUMINA_EVIDENCE
    if not path.is_file():
        return None
    table = pd.read_csv(path, dtype={"query_id": str, "track_id": str, "channel": str, "tier": str},
                        keep_default_na=False)
    out: dict[str, dict[str, list[tuple[str, str, float, float]]]] = {}
    for query, track, channel, tier, conf, share in zip(table["query_id"], table["track_id"], table["channel"],
                                                        table["tier"], table["confidence"], table["share"],
                                                        strict=True):
        out.setdefault(query, {}).setdefault(track, []).append((channel, tier, float(conf), float(share)))
    return out


def channel_similarities(
    manifest: pd.DataFrame, queries: Sequence[str], channel_set: ChannelSet, settings: FeatureSettings,
    cache_dir: str | Path, *, workers: int, progress: bool,
) -> dict[str, pd.DataFrame]:
    """Aria's similarity (docs/aria.md#track-similarity) of each query to each training track, per channel:
    channel → (queries × training tracks) table, the mean of the channel's feature similarities. The
    features are Aria's (cached with the leaderboard's); the std is taken over the training tracks."""
    train = manifest.index[manifest["split"] == "train"].tolist()
    queries = [q for q in queries if q in manifest.index]
    if not train or not queries:
        raise ParameterError("channel similarities need training tracks and queries in the manifest")
    ids = train + queries
    features = extract_features(manifest.loc[ids, "path"].tolist(), ids, settings, cache_dir, workers=workers,
                                progress=progress)
    pool = build_pool(features, train, channel_set=channel_set)
    n = len(train)
    out = {}
    for channel, names in pool.channels.channels.items():
        sim = np.mean([pool.sims[f] for f in names], axis=0)
        out[channel] = pd.DataFrame(sim[n:, :n], index=queries, columns=train)
    return out
