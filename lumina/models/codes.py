"""Codes of whole tracks and of their segments, cached on disk per corpus and codec.

A tokenizer with `frame_rate` 0 is untimed (symbolic events, docs/symbolic.md#the-generator): it reads its own
files (`read(path)`), and each of its tracks is one unit, never cut into segments."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from execution.files import atomic_path
from lumina.data.audio import load_audio
from lumina.data.manifest import Manifest
from lumina.runs.layout import codes_dir


@dataclass(frozen=True)
class Segment:
    """A stretch [start_s, stop_s) of a track; segment-level methods score these as rows."""

    track_id: str
    start_s: float
    stop_s: float


def is_untimed(codec) -> bool:
    """Whether a tokenizer's tokens are events rather than steps of a clock (`frame_rate` 0)."""
    return not codec.frame_rate > 0


def read_clip(codec, path: str | Path, *, allow_silent: bool = False) -> np.ndarray:
    """The clip `codec.encode` takes, from a track's file: audio (n,) at the codec's rate, or what an untimed
    tokenizer reads itself (`codec.read`)."""
    if is_untimed(codec):
        return codec.read(path)
    return load_audio(path, codec.sample_rate, allow_silent=allow_silent)


def encode_tracks(
    codec, manifest: Manifest, ids: Sequence[str], cache_root: Path, *, progress: bool = True
) -> dict[str, np.ndarray]:
    """Codes (K, T) of each track, cached per codec and audio file (`<codec>/<audio sha256>.npy`), so a track is
    encoded once whatever catalogue it is in; interrupted runs keep what was done."""
    folder = codes_dir(cache_root, codec.identity())
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for track in tqdm(list(ids), desc="encoding tracks", disable=not progress):
        path = folder / f"{manifest.audio_key(track)}.npy"
        if not path.exists():
            codes = codec.encode(read_clip(codec, manifest.path_of(track)))
            with atomic_path(path) as tmp:
                np.save(tmp, codes)
        out[track] = np.load(path)
    return out



def cut_segments(
    codes: dict[str, np.ndarray], track_ids: Sequence[str], frame_rate: float, segment_s: float,
    min_segment_s: float = 1.0,
) -> list[Segment]:
    """Consecutive `segment_s` segments of each track (a shorter tail kept when >= `min_segment_s`; a
    track shorter than that is one segment). `frame_rate` 0 (an untimed tokenizer): each track is one segment."""
    if not frame_rate > 0:
        return [Segment(track, 0.0, float("inf")) for track in track_ids]
    size = max(1, int(round(segment_s * frame_rate)))
    min_size = int(round(min_segment_s * frame_rate))
    segments = []
    for track in track_ids:
        n = codes[track].shape[1]
        starts = [s for s in range(0, n, size) if min(s + size, n) - s >= min_size] or [0]
        segments += [Segment(track, s / frame_rate, min(s + size, n) / frame_rate) for s in starts]
    return segments


def segment_codes(codes: dict[str, np.ndarray], segment: Segment, frame_rate: float) -> np.ndarray:
    """Codes (K, T_seg) of one segment (the whole track for an untimed tokenizer, `frame_rate` 0)."""
    if not frame_rate > 0:
        return codes[segment.track_id]
    start = int(round(segment.start_s * frame_rate))
    stop = int(round(segment.stop_s * frame_rate))
    return codes[segment.track_id][:, start:stop]
