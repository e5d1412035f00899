"""Scored units as dattri data.

A training segment (a row of the score matrix) or a query (a column) is an `Item` (the generator protocol's):
its tokens and its text condition. The generator's `collate` turns a list of items into the batch its loss
module reads, which is what dattri's data loaders yield here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from torch.utils.data import DataLoader, Dataset

from lumina.models.codes import Segment, segment_codes
from lumina.models.protocol import Batch, Generator, Item


def segment_items(
    codes: Mapping[str, np.ndarray], segments: Sequence[Segment], texts: Mapping[str, str], frame_rate: float
) -> list[Item]:
    """Items of training segments (their track's description as condition)."""
    return [Item(segment_codes(codes, s, frame_rate), texts[s.track_id]) for s in segments]


def track_items(codes: Mapping[str, np.ndarray], ids: Sequence[str], texts: Mapping[str, str]) -> list[Item]:
    """Items of whole tracks (queries)."""
    return [Item(codes[t], texts[t]) for t in ids]


def length_order(items: Sequence[Item]) -> np.ndarray:
    """Indices of `items` sorted by length (stable), so that batches pad little."""
    return np.argsort([item.frames for item in items], kind="stable")


def batches(items: Sequence[Item], batch_size: int) -> list[np.ndarray]:
    """Index arrays of consecutive batches in length order; together they cover every item once."""
    order = length_order(items)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


class ItemDataset(Dataset):
    """A list of items as a torch dataset (for dattri's attributors, which take data loaders)."""

    def __init__(self, items: Sequence[Item]) -> None:
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Item:
        return self.items[index]


def loader(generator: Generator, items: Sequence[Item], batch_size: int, *, as_dict: bool = False) -> DataLoader:
    """An unshuffled data loader over `items` yielding the generator's collated batches: tuples of their
    tensors in `batch_fields(generator)` order, as dattri's TRAK and TracIn read them, or dicts."""

    def collate_fn(chunk: list[Item]) -> tuple | Batch:
        batch = generator.collate(chunk)
        return batch if as_dict else tuple(batch.values())

    return DataLoader(ItemDataset(items), batch_size=batch_size, shuffle=False, collate_fn=collate_fn)


def batch_fields(generator: Generator, item: Item) -> tuple[str, ...]:
    """The names of a collated batch's tensors, in the order `loader` yields them."""
    return tuple(generator.collate([item]))


def loud_frames(audio: np.ndarray, frames: int, hop: int, threshold_db: float) -> np.ndarray:
    """Which of `frames` codec frames (hop samples each) of `audio` (n,) are louder than `threshold_db` dBFS (RMS).

    The unlearning seed's silence mask M_U: quiet frames are left out of the query's loss.
    """
    padded = np.zeros(frames * hop, dtype=np.float64)
    n = min(audio.shape[0], padded.shape[0])
    padded[:n] = audio[:n]
    rms = np.sqrt(np.mean(padded.reshape(frames, hop) ** 2, axis=1))
    with np.errstate(divide="ignore"):
        level = 20.0 * np.log10(rms)
    return level > threshold_db
