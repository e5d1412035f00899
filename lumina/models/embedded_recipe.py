"""The embedded default generator: fit the codec to the corpus, encode every track, train the tiny
MusicGen on a subset of training tracks. Each stage is cached on disk under a hash of its inputs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from execution.files import atomic_path
from lumina.data.audio import load_audio
from lumina.data.manifest import Manifest
from lumina.models.codecs.chroma_mel import EmbeddedCodec, EmbeddedCodecConfig
from lumina.models.codes import encode_tracks
from lumina.models.musicgen import RECORD_FILE, LMConfig, MusicgenGenerator, build_musicgen
from lumina.models.text import WordTokenizer
from lumina.models.training import TrainConfig, evaluate_losses, loss_by_group, train_lm
from lumina.runs.device import REFERENCE, Placement
from lumina.runs.layout import codec_dir, model_dir
from lumina.runs.locking import cache_lock
from lumina.runs.provenance import stamp


@dataclass(frozen=True)
class EmbeddedModelConfig:
    """Codec, architecture and recipe of the embedded generator (Hydra group `model`, `embedded.yaml`)."""

    codec: EmbeddedCodecConfig = field(default_factory=EmbeddedCodecConfig)
    lm: LMConfig = field(default_factory=LMConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0

    @classmethod
    def from_dict(cls, options: Mapping) -> EmbeddedModelConfig:
        return cls(
            codec=EmbeddedCodecConfig(**options.get("codec", {})),
            lm=LMConfig(**options.get("lm", {})),
            train=TrainConfig(**options.get("train", {})),
            seed=int(options.get("seed", 0)),
        )


RECIPE_VERSION = 2
"""Part of every model's cache key: bump it when the recipe changes what a key's inputs train (2: the word
vocabulary is the training descriptions' alone, so queries added to a corpus change no model)."""


def _digest(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


def fit_codec(manifest: Manifest, config: EmbeddedCodecConfig, cache_root: Path, *, progress: bool = True
              ) -> EmbeddedCodec:
    """The embedded codec fitted on the manifest's training tracks (cached, keyed by their content only)."""
    key = _digest([manifest.content_key(manifest.train_ids), asdict(config)])
    path = codec_dir(cache_root, "embedded", key)
    with cache_lock(path):
        if (path / "codec.json").exists():
            return EmbeddedCodec.load(path)
        return _fit_and_save_codec(manifest, config, path, progress)


def _fit_and_save_codec(manifest: Manifest, config: EmbeddedCodecConfig, path: Path, progress: bool) -> EmbeddedCodec:
    audios = [
        load_audio(manifest.path_of(t), config.sample_rate)
        for t in tqdm(manifest.train_ids, desc="codec: reading audio", disable=not progress)
    ]
    codec = EmbeddedCodec.fit(audios, config)
    with atomic_path(path) as tmp:
        codec.save(tmp)
    return codec


def train_embedded(
    manifest: Manifest,
    config: EmbeddedModelConfig,
    cache_root: str | Path,
    *,
    train_ids: Sequence[str] | None = None,
    name: str = "embedded",
    progress: bool = True,
    placement: Placement = REFERENCE,
) -> MusicgenGenerator:
    """Build or reuse the embedded generator trained on `train_ids` (default: every training track), trained
    and returned on `placement`.

    Cached under `cache_root/models/<name>-<hash>`; the training record lists the subset, seed, steps,
    losses, intermediate checkpoints with learning rates, and training vs held-out loss. A placement other
    than CPU float32 trains a model of its own (its bits differ), keyed by the placement too.
    """
    cache_root = Path(cache_root)
    train_ids = list(manifest.train_ids if train_ids is None else train_ids)
    codec = fit_codec(manifest, config.codec, cache_root, progress=progress)
    descriptions = dict(zip(manifest.table["track_id"], manifest.table["description"], strict=True))
    key = _digest([RECIPE_VERSION, codec.identity(), asdict(config), train_ids, [descriptions[t] for t in train_ids]]
                  + ([] if placement.is_reference else [placement.record()]))
    path = model_dir(cache_root, name, key)
    with cache_lock(path):
        if (path / RECORD_FILE).exists() and (path / "config.json").exists():
            return MusicgenGenerator.load(path, placement)
        return _train_and_save(manifest, config, codec, train_ids, descriptions, path, progress, placement)


def _train_and_save(
    manifest: Manifest, config: EmbeddedModelConfig, codec: EmbeddedCodec, train_ids: list[str],
    descriptions: dict[str, str], path: Path, progress: bool, placement: Placement,
) -> MusicgenGenerator:
    held_out = [t for t in manifest.table["track_id"] if t not in set(train_ids)]
    codes = encode_tracks(codec, manifest, train_ids + held_out, path.parent.parent, progress=progress)
    tokenizer = WordTokenizer.build(descriptions[t] for t in train_ids)  # what the key hashes; other words: <unk>
    model = build_musicgen(
        config.lm, num_codebooks=codec.num_codebooks, cardinality=codec.cardinality,
        text_vocab_size=len(tokenizer), seed=config.seed,
    )
    generator = MusicgenGenerator(model, codec, tokenizer).place(placement)
    torch.manual_seed(config.seed)
    record = train_lm(generator, codes, descriptions, train_ids, config.train, path, progress=progress)
    losses = evaluate_losses(generator, codes, descriptions, train_ids + held_out)
    generator.record = {
        **record,
        "seed": config.seed,
        # what the weights' bits depend on besides the recipe: the machine and its kernels, stamped now
        "provenance": stamp(config=asdict(config), upstream={"codec": codec.identity(),
                                                              "training_tracks": manifest.content_key(train_ids)},
                            placement=placement.record()).record(),
        **({} if placement.is_reference else {"placement": placement.record()}),
        "model_config": asdict(config),
        "manifest_sha256": manifest.sha256(),
        "codec_identity": codec.identity(),
        "loss_by_group": loss_by_group(manifest, losses, train_ids),
        "clip_losses": {t: round(v, 5) for t, v in losses.items()},
    }
    generator.save(path)
    generator.source = str(path.resolve())
    return generator
