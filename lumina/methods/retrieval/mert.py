"""MERT (and other HuBERT/wav2vec2-style) frame embeddings from a local checkpoint directory.

MERT-v1 checkpoints (m-a-p/MERT-v1-95M, -330M) ship their model class as Python files in the directory
(`config.json` → `auto_map`), so loading them runs that code. It runs only when the caller opts in with
`trust_remote_code=True`; otherwise loading is refused. Checkpoints of an architecture transformers knows
(MERT-v0 is a plain HuBERT) load without remote code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lumina.methods.retrieval.checkpoint import (
    checkpoint_dir,
    checkpoint_sha256,
    model_card_licence,
    read_config,
    remote_code,
    weights_file,
)
from lumina.methods.retrieval.encoder import Encoder
from lumina.runs.errors import CheckpointError, ParameterError


def load_mert(
    checkpoint: str | Path,
    *,
    trust_remote_code: bool = False,
    layer: int = -1,
    chunk_s: float = 5.0,
    min_chunk_s: float = 1.0,
) -> Encoder:
    """The encoder of `checkpoint`, giving (frames, hidden) per chunk.

    layer: -1 = the model's output (`last_hidden_state`, the paper's choice); k in 1..num_hidden_layers = the
    output of transformer layer k, captured with a forward hook (independent of how the model's own code
    returns hidden states).
    """
    import torch
    from transformers import AutoFeatureExtractor, AutoModel

    folder = checkpoint_dir(checkpoint, needs=("config.json", "preprocessor_config.json"))
    config = read_config(folder)
    auto_map = remote_code(config)
    if auto_map and not trust_remote_code:
        raise CheckpointError(
            f"{folder}: this checkpoint's model class is Python code in the directory (config.json auto_map: "
            f"{auto_map}); loading it would run that code. Read the .py files, then opt in with "
            "method.trust_remote_code=true (docs/embeddings.md)"
        )
    weights = weights_file(folder)
    model = AutoModel.from_pretrained(folder, local_files_only=True, trust_remote_code=bool(auto_map)).eval()
    extractor = AutoFeatureExtractor.from_pretrained(folder, local_files_only=True,
                                                     trust_remote_code=bool(auto_map))
    rate = int(extractor.sampling_rate)
    layers = getattr(getattr(model, "encoder", None), "layers", None)
    if layers is None:
        raise CheckpointError(f"{folder}: {type(model).__name__} has no `encoder.layers`; not a HuBERT/wav2vec2-"
                              "style audio encoder")
    if layer != -1 and not 1 <= layer <= len(layers):
        raise ParameterError(f"layer must be -1 (the output) or 1..{len(layers)}, got {layer}")
    hidden = int(model.config.hidden_size)

    def frames(chunk: np.ndarray) -> np.ndarray:
        inputs = extractor(chunk, sampling_rate=rate, return_tensors="pt")
        captured: list[torch.Tensor] = []
        hook = None
        if layer != -1:
            hook = layers[layer - 1].register_forward_hook(
                lambda _module, _args, out: captured.append(out[0] if isinstance(out, tuple) else out)
            )
        try:
            with torch.inference_mode():
                out = model(inputs["input_values"])
        finally:
            if hook is not None:
                hook.remove()
        states = out.last_hidden_state if layer == -1 else captured[0]
        return states[0].float().numpy()

    identity = {
        "encoder": "mert",
        "model_class": type(model).__name__,
        "model_type": config.get("model_type"),
        "remote_code": auto_map,
        "checkpoint_sha256": checkpoint_sha256(folder),
        "weights": weights,
        "model_licence": model_card_licence(folder),
        "sample_rate": rate,
        "dim": hidden,
        "layer": int(layer),
        "chunk_s": float(chunk_s),
        "min_chunk_s": float(min_chunk_s),
        "pooling": "mean over frames; chunk-length-weighted mean over chunks",
    }
    return Encoder(
        name=f"mert-{folder.name}", sample_rate=rate, dim=hidden, chunk_s=float(chunk_s),
        min_chunk_s=float(min_chunk_s), frames=frames, identity=identity, kind="mert", checkpoint=str(folder),
    )
