"""The embedded codec: a tokeniser fitted to the corpus whose codes carry both pitch and sound.

Frames at 50 Hz (hop 640 at 32 kHz). Codebook 1 is k-means on chroma (what was played, as EnCodec's first
codebook carries most of the pitch); each of its clusters also holds the mean z-scored log-mel of its
frames. Codebooks 2..K are residual k-means on the z-scored log-mel left after the codebooks before them
(how it sounds). Decoding sums the mel centroids, maps the mel power spectrogram back to linear frequency with
the filterbank's pseudo-inverse (a fixed matrix per codec; negative powers clipped) and recovers phases with
Griffin-Lim. librosa's `mel_to_stft` solves a non-negative least-squares problem per frame instead: slightly
closer magnitudes, about 40 s per 12 s clip on one core against milliseconds (docs/generator.md#decoding).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import librosa
import numpy as np
from safetensors.numpy import load_file, save_file
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

from lumina.runs.errors import ParameterError

THREADS = {"blas": 1, "openmp": 2}
"""Thread counts of the codec's numerical libraries while it fits and encodes. k-means sums and BLAS products
change in the last bits with the thread count, and k-means amplifies that into other centroids; fixed counts
make the codec, its codes and everything trained on them the same under any thread environment (on one
machine: other CPUs and library versions still round differently)."""


@dataclass(frozen=True)
class EmbeddedCodecConfig:
    """Frame and codebook sizes of the embedded codec."""

    sample_rate: int = 32000
    hop_length: int = 640
    n_fft: int = 2048
    n_mels: int = 64
    num_codebooks: int = 4
    pitch_codebook_size: int = 64
    codebook_size: int = 256
    kmeans_iterations: int = 50
    seed: int = 0


class EmbeddedCodec:
    """Chroma + residual-mel k-means codec. Build with `EmbeddedCodec.fit`; codes are (K, T) int64."""

    kind = "embedded"

    def __init__(
        self,
        config: EmbeddedCodecConfig,
        chroma_centroids: np.ndarray,
        mel_centroids: list[np.ndarray],
        mel_mean: np.ndarray,
        mel_std: np.ndarray,
    ) -> None:
        """chroma_centroids: (C1, 12); mel_centroids: K arrays (C_k, n_mels); mel_mean, mel_std: (n_mels,)."""
        if len(mel_centroids) != config.num_codebooks:
            raise ParameterError(f"need {config.num_codebooks} mel codebooks, got {len(mel_centroids)}")
        self.config = config
        self.chroma_centroids = chroma_centroids.astype(np.float32)
        self.mel_centroids = [c.astype(np.float32) for c in mel_centroids]
        self.mel_mean = mel_mean.astype(np.float32)
        self.mel_std = mel_std.astype(np.float32)

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def frame_rate(self) -> float:
        return self.config.sample_rate / self.config.hop_length

    @property
    def num_codebooks(self) -> int:
        return self.config.num_codebooks

    @property
    def cardinality(self) -> int:
        return max(self.config.codebook_size, self.config.pitch_codebook_size)

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        """Valid codes per codebook (the pitch codebook is smaller than the LM's shared vocabulary)."""
        return (len(self.chroma_centroids), *(len(c) for c in self.mel_centroids[1:]))

    # -- features -------------------------------------------------------------------------------------
    def frames(self, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Audio (n,) → chroma (T, 12) and z-scored log-mel (T, n_mels), T = n // hop (at least 1)."""
        chroma, log_mel = _features(audio, self.config)
        return chroma, (log_mel - self.mel_mean) / self.mel_std

    # -- codec ----------------------------------------------------------------------------------------
    def encode(self, audio: np.ndarray) -> np.ndarray:
        with threadpool_limits(limits=THREADS):
            return self._encode(audio)

    def _encode(self, audio: np.ndarray) -> np.ndarray:
        chroma, mel = self.frames(audio)
        codes = np.empty((self.num_codebooks, chroma.shape[0]), dtype=np.int64)
        codes[0] = _nearest(chroma, self.chroma_centroids)
        residual = mel - self.mel_centroids[0][codes[0]]
        for k in range(1, self.num_codebooks):
            codes[k] = _nearest(residual, self.mel_centroids[k])
            residual = residual - self.mel_centroids[k][codes[k]]
        return codes

    def reconstruct_mel(self, codes: np.ndarray) -> np.ndarray:
        """Codes (K, T) → z-scored log-mel (T, n_mels): the sum of the codebooks' mel centroids."""
        self._check_codes(codes)
        return sum(self.mel_centroids[k][codes[k]] for k in range(self.num_codebooks))

    @property
    def decoder(self) -> str:
        """What `decode` does: mel inversion by the filterbank's pseudo-inverse, then 32 Griffin-Lim iterations
        from phases seeded with the codec's seed (part of the generated queries' key)."""
        return f"mel-pinv+griffinlim-32-seed{self.config.seed}"

    def mel_inverse(self) -> np.ndarray:
        """The mel filterbank's Moore-Penrose pseudo-inverse (1 + n_fft/2, n_mels), float64: mel power → STFT
        power, the least-squares solution of minimum norm (negative powers are clipped by `decode`)."""
        cfg = self.config
        basis = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, dtype=np.float64)
        return np.linalg.pinv(basis)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        cfg = self.config
        log_mel = self.reconstruct_mel(codes) * self.mel_std + self.mel_mean
        power = np.maximum(np.power(10.0, log_mel.T.astype(np.float64)) - 1e-6, 0.0)
        with threadpool_limits(limits=1, user_api="blas"):  # the same bits under any thread environment
            magnitude = np.sqrt(np.maximum(self.mel_inverse() @ power, 0.0))
        audio = librosa.griffinlim(  # its initial phases seeded (librosa's default: fresh entropy every call)
            magnitude, n_iter=32, hop_length=cfg.hop_length, random_state=cfg.seed, dtype=np.float32
        )
        n_samples = codes.shape[1] * cfg.hop_length
        audio = np.pad(audio, (0, max(0, n_samples - audio.size)))[:n_samples]
        peak = np.abs(audio).max()
        return (audio / peak * 0.5 if peak > 0 else audio).astype(np.float32)

    def _check_codes(self, codes: np.ndarray) -> None:
        if codes.ndim != 2 or codes.shape[0] != self.num_codebooks:
            raise ParameterError(f"codes must have shape ({self.num_codebooks}, T), got {codes.shape}")
        for k, size in enumerate(self.codebook_sizes):
            if codes[k].min() < 0 or codes[k].max() >= size:
                raise ParameterError(f"codebook {k} codes must lie in [0, {size}), got {codes[k].max()}")

    # -- fitting and storage --------------------------------------------------------------------------
    @classmethod
    def fit(cls, audios: Iterable[np.ndarray], config: EmbeddedCodecConfig | None = None) -> EmbeddedCodec:
        """Fit the codebooks on the frames of `audios` (each (n,) at config.sample_rate)."""
        with threadpool_limits(limits=THREADS):
            return cls._fit(list(audios), config or EmbeddedCodecConfig())

    @classmethod
    def _fit(cls, audios: list[np.ndarray], config: EmbeddedCodecConfig) -> EmbeddedCodec:
        feats = [_features(a, config) for a in audios]
        if not feats:
            raise ParameterError("cannot fit a codec on no audio")
        chroma = np.concatenate([f[0] for f in feats])
        log_mel = np.concatenate([f[1] for f in feats])
        mel_mean = log_mel.mean(axis=0)
        mel_std = log_mel.std(axis=0) + 1e-6
        mel = (log_mel - mel_mean) / mel_std
        pitch = _kmeans(chroma, config.pitch_codebook_size, config, offset=0)
        labels = _nearest(chroma, pitch)
        first = np.stack([
            mel[labels == c].mean(axis=0) if np.any(labels == c) else np.zeros(config.n_mels)
            for c in range(len(pitch))
        ])
        mel_centroids = [first]
        residual = mel - first[labels]
        for k in range(1, config.num_codebooks):
            centroids = _kmeans(residual, config.codebook_size, config, offset=k)
            residual = residual - centroids[_nearest(residual, centroids)]
            mel_centroids.append(centroids)
        return cls(config, pitch, mel_centroids, mel_mean, mel_std)

    def explained_variance(self, audios: Iterable[np.ndarray]) -> float:
        """Fraction of the z-scored log-mel variance the codes reconstruct, over `audios`."""
        errors, totals = 0.0, 0.0
        for audio in audios:
            mel = self.frames(audio)[1]
            errors += float(np.square(mel - self.reconstruct_mel(self.encode(audio))).sum())
            totals += float(np.square(mel).sum())
        return 1.0 - errors / totals

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {"chroma_centroids": self.chroma_centroids, "mel_mean": self.mel_mean, "mel_std": self.mel_std}
        arrays.update({f"mel_centroids_{k}": c for k, c in enumerate(self.mel_centroids)})
        return arrays

    def identity(self) -> str:
        digest = hashlib.sha256(json.dumps(asdict(self.config), sort_keys=True).encode())
        for name, array in sorted(self._arrays().items()):
            digest.update(name.encode() + np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()[:16]

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file(self._arrays(), str(path / "codebooks.safetensors"))
        meta = {"kind": self.kind, "config": asdict(self.config), "identity": self.identity()}
        (path / "codec.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, path: str | Path) -> EmbeddedCodec:
        path = Path(path)
        meta = json.loads((path / "codec.json").read_text())
        arrays = load_file(str(path / "codebooks.safetensors"))
        config = EmbeddedCodecConfig(**meta["config"])
        mel = [arrays[f"mel_centroids_{k}"] for k in range(config.num_codebooks)]
        return cls(config, arrays["chroma_centroids"], mel, arrays["mel_mean"], arrays["mel_std"])


def _features(audio: np.ndarray, config: EmbeddedCodecConfig) -> tuple[np.ndarray, np.ndarray]:
    """Audio (n,) → chroma (T, 12) and log10-mel (T, n_mels), T = max(1, n // hop)."""
    n_frames = max(1, audio.shape[0] // config.hop_length)
    with warnings.catch_warnings():  # clips shorter than the analysis windows are zero-padded, as intended
        warnings.filterwarnings("ignore", message="n_fft=.*is too large", category=UserWarning)
        chroma = librosa.feature.chroma_cqt(y=audio, sr=config.sample_rate, hop_length=config.hop_length)
        mel = librosa.feature.melspectrogram(
            y=audio, sr=config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length, n_mels=config.n_mels
        )
    return (
        chroma[:, :n_frames].T.astype(np.float32),
        np.log10(mel[:, :n_frames].T + 1e-6).astype(np.float32),
    )


def _nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (squared Euclidean) for each row of x (T, D)."""
    distances = (
        np.square(x).sum(axis=1, keepdims=True) - 2.0 * x @ centroids.T + np.square(centroids).sum(axis=1)
    )
    return distances.argmin(axis=1).astype(np.int64)


def _kmeans(x: np.ndarray, n_clusters: int, config: EmbeddedCodecConfig, offset: int) -> np.ndarray:
    """Centroids (n_clusters, D) of k-means on x (N, D); deterministic from config.seed + offset."""
    n_clusters = min(n_clusters, len(x))
    model = KMeans(
        n_clusters=n_clusters, n_init=1, max_iter=config.kmeans_iterations, random_state=config.seed + offset
    )
    return model.fit(x.astype(np.float64)).cluster_centers_.astype(np.float32)
