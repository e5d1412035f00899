"""What other packages read of LUMINA (the abstention study, `groundtruth.abstention`), in one public module: the
configured database of a catalogue, the reference top cosines, whether each gate gives a query a share, and the
top cosines of queries signed with the empty description.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from lumina.data.audio import load_audio
from lumina.data.manifest import Manifest
from lumina.methods.lumina.attribution import attribute, prepare
from lumina.methods.lumina.database import SignatureDatabase, manifest_tracks, read_database
from lumina.methods.lumina.method import channel_matrix, database_path, signature_store
from lumina.methods.lumina.scoring import ScoringConfig, unit_rows
from lumina.methods.lumina.signatures import SignatureConfig, Skipped, signature
from lumina.methods.options import LuminaOptions
from lumina.models.protocol import Generator

__all__ = ["COSINE_CHANNELS", "LuminaOptions", "ScoringConfig", "SignatureDatabase", "catalogue_database",
           "empty_description_tops", "gate_shares", "reference_tops"]

COSINE_CHANNELS = ("P", "M", "PM")
"""The channels of LUMINA's cosine settings (`lumina-P`, `lumina-M`, `lumina-PM`)."""


def catalogue_database(options: LuminaOptions, cache: str | Path, generator: Generator, manifest: Manifest
                       ) -> SignatureDatabase | None:
    """The database the method with `options` signs `generator`'s catalogue into (`method.database_path`), viewed as
    `manifest`'s catalogue; None when it has not been built."""
    path = database_path(options, signature_store(cache, generator))
    return read_database(path).view(manifest_tracks(manifest), manifest.catalogue_key) if path.exists() else None


def reference_tops(db: SignatureDatabase) -> dict[str, np.ndarray]:
    """Top cosine (over the training songs) of each control track in each cosine setting: {`lumina-<c>`: (C,)}."""
    train, controls = db.ids("train"), db.ids("control")
    return {f"lumina-{c}": (unit_rows(channel_matrix(db, c, train)) @ unit_rows(channel_matrix(db, c, controls)).T)
            .max(axis=0) for c in COSINE_CHANNELS}


def gate_shares(db: SignatureDatabase, query_ids: Sequence[str], gates: Sequence[str],
                scoring: ScoringConfig | None = None) -> pd.DataFrame:
    """Whether each query of the database gets any share under each gate and channel with the sources' rule (no
    abstention; the other options `scoring`'s, default `ScoringConfig()`): rows (query_id, gate, channel,
    any_share), gate by gate in `query_ids` order; queries the database lacks are left out."""
    rows = []
    present = set(db.ids("query"))
    for gate in gates:
        reference = prepare(db, replace(scoring or ScoringConfig(), gate=gate, abstain=False))
        for query in (q for q in query_ids if q in present):
            index = db.row_of(query)
            for channel, scores in attribute({c: db.signatures[c][index] for c in ("P", "M")}, reference).items():
                rows.append({"query_id": query, "gate": gate, "channel": channel,
                             "any_share": bool(scores.share.sum() > 0)})
    return pd.DataFrame(rows, columns=["query_id", "gate", "channel", "any_share"])


def empty_description_tops(db: SignatureDatabase, generator: Generator, audio: Mapping[str, str | Path]
                           ) -> pd.DataFrame:
    """Top cosine (over the training songs) of each query's signature extracted with the empty description instead
    of its own, under the database's signature settings: rows (query_id, channel P | M, top); `audio`: query id →
    file. Queries whose signature is skipped (silence, too short) are left out."""
    config = SignatureConfig.from_options(db.provenance)
    train = {c: unit_rows(channel_matrix(db, c, db.ids("train"))) for c in ("P", "M")}
    rows = []
    for query, path in audio.items():
        signed = signature(generator, load_audio(path, generator.codec.sample_rate, allow_silent=True), "", config)
        if isinstance(signed, Skipped):
            continue
        rows += [{"query_id": query, "channel": c,
                  "top": float((train[c] @ unit_rows(np.asarray(signed[c])[None])[0]).max())} for c in ("P", "M")]
    return pd.DataFrame(rows, columns=["query_id", "channel", "top"])
