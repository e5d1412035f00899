"""Generated queries in a corpus: the folder the generated-queries stage wrote (`lumina.models.generate`,
`python -m experiments.generate`), read into the manifest as queries of kind `generated` (docs/corpus.md#queries).

The folder holds the clips and `generated.json`: the key of everything that shaped the clips (model identity,
count, length, sampling seed, temperature, top-k, the codec's decoder), its parts, one manifest row per clip and
the provenance of the stage. This module only reads it: the data never loads, trains or samples a generator.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from execution.files import atomic_path
from lumina.data.audio import file_sha256
from lumina.data.common import read_json
from lumina.data.manifest import AUDIO_SHA256, Manifest
from lumina.runs.errors import CorpusError

RECORD = "generated.json"


def read_generated(folder: str | Path) -> dict:
    """The record of a generated-queries folder; CorpusError naming the stage to run when there is none."""
    record = read_json(Path(folder) / RECORD)
    if not record.get("rows"):
        raise CorpusError(f"{folder}: no generated queries here (no {RECORD}); run `python -m experiments.generate` "
                          "with the same overrides first, or set data.generated_dir=null for the corpus without them")
    return record


def include_generated(manifest: Manifest, folder: str | Path) -> Manifest:
    """`manifest` with the generated queries of `folder` appended; the combined manifest is written beside the
    corpus's as `manifest-generated-<key>.csv` (the file run provenance names) and carries the folder's record
    (`Manifest.generated`: key, model identity, settings)."""
    folder = Path(folder)
    record = read_generated(folder)
    rows = pd.DataFrame(record["rows"])
    rows["path"] = [os.path.relpath((folder / p).resolve(), manifest.root.resolve()) for p in rows["path"]]
    if AUDIO_SHA256 in manifest.table:  # a catalogue that records its files' hashes records these too
        rows[AUDIO_SHA256] = [file_sha256(manifest.root / p) for p in rows["path"]]
    combined = Manifest(pd.concat([manifest.table, rows.astype(str)], ignore_index=True), manifest.root,
                        f"manifest-generated-{record['key']}.csv",
                        {**{k: record[k] for k in ("key", "model_identity", "settings") if k in record},
                         "track_ids": rows["track_id"].tolist()})
    with atomic_path(combined.path) as tmp:
        combined.save(tmp)
    return combined
