"""CLAP audio embeddings through transformers' `ClapModel`, from a local checkpoint directory.

The directory holds what `ClapModel.save_pretrained` and `ClapProcessor.save_pretrained` (or the feature
extractor alone) write, e.g. a local copy of LAION's `larger_clap_music`. Nothing is downloaded and no remote
code runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lumina.methods.retrieval.checkpoint import (
    checkpoint_dir,
    checkpoint_sha256,
    model_card_licence,
    read_config,
    weights_file,
)
from lumina.methods.retrieval.encoder import Encoder
from lumina.runs.errors import CheckpointError, ParameterError


def load_clap(checkpoint: str | Path, *, chunk_s: float = 10.0, min_chunk_s: float = 1.0) -> Encoder:
    """The CLAP audio tower of `checkpoint`: one projected, L2-normalised embedding per chunk of at most
    `chunk_s` seconds (at most the feature extractor's `max_length_s`; shorter chunks are repeat-padded by it)."""
    import torch
    from transformers import ClapFeatureExtractor, ClapModel

    folder = checkpoint_dir(checkpoint, needs=("config.json", "preprocessor_config.json"))
    config = read_config(folder)
    if config.get("model_type") != "clap":
        raise CheckpointError(f"{folder}: config.json has model_type {config.get('model_type')!r}, not 'clap'")
    weights = weights_file(folder)
    model = ClapModel.from_pretrained(folder, local_files_only=True, trust_remote_code=False).eval()
    extractor = ClapFeatureExtractor.from_pretrained(folder, local_files_only=True)
    if not 0 < chunk_s <= extractor.max_length_s:
        raise ParameterError(f"chunk_s must be in (0, {extractor.max_length_s}] for this CLAP (its feature "
                             f"extractor's max_length_s), got {chunk_s}")
    # A chunk never exceeds max_length_s, so neither truncation mode draws random crops; fused models take the
    # four-channel "fusion" input, unfused ones the single mel ("rand_trunc").
    truncation = "fusion" if model.config.audio_config.enable_fusion else "rand_trunc"
    rate = int(extractor.sampling_rate)

    def frames(chunk: np.ndarray) -> np.ndarray:
        inputs = extractor(chunk, sampling_rate=rate, truncation=truncation, return_tensors="pt")
        with torch.inference_mode():
            out = model.get_audio_features(input_features=inputs["input_features"], is_longer=inputs["is_longer"])
        return out.pooler_output.float().numpy()

    identity = {
        "encoder": "clap",
        "model_class": "transformers.ClapModel",
        "checkpoint_sha256": checkpoint_sha256(folder),
        "weights": weights,
        "model_licence": model_card_licence(folder),
        "sample_rate": rate,
        "dim": int(model.config.projection_dim),
        "enable_fusion": bool(model.config.audio_config.enable_fusion),
        "truncation": truncation,
        "padding": extractor.padding,
        "chunk_s": float(chunk_s),
        "min_chunk_s": float(min_chunk_s),
        "pooling": "projected audio embedding per chunk; chunk-length-weighted mean over chunks",
    }
    return Encoder(
        name=f"clap-{folder.name}", sample_rate=rate, dim=identity["dim"], chunk_s=float(chunk_s),
        min_chunk_s=float(min_chunk_s), frames=frames, identity=identity, kind="clap", checkpoint=str(folder),
    )
