"""Scored units as dattri data.

A training segment (a row of the score matrix) or a query (a column) is an `Item`: its codes and its text
condition. `collate` turns a list of items into the tuple of tensors the teacher-forcing loss reads —
`(inputs, targets, valid, states, text_mask)`, right-padded to the batch — which is what dattri's TRAK and
TracIn data loaders must yield. The frozen text encoder runs here, outside any differentiation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from lumina.generator.codes import Segment, segment_codes
from lumina.generator.teacher_forcing import delay_pattern
from lumina.generator.training import crop_batch

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
"""inputs (B, K, S) long, targets (B, K, S) long, valid (B, K, S) bool, states (B, L, D_text), text_mask (B, L)."""

FIELDS = ("inputs", "targets", "valid", "states", "text_mask")


@dataclass(frozen=True)
class Item:
    """One scored unit: codes (K, T), its description and, optionally, which frames (T,) count in its loss."""

    codes: np.ndarray
    text: str
    keep: np.ndarray | None = None

    @property
    def frames(self) -> int:
        return int(self.codes.shape[1])


def segment_items(
    codes: Mapping[str, np.ndarray], segments: Sequence[Segment], texts: Mapping[str, str], frame_rate: float
) -> list[Item]:
    """Items of training segments (their track's description as condition)."""
    return [Item(segment_codes(codes, s, frame_rate), texts[s.track_id]) for s in segments]


def track_items(codes: Mapping[str, np.ndarray], ids: Sequence[str], texts: Mapping[str, str]) -> list[Item]:
    """Items of whole tracks (queries)."""
    return [Item(codes[t], texts[t]) for t in ids]


def collate(generator, items: Sequence[Item]) -> Batch:
    """Items → one right-padded batch; padded steps and frames with `keep` False are not valid targets."""
    frames = max(item.frames for item in items)
    codes, lengths = crop_batch([item.codes for item in items], [0] * len(items), frames)
    inputs, targets, valid = delay_pattern(codes, generator.special_token, lengths)
    k = codes.shape[1]
    for b, item in enumerate(items):
        if item.keep is not None:
            for q in range(k):  # frame j of codebook q is predicted at delayed step q + j
                valid[b, q, q : q + item.frames] &= torch.from_numpy(np.asarray(item.keep, dtype=bool))
    ids, mask = generator.tokenizer([item.text for item in items])
    with torch.no_grad():
        states = generator.model.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    return inputs, targets, valid, states, mask.bool()


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


def loader(generator, items: Sequence[Item], batch_size: int, *, as_dict: bool = False) -> DataLoader:
    """An unshuffled data loader over `items` yielding `Batch` tuples (or dicts keyed by `FIELDS`)."""

    def collate_fn(chunk: list[Item]) -> Batch | dict[str, torch.Tensor]:
        batch = collate(generator, chunk)
        return dict(zip(FIELDS, batch, strict=True)) if as_dict else batch

    return DataLoader(ItemDataset(items), batch_size=batch_size, shuffle=False, collate_fn=collate_fn)


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
