"""Pairwise similarity of tracks per feature (docs/aria.md#track-similarity): standardised Euclidean for
vectors, normalised LCS of root-motion sequences for chord progressions; a channel set names each feature's
kind (docs/aria.md#channel-sets)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.spatial.distance

from aria.channels import AUDIO, ChannelSet
from aria.errors import ParameterError


def defined_rows(X: np.ndarray) -> np.ndarray:
    """Tracks whose feature vector is defined (no NaN: not "no beat"), X: (N, D) → (N,) bool."""
    return np.isfinite(X).all(axis=1)


def feature_std(X: np.ndarray) -> np.ndarray:
    """Population std of each dimension over the pool's tracks with a defined vector, X: (N, D) → (D,) (zeros
    when none is defined); computed once per experiment."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ParameterError(f"expected a (tracks, dims) feature matrix, got shape {X.shape}")
    X = X[defined_rows(X)]
    return X.std(axis=0) if len(X) else np.zeros(X.shape[1])


def standardized_similarity(X: np.ndarray, std: np.ndarray) -> np.ndarray:
    """sim = 1 / (1 + d), d the Euclidean distance after dividing each dimension by `std`.

    X: (N, D), std: (D,) → (N, N) float32. Dimensions with zero std carry no information and are left out. A
    track whose vector is undefined (NaN: "no beat") has NaN similarity to every track, itself included.
    """
    X = np.asarray(X, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    if X.ndim != 2 or std.shape != (X.shape[1],):
        raise ParameterError(f"feature matrix {X.shape} and std {std.shape} do not match")
    defined = defined_rows(X)
    if not defined.all():
        sim = np.full((X.shape[0], X.shape[0]), np.nan, dtype=np.float32)
        sim[np.ix_(defined, defined)] = standardized_similarity(X[defined], std)
        return sim
    keep = std > 0
    if not keep.any():
        return np.ones((X.shape[0], X.shape[0]), dtype=np.float32)
    d = scipy.spatial.distance.squareform(scipy.spatial.distance.pdist(X[:, keep] / std[keep]))
    return (1.0 / (1.0 + d)).astype(np.float32)


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


def _match_masks(padded: np.ndarray, lengths: np.ndarray, words: int) -> tuple[np.ndarray, np.ndarray]:
    """Bit masks of where each symbol occurs in each sequence: (n_symbols + 1, N, words) uint64, the last
    symbol (padding) matching nowhere; and the masks of each sequence's own positions (N, words)."""
    n = len(padded)
    symbols = int(padded.max(initial=-1)) + 1
    masks = np.zeros((symbols + 1, n, words), dtype=np.uint64)
    own = np.zeros((n, words), dtype=np.uint64)
    for i in range(n):
        for j in range(int(lengths[i])):
            bit = np.uint64(1) << np.uint64(j % 64)
            masks[padded[i, j], i, j // 64] |= bit
            own[i, j // 64] |= bit
    return masks, own


def sequence_similarity(sequences: Sequence[np.ndarray], *, block: int = 256) -> np.ndarray:
    """Normalised longest common subsequence: LCS(a, b) / max(len a, len b) for every pair → (N, N) float32.

    Sequences hold non-negative integers (root-motion intervals mod 12). Two empty sequences (no chord
    change recognised in either) are undefined, NaN, not identical; an empty and a non-empty one share
    nothing (0). The LCS lengths come from the
    bit-parallel recurrence of Crochemore et al. (2001), V ← (V + (V & M)) | (V & ~M) over the match masks M
    of the other sequence, for `block` rows against all sequences at once; LCS = zero bits of V.
    """
    n = len(sequences)
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    width = max(int(lengths.max(initial=0)), 1)
    words = (width + 63) // 64
    padded = np.full((n, width), -1, dtype=np.int64)
    for i, s in enumerate(sequences):
        s = np.asarray(s)
        if s.ndim != 1 or (s.size and (s.dtype.kind not in "iu" or s.min() < 0)):
            raise ParameterError(f"sequence {i} must be 1-D with non-negative integers")
        padded[i, : len(s)] = s
    masks, own = _match_masks(padded, lengths, words)
    padded[padded < 0] = masks.shape[0] - 1  # padding looks up the empty mask
    ones = np.uint64(0xFFFFFFFFFFFFFFFF)
    lcs = np.zeros((n, n), dtype=np.int64)
    for start in range(0, n, block):
        rows = padded[start : start + block]
        V = np.full((len(rows), n, words), ones, dtype=np.uint64)
        for i in range(width):
            U = V & masks[rows[:, i]]
            carry = np.zeros((len(rows), n), dtype=np.uint64)
            for w in range(words):  # V + U with the carry passed from word to word
                low = V[:, :, w] + U[:, :, w]
                total = low + carry
                next_carry = ((low < V[:, :, w]) | (total < low)).astype(np.uint64)
                V[:, :, w] = total | (V[:, :, w] & ~U[:, :, w])
                carry = next_carry
        zeros = ~V & own[None, :, :]
        lcs[start : start + block] = _POPCOUNT[zeros.view(np.uint8)].reshape(len(rows), n, -1).sum(axis=2)
    longest = np.maximum(lengths[:, None], lengths[None, :])
    sim = np.divide(lcs, longest, out=np.full((n, n), np.nan), where=longest > 0)
    return sim.astype(np.float32)


def similarity_matrices(
    vectors: dict[str, np.ndarray],
    sequences: dict[str, list[np.ndarray]],
    std: dict[str, np.ndarray],
    channel_set: ChannelSet = AUDIO,
) -> dict[str, np.ndarray]:
    """(N, N) similarity matrix of every feature, vectors first: the kind `channel_set.similarity` names
    (`euclidean`: vectors standardised with `std[name]`; `lcs`: sequences). A feature the set does not name
    gets `euclidean` when it is a vector and `lcs` when it is a sequence; `precomputed` ones cannot be
    computed here (build the pool with their matrices)."""
    sims = {}
    for name, values in [*vectors.items(), *sequences.items()]:
        kind = channel_set.similarity.get(name, "euclidean" if name in vectors else "lcs")
        if kind == "euclidean" and name in vectors:
            sims[name] = standardized_similarity(values, std[name])
        elif kind == "lcs" and name in sequences:
            sims[name] = sequence_similarity(values)
        else:
            form = "vector" if name in vectors else "sequence"
            raise ParameterError(f"channel set {channel_set.name!r}: feature `{name}` is a {form}, which "
                                 f"the similarity kind {kind!r} cannot compare")
    return sims
