"""The symbolic generator's training recipe on any subset of training windows (docs/symbolic.md#the-generator):
the project's deterministic, resumable training loop (`lumina.models.training.train_lm`) with its intermediate
checkpoints (TracIn), cached under `<cache>/models/<name>-<hash of the windows' tokens and the recipe>` — the
hash does not involve the query rows, so adding queries to a corpus keeps its trained models."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from lumina.data.manifest import Manifest
from lumina.models.codes import encode_tracks
from lumina.models.music_transformer import (
    RECORD_FILE,
    WEIGHTS_FILE,
    MusicTransformerConfig,
    MusicTransformerGenerator,
    build_model,
)
from lumina.models.training import TrainConfig, evaluate_losses, loss_by_group, train_lm
from lumina.runs.device import REFERENCE, Placement
from lumina.runs.layout import model_dir
from lumina.runs.locking import cache_lock
from lumina.runs.provenance import stamp


def train_config(config: MusicTransformerConfig) -> TrainConfig:
    """The training loop's settings: crops as long as the model's window (a window is never cut)."""
    return TrainConfig(**{"crop_frames": config.arch.max_sequence, **config.train})


def model_key(codes: dict[str, np.ndarray], train_ids: Sequence[str], config: MusicTransformerConfig,
              placement: Placement = REFERENCE) -> str:
    """Hash of the recipe, the training windows' tokens, in order, and a placement other than CPU float32 (the
    reference keeps its keys)."""
    recipe = [asdict(config), asdict(train_config(config))] + ([] if placement.is_reference else [placement.record()])
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode())
    for t in train_ids:
        digest.update(t.encode() + np.ascontiguousarray(codes[t], dtype=np.int64).tobytes())
    return digest.hexdigest()[:12]


def train_symbolic(manifest: Manifest, config: MusicTransformerConfig, cache_root: str | Path, *,
                   train_ids: Sequence[str] | None = None, name: str = "musictransformer", progress: bool = True,
                   placement: Placement = REFERENCE) -> MusicTransformerGenerator:
    """The recipe trained on `train_ids` (default: every training window), from the cache or trained now, on
    `placement` (a placement other than CPU float32 trains a model of its own, keyed by the placement too).

    The record holds the training record of `train_lm`, the loss of every window and the mean loss per group
    (the subset, the training windows left out, each query kind).
    """
    cache_root = Path(cache_root)
    train_ids = list(manifest.train_ids if train_ids is None else train_ids)
    ids = manifest.table["track_id"].tolist()
    generator = MusicTransformerGenerator(build_model(config.arch, config.seed)).place(placement)
    codes = encode_tracks(generator.codec, manifest, ids, cache_root, progress=progress)
    key = model_key(codes, train_ids, config, placement)
    path = model_dir(cache_root, name, key)
    with cache_lock(path):
        if (path / RECORD_FILE).exists() and (path / WEIGHTS_FILE).exists():
            return MusicTransformerGenerator.load(path, placement)
        partial = path.with_name(path.name + ".partial")
        descriptions = dict.fromkeys(ids, "")
        torch.manual_seed(config.seed)
        record = train_lm(generator, codes, descriptions, train_ids, train_config(config), partial,  # type: ignore[arg-type]
                          progress=progress)
        losses = evaluate_losses(generator, codes, descriptions, ids)  # type: ignore[arg-type]
        generator.record = {**record, "seed": config.seed, "model_config": asdict(config),
                            "provenance": stamp(config=asdict(config), placement=placement.record(),
                                                upstream={"training_tracks": manifest.content_key(train_ids)}).record(),
                            "loss_by_group": loss_by_group(manifest, losses, train_ids),
                            "clip_losses": {t: round(v, 5) for t, v in losses.items()}}
        generator.save(partial)
        shutil.rmtree(path, ignore_errors=True)
        partial.replace(path)
        return MusicTransformerGenerator.load(path, placement)
