"""The published MusicGen architectures (conf/model/musicgen-*.yaml, kind `architecture`): their numbers, a
shrunken copy built through the generator loader, and the FLOP count docs/scale.md rests on."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from benchmarks.real_architectures import forward_flops
from lumina.configure import model_loader
from lumina.runs.errors import ParameterError

CONF = Path(__file__).resolve().parents[1] / "conf" / "model"


def config(size: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONF / f"musicgen-{size}.yaml"), resolve=True)


@pytest.mark.parametrize("size, layers, hidden, heads", [("small", 24, 1024, 16), ("medium", 48, 1536, 24),
                                                          ("large", 48, 2048, 32)])
def test_published_numbers(size, layers, hidden, heads):
    model = config(size)
    decoder, audio = model["decoder"], model["audio_encoder"]
    assert model["kind"] == "architecture"
    assert (decoder["num_hidden_layers"], decoder["hidden_size"], decoder["num_attention_heads"]) == (layers, hidden,
                                                                                                     heads)
    assert decoder["ffn_dim"] == 4 * hidden and decoder["num_codebooks"] == 4 and decoder["vocab_size"] == 2048
    assert model["text_encoder"]["d_model"] == 768  # T5-base conditioning
    assert audio["sampling_rate"] / np.prod(audio["upsampling_ratios"]) == 50  # EnCodec 32 kHz: 50 frames/s


def tiny() -> dict:
    model = copy.deepcopy(config("small"))
    model["decoder"].update(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, ffn_dim=64)
    model["text_encoder"].update(d_model=16, num_layers=1, num_heads=2, d_kv=8, d_ff=32)
    model["audio_encoder"].update(num_filters=4, hidden_size=8, num_lstm_layers=1)
    return model


def test_architecture_builds_through_the_loader_and_refuses_retraining():
    manifest = SimpleNamespace(table=pd.DataFrame({"description": ["solo piano", "string quartet"]}))
    load = model_loader(tiny(), manifest, Path("unused"), progress=False)
    generator = load()
    assert generator.num_codebooks == 4 and generator.codec.frame_rate == 50 and generator.num_layers == 2
    codes = generator.codec.encode(np.random.default_rng(0).standard_normal(32000).astype(np.float32) * 0.1)
    assert codes.shape == (4, 50) and codes.max() < 2048
    losses = generator.clip_losses(torch.from_numpy(codes)[None], ["solo piano"])
    assert losses.shape == (1,) and torch.isfinite(losses).all()
    assert load().identity() == generator.identity()  # random weights, from the config's seed
    with pytest.raises(ParameterError, match="cannot be retrained"):
        load(["t1"])


def test_forward_flops_by_hand():
    decoder = {"hidden_size": 4, "ffn_dim": 8, "num_hidden_layers": 2, "num_codebooks": 1, "vocab_size": 3}
    # per token and layer: 2·(4·16 + 2·16 + 2·4·8) matrix products + 2·2·4·(5 + 2) attention scores = 432
    flops = forward_flops(decoder, steps=5, text_tokens=2)
    assert flops == {"per_layer": 432 * 5, "total": (2 * 432 + 2 * 1 * 4 * 3) * 5, "layers": 2}
