"""Audio embeddings for the embedding-retrieval baselines (docs/baselines.md#method-definitions): one encoder
interface, several encoders.

    encoder = load_encoder("madmom-deepchroma")                # or "clap" / "mert" with checkpoint=DIR
    vector = embed_waveform(encoder, audio, sample_rate)       # (dim,), time-averaged
    vectors = embed_files(encoder, {"t1": path}, cache_dir)    # (n, dim), cached per file
"""

from lumina.methods.retrieval.cache import embed_files
from lumina.methods.retrieval.encoder import (
    CHECKPOINT_ENCODERS,
    ENCODERS,
    Encoder,
    cosine_matrix,
    embed_waveform,
    load_encoder,
)

__all__ = [
    "CHECKPOINT_ENCODERS",
    "ENCODERS",
    "Encoder",
    "cosine_matrix",
    "embed_files",
    "embed_waveform",
    "load_encoder",
]
