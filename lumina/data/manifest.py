"""The corpus manifest: one row per audio file with its split and known factors (docs/formats.md)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from lumina.data.audio import file_sha256
from lumina.runs.errors import CorpusError

COLUMNS: dict[str, object] = {
    "track_id": "",
    "split": "train",
    "path": "",
    "duration_s": float("nan"),
    "sample_rate": -1,
    "description": "",
    "piece": "",
    "collection": "",
    "program": -1,
    "instrument": "",
    "instrument_family": "",
    "tempo_factor": 1.0,
    "transpose": 0,
    "query_kind": "",
    "source_ids": "",
    "variant": "",
    "offset_s": 0.0,
}
AUDIO_SHA256 = "audio_sha256"
"""Optional column: the SHA-256 of each row's audio file (the folder builder writes it), which spares
`Manifest.catalogue_key` reading the files."""
SPLITS = ("train", "query", "control")
QUERY_KINDS = ("near_copy", "composition", "production", "sample", "held_out", "out_of_domain", "generated")
"""Planted kinds (with sources), then the kinds without: held-out music, out-of-domain audio, generated clips."""


@dataclass
class Manifest:
    """A validated manifest table, the folder its relative paths start from and the name of its file there
    (what run provenance names); `generated`: the record of the generated-queries folder it includes (its key,
    model identity and settings, `lumina.data.generated`), empty when none."""

    table: pd.DataFrame
    root: Path
    file: str = "manifest.csv"
    generated: dict = field(default_factory=dict, compare=False)
    _catalogue_memo: tuple[str, str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.table = normalise_table(self.table, self.root)

    @classmethod
    def load(cls, path: str | Path) -> Manifest:
        path = Path(path)
        if not path.exists():
            raise CorpusError(f"{path}: manifest not found (build the corpus first, or check the path)")
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        return cls(table, path.parent, path.name)

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.table.to_csv(path, index=False)

    @property
    def path(self) -> Path:
        """The manifest's file: `root / file`."""
        return self.root / self.file

    def ids(self, split: str) -> list[str]:
        """Track ids of one split, in manifest order."""
        return self.table.loc[self.table["split"] == split, "track_id"].tolist()

    @property
    def train_ids(self) -> list[str]:
        return self.ids("train")

    @property
    def query_ids(self) -> list[str]:
        return self.ids("query")

    @property
    def control_ids(self) -> list[str]:
        return self.ids("control")

    def row(self, track_id: str) -> pd.Series:
        return self.table.loc[self.table["track_id"] == track_id].iloc[0]

    def path_of(self, track_id: str) -> Path:
        path = Path(self.row(track_id)["path"])
        return path if path.is_absolute() else self.root / path

    def description_of(self, track_id: str) -> str:
        return str(self.row(track_id)["description"])

    def sources_of(self, query_id: str) -> list[str]:
        """Planted source track ids of a query (empty for held-out queries and non-queries)."""
        text = str(self.row(query_id)["source_ids"])
        return [s for s in text.split(";") if s]

    def subset(self, track_ids: list[str]) -> Manifest:
        """The rows of `track_ids`, in that order."""
        index = self.table.set_index("track_id")
        missing = [t for t in track_ids if t not in index.index]
        if missing:
            raise CorpusError(f"unknown track ids: {missing[:5]}")
        return Manifest(index.loc[track_ids].reset_index(), self.root)

    def sha256(self) -> str:
        """SHA-256 of the table as CSV (paths as written, audio not read)."""
        return hashlib.sha256(self.table.to_csv(index=False).encode()).hexdigest()

    @property
    def catalogue_key(self) -> str:
        """Short SHA-256 (12 hex digits) of the catalogue's content: every row but its `path`, plus the SHA-256 of
        its audio file (the `audio_sha256` column where every row has one, else the file is read). The same rows
        and audio bytes give the same key wherever the files lie; a changed file, row or track list changes it
        (docs/corpus.md#the-catalogue-key). The rows of an included generated-queries folder are keyed apart (by
        `generated['key']`), so the key names the catalogue, not the model that sampled them. Computed once per
        table content."""
        table_sha = self.sha256()
        if self._catalogue_memo is None or self._catalogue_memo[0] != table_sha:
            generated = set(self.generated.get("track_ids", ()))
            self._catalogue_memo = (table_sha, self.content_key(
                [t for t in self.table["track_id"] if t not in generated] if generated else None))
        return self._catalogue_memo[1]

    def content_key(self, track_ids: Sequence[str] | None = None) -> str:
        """The catalogue key of the rows `track_ids` only (default: all), in that order: what an artefact fitted on
        those tracks (the codec, a model) is keyed by, so that adding queries or controls changes none of them."""
        table = self.table if track_ids is None else self.subset(list(track_ids)).table
        if AUDIO_SHA256 in table and table[AUDIO_SHA256].astype(str).ne("").all():
            hashes = table[AUDIO_SHA256].astype(str).tolist()
        else:
            hashes = [file_sha256(p if Path(p).is_absolute() else self.root / p) for p in table["path"]]
        content = table.drop(columns=["path", AUDIO_SHA256], errors="ignore").assign(**{AUDIO_SHA256: hashes})
        return hashlib.sha256(content.to_csv(index=False).encode()).hexdigest()[:12]

    def audio_key(self, track_id: str) -> str:
        """SHA-256 of one track's audio file (the `audio_sha256` column when filled, else the file is read)."""
        row = self.row(track_id)
        if AUDIO_SHA256 in row and str(row[AUDIO_SHA256]):
            return str(row[AUDIO_SHA256])
        return file_sha256(self.path_of(track_id))


def normalise_table(table: pd.DataFrame, root: Path) -> pd.DataFrame:
    """Fill optional columns with defaults, cast types and check ids and splits."""
    table = table.copy()
    for required in ("track_id", "path"):
        if required not in table.columns:
            raise CorpusError(f"{root}: manifest lacks the required column `{required}`")
    for name, default in COLUMNS.items():
        if name not in table.columns:
            table[name] = default
    for name, default in COLUMNS.items():
        if isinstance(default, float):
            table[name] = pd.to_numeric(table[name], errors="coerce").fillna(default).astype(float)
        elif isinstance(default, int):
            table[name] = pd.to_numeric(table[name], errors="coerce").fillna(default).astype(int)
        else:
            table[name] = table[name].fillna(default).astype(str)
    table["split"] = table["split"].replace("", "train")
    if table["track_id"].eq("").any():
        raise CorpusError(f"{root}: manifest has rows without a track_id")
    duplicated = table["track_id"][table["track_id"].duplicated()].tolist()
    if duplicated:
        raise CorpusError(f"{root}: duplicated track ids in the manifest: {duplicated[:5]}")
    bad = sorted(set(table["split"]) - set(SPLITS))
    if bad:
        raise CorpusError(f"{root}: unknown split values {bad}; use one of {SPLITS}")
    if not (table["split"] == "train").any():
        raise CorpusError(f"{root}: the corpus has no training tracks; nothing can be attributed")
    return table.reset_index(drop=True)
