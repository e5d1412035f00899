"""Text conditions: a word-level tokenizer built from the corpus descriptions (the embedded default), or
the tokenizer saved with a real MusicGen checkpoint."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"


def words(text: str) -> list[str]:
    """Lower-case word tokens of a description."""
    return re.findall(r"[a-z0-9]+", text.lower())


class WordTokenizer:
    """Maps descriptions to ids: `<pad>`=0, `</s>`=1 (as T5), `<unk>`=2, then corpus words in sorted order."""

    def __init__(self, vocabulary: Sequence[str]) -> None:
        self.vocabulary = list(vocabulary)
        self.index = {w: i for i, w in enumerate(self.vocabulary)}

    @classmethod
    def build(cls, descriptions: Iterable[str]) -> WordTokenizer:
        corpus_words = sorted({w for d in descriptions for w in words(d)})
        return cls([PAD, EOS, UNK, *corpus_words])

    def __len__(self) -> int:
        return len(self.vocabulary)

    def __call__(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Texts → input_ids (B, L) and attention_mask (B, L), right-padded, each ending with `</s>`."""
        rows = [[self.index.get(w, self.index[UNK]) for w in words(t)] + [self.index[EOS]] for t in texts]
        length = max(len(r) for r in rows)
        ids = torch.full((len(rows), length), self.index[PAD], dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        return ids, mask

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"kind": "word", "vocabulary": self.vocabulary}, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> WordTokenizer:
        return cls(json.loads(Path(path).read_text())["vocabulary"])


class PretrainedTokenizer:
    """The tokenizer of a local MusicGen checkpoint (T5), loaded with transformers, nothing downloaded."""

    def __init__(self, path: str | Path) -> None:
        from transformers import AutoTokenizer

        self.path = str(path)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)

    def __call__(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.tokenizer(list(texts), padding=True, return_tensors="pt")
        return out["input_ids"], out["attention_mask"]

    def __len__(self) -> int:
        return len(self.tokenizer)
