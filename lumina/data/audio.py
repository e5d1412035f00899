"""Audio input: load, check, convert to the model's rate and mono, cut into chunks.

Plain functions on 1-D float32 numpy arrays, in the style of librosa.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from execution.stdio import native_stderr_silenced
from lumina.runs.errors import AudioError, ParameterError

SILENCE_DBFS = -90.0
"""A file whose overall RMS is below this level is treated as silent."""

NOT_AUDIO = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image",
             b"%PDF": "a PDF document", b"PK\x03\x04": "a ZIP archive (or an office document)",
             b"\x1f\x8b": "a gzip archive", b"<!DOCTYPE": "a web page", b"<html": "a web page"}
"""Leading bytes of common files that are not audio libsndfile reads, and what to call them in an error."""

DECODE_FIX = "convert it to WAV or FLAC (e.g. `ffmpeg -i FILE out.flac`), or remove it"


def content_kind(head: bytes) -> str | None:
    """What a file's first bytes `head` say it is when it is plainly not audio: a name from `NOT_AUDIO`,
    "text" (printable UTF-8), "an empty file"; None when they could be audio."""
    if not head:
        return "an empty file (0 bytes)"
    for magic, kind in NOT_AUDIO.items():
        if head.startswith(magic):
            return kind
    if head[4:8] == b"ftyp":
        return "an MP4/M4A container (AAC or ALAC, which libsndfile does not read)"
    text = head.decode("utf-8", errors="replace").rstrip("\ufffd")  # a character cut at the end is still text
    return "text" if text and all(c.isprintable() or c in "\t\r\n" for c in text) else None


def _mpeg_decoder_may_run(path: Path, head: bytes) -> bool:
    """libsndfile hands a file to libmpg123 (which prints to the terminal) by its `.mp3` name or an MPEG header."""
    return path.suffix.lower() in (".mp3", ".mp2", ".mpga") or head.startswith(b"ID3") or (
        len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


def decode_error(path: Path, head: bytes, err: Exception) -> AudioError:
    """The `AudioError` for a file libsndfile could not open: what the file holds when its first bytes say
    (docs/corpus.md#bad-files), else that the data is not audio libsndfile reads or is damaged."""
    kind = content_kind(head)
    if kind is not None:
        return AudioError(path, f"not an audio file: it holds {kind}", "remove it, or replace it with the recording")
    reason = str(err).split(": ", 1)[-1].strip().rstrip(".")
    detail = "" if "possibly a pipe" in reason or "does not exist" in reason else f" (libsndfile: {reason})"
    return AudioError(path, "cannot decode: not audio that libsndfile (WAV, FLAC, OGG, AIFF, …) or its MP3 "
                      f"decoder reads, or the file is damaged{detail}", DECODE_FIX)


def read_file(path: str | Path, *, info_only: bool = False) -> tuple[np.ndarray | None, int]:
    """Decode an audio file: samples (n, channels) float32 (None with `info_only`) and its sample rate.

    The MP3 decoder's notes to the terminal are silenced (`execution.stdio`); a file libsndfile cannot open
    raises the `AudioError` of `decode_error`.
    """
    path = Path(path)
    with path.open("rb") as handle:
        head = handle.read(4096)
    quiet = native_stderr_silenced() if _mpeg_decoder_may_run(path, head) else contextlib.nullcontext()
    try:
        with quiet:
            if info_only:
                return None, int(sf.info(str(path)).samplerate)
            data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise decode_error(path, head, err) from err
    return data, int(sr)


def rms_dbfs(audio: np.ndarray) -> float:
    """RMS level of `audio` (shape (n,)) in dB relative to full scale; -inf for digital silence."""
    if audio.size == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    return 20.0 * np.log10(rms) if rms > 0 else float("-inf")


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample (n,) audio with soxr (deterministic, high quality); returns float32."""
    if orig_sr == target_sr:
        return audio.astype(np.float32, copy=False)
    return soxr.resample(audio.astype(np.float32, copy=False), orig_sr, target_sr, quality="HQ").astype(np.float32)


def load_audio(
    path: str | Path,
    sample_rate: int,
    *,
    min_duration_s: float = 0.02,
    allow_silent: bool = False,
) -> np.ndarray:
    """Read an audio file as mono float32 at `sample_rate`, shape (n,).

    Stereo is averaged to mono and other rates are resampled. Raises `AudioError` naming the file for a
    missing, corrupt or unsupported file, non-finite samples, a file shorter than `min_duration_s`
    (default: one 50 Hz codec frame) and, unless `allow_silent`, a silent file.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file not found", "check the path or the manifest's `path` column")
    data, sr = read_file(path)
    if data.shape[0] == 0:
        raise AudioError(path, "the file holds no samples", "remove it or replace it with a real recording")
    if not np.isfinite(data).all():
        raise AudioError(path, "the file holds NaN or infinite samples", "re-export it")
    audio = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    audio = resample(audio, int(sr), sample_rate)
    duration = audio.shape[0] / sample_rate
    if duration < min_duration_s:
        raise AudioError(
            path, f"too short: {duration * 1000:.1f} ms, less than {min_duration_s * 1000:.0f} ms",
            "the model needs at least one codec frame",
        )
    if not allow_silent and rms_dbfs(audio) < SILENCE_DBFS:
        raise AudioError(path, "silent (RMS below -90 dBFS)", "remove it from the corpus; it carries no music")
    return np.ascontiguousarray(audio, dtype=np.float32)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (hex): the identity of an audio file, wherever it lies."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_audio(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write (n,) float audio as 16-bit PCM WAV, clipping to [-1, 1]."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16")


def chunk_bounds(n_samples: int, sample_rate: int, chunk_s: float, min_chunk_s: float) -> list[tuple[int, int]]:
    """Sample ranges [start, stop) of consecutive `chunk_s` windows.

    A shorter tail is kept when it lasts at least `min_chunk_s`; a clip shorter than `min_chunk_s`
    yields one chunk with all of it.
    """
    if chunk_s <= 0 or min_chunk_s < 0:
        raise ParameterError(f"chunk_s must be > 0 and min_chunk_s >= 0, got {chunk_s}, {min_chunk_s}")
    size = int(round(chunk_s * sample_rate))
    min_size = int(round(min_chunk_s * sample_rate))
    bounds = [
        (start, min(start + size, n_samples))
        for start in range(0, n_samples, size)
        if min(start + size, n_samples) - start >= min_size
    ]
    if not bounds and n_samples > 0:
        bounds = [(0, n_samples)]
    return bounds
