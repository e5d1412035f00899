"""A real EnCodec (e.g. MusicGen's 32 kHz codec) loaded from a local directory in transformers layout."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from transformers import EncodecModel

from lumina.runs.device import to_numpy
from lumina.runs.errors import CheckpointError


class EncodecCodec:
    """Wraps `transformers.EncodecModel`; codes (K, T) at the model's frame rate."""

    kind = "encodec"
    decoder = "encodec"

    def __init__(self, model: EncodecModel, source: str = "") -> None:
        self.model = model.eval()
        self.source = source
        cfg = model.config
        self.sample_rate = int(cfg.sampling_rate)
        self.frame_rate = float(cfg.frame_rate)
        self.bandwidth = float(max(cfg.target_bandwidths))
        self.num_codebooks = int(self.model.quantizer.get_num_quantizers_for_bandwidth(self.bandwidth))
        self.cardinality = int(cfg.codebook_size)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> EncodecCodec:
        """Load from a local directory (config.json + safetensors weights); nothing is downloaded."""
        path = Path(path)
        if not (path / "config.json").exists():
            raise CheckpointError(f"{path}: no config.json; expected an EnCodec directory in transformers layout")
        model = EncodecModel.from_pretrained(str(path), local_files_only=True, use_safetensors=True)
        return cls(model, source=str(path.resolve()))

    @torch.no_grad()
    def encode(self, audio: np.ndarray) -> np.ndarray:
        device = next(self.model.parameters()).device  # the generator's placement moves its audio encoder
        values = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None, None].to(device)
        out = self.model.encode(values, bandwidth=self.bandwidth)
        return to_numpy(out.audio_codes[0, 0]).astype(np.int64)

    @torch.no_grad()
    def decode(self, codes: np.ndarray) -> np.ndarray:
        device = next(self.model.parameters()).device
        out = self.model.decode(torch.from_numpy(codes)[None, None].to(device), [None])
        return to_numpy(out.audio_values[0, 0]).astype(np.float32)

    def identity(self) -> str:
        digest = hashlib.sha256(json.dumps(self.model.config.to_dict(), sort_keys=True, default=str).encode())
        for name, tensor in sorted(self.model.state_dict().items()):
            digest.update(name.encode() + to_numpy(tensor).tobytes())
        return digest.hexdigest()[:16]

    def save(self, path: str | Path) -> None:
        path = Path(path)
        self.model.save_pretrained(str(path))
        (path / "codec.json").write_text(json.dumps({"kind": self.kind, "identity": self.identity()}))

    @classmethod
    def load(cls, path: str | Path) -> EncodecCodec:
        return cls.from_pretrained(path)
