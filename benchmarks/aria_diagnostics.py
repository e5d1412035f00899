"""Benchmark: every Aria diagnostic on a 10,000-segment × 500-query matrix with synthetic features.

    python benchmarks/aria_diagnostics.py                      # 2,500 tracks × 4 segments, 500 queries
    python benchmarks/aria_diagnostics.py --tracks 500 --queries 100

Prints the time of each stage: similarity matrices (std, standardised Euclidean, chord LCS), reliability,
random-reference nulls (K-sweep, R groups each), normalisation and aggregation, homogeneity, residual,
alignment and confound check. Features are random vectors of the real dimensions with planted clusters,
and random root-motion sequences; the score matrix mixes a query-independent axis with cluster structure.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from aria.diagnose import AriaSettings, build_pool, diagnose
from aria.extract import FeatureTable
from aria.features import FeatureSettings
from aria.io import ScoreArtefact


def synthetic_features(n_tracks: int, rng: np.random.Generator) -> tuple[FeatureTable, np.ndarray]:
    """Random features of the real dimensions, with 20 planted clusters; returns the table and the clusters."""
    settings = FeatureSettings()
    clusters = rng.integers(0, 20, size=n_tracks)
    vectors = {}
    for name, dim in settings.dims().items():
        centres = rng.normal(size=(20, dim))
        vectors[name] = centres[clusters] + rng.normal(size=(n_tracks, dim))
    chords = [rng.integers(0, 12, size=rng.integers(4, 25)) for _ in range(n_tracks)]
    table = FeatureTable([f"t{i:05d}" for i in range(n_tracks)], vectors, {"chords": chords},
                         [f"{i:064x}" for i in range(n_tracks)], np.zeros(n_tracks), settings)
    return table, clusters


def synthetic_matrix(clusters: np.ndarray, segments: int, n_queries: int, rng: np.random.Generator) -> ScoreArtefact:
    """Scores (tracks·segments, queries): a shared axis plus each query's preference for one cluster."""
    n_tracks = clusters.size
    target = rng.integers(0, 20, size=n_queries)
    track_scores = (clusters[:, None] == target[None, :]).astype(float) + 0.5 * rng.normal(size=(n_tracks, 1))
    scores = np.repeat(track_scores, segments, axis=0) + rng.normal(size=(n_tracks * segments, n_queries))
    segment_track = [f"t{i:05d}" for i in range(n_tracks) for _ in range(segments)]
    return ScoreArtefact(Path("synthetic"), scores.astype(np.float32), segment_track,
                         [f"t{i:05d}" for i in range(n_tracks)], [f"q{q:04d}" for q in range(n_queries)],
                         "synthetic", "benchmark", "segment", "zscore")


def arguments() -> argparse.ArgumentParser:
    """The command line (`python -m benchmarks.aria_diagnostics --help`)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracks", type=int, default=2500)
    parser.add_argument("--segments", type=int, default=4, help="segments per track")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--groups", type=int, default=1000, help="random reference groups R per K")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = arguments().parse_intermixed_args(argv)
    rng = np.random.default_rng(args.seed)
    features, clusters = synthetic_features(args.tracks, rng)
    artefact = synthetic_matrix(clusters, args.segments, args.queries, rng)
    print(f"{artefact.scores.shape[0]:,} segments × {artefact.scores.shape[1]:,} queries, "
          f"{args.tracks:,} tracks, R = {args.groups}")
    start = time.perf_counter()
    pool = build_pool(features, features.track_ids)
    similarity = time.perf_counter() - start
    labels = {"family": [f"f{q % 8}" for q in range(args.queries)]}
    diagnostics, _ = diagnose(artefact, pool, AriaSettings(n_groups=args.groups), labels)
    stages = {"similarity": similarity, **diagnostics["seconds"]}
    for stage, seconds in stages.items():
        print(f"  {stage:<14} {seconds:8.2f} s")
    print(f"  {'total':<14} {sum(stages.values()):8.2f} s")
    rel = diagnostics["reliability"]
    timbre = diagnostics["homogeneity"]["original"]["10"]["channels"]["timbre"]
    print(f"rho1 {rel['rho1']:.3f}  rho2_5 {rel['rho2_5']:.3f}  c {rel['concentration']:.3f}  "
          f"rho_bar {rel['inter_query_corr']:.3f}  timbre z at K=10 {timbre['z_mean']:+.2f}")


if __name__ == "__main__":
    main()
