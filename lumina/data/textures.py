"""Out-of-domain audio made here: noise, tones, speech and environment-like textures that no training song
influenced (docs/abstention.md#negatives). Each texture is a function of (length in samples, sample rate, rng)
returning mono float64 audio; the corpus normalises its level like every other track.

Speech is synthesised by `espeak-ng` (a Debian package; `make system` installs it); everything else is numpy.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from scipy import signal

from lumina.runs.errors import CorpusError

SENTENCES = (
    "The committee will meet again on Thursday to review the budget for the coming year.",
    "Turn left at the second traffic light and the station is on your right.",
    "Please keep your ticket until the end of the journey.",
    "The weather tomorrow will be cloudy with a chance of rain in the afternoon.",
)
"""Sentences the speech texture reads (written for this project)."""


def _band_noise(n: int, sr: int, low: float, high: float, rng: np.random.Generator) -> np.ndarray:
    sos = signal.butter(4, [low, high], btype="bandpass", fs=sr, output="sos")
    return signal.sosfilt(sos, rng.standard_normal(n))


def white_noise(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(n)


def pink_noise(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """1/f noise: white noise shaped in the frequency domain by 1/sqrt(f)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / sr)
    spectrum[1:] /= np.sqrt(f[1:])
    spectrum[0] = 0.0
    return np.fft.irfft(spectrum, n)


def sine_tones(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Steady sine tones at random (non-tempered) frequencies, changing every 1.5 s."""
    t = np.arange(n) / sr
    out = np.zeros(n)
    step = int(1.5 * sr)
    for start in range(0, n, step):
        stop = min(n, start + step)
        for f in rng.uniform(150.0, 2000.0, size=2):
            out[start:stop] += np.sin(2 * np.pi * f * t[start:stop])
    return out


def siren(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A two-tone wailing siren (frequency swept by a slow sine) over low engine rumble."""
    t = np.arange(n) / sr
    rate = rng.uniform(0.2, 0.5)
    freq = 700.0 + 300.0 * np.sin(2 * np.pi * rate * t)
    phase = 2 * np.pi * np.cumsum(freq) / sr
    return np.sign(np.sin(phase)) * 0.5 + 0.3 * engine(n, sr, rng)


def engine(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Low harmonic buzz (a firing frequency with its harmonics) with slow amplitude wobble and noise."""
    t = np.arange(n) / sr
    f0 = rng.uniform(30.0, 60.0)
    buzz = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 12))
    wobble = 1.0 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.5, 2.0) * t)
    return buzz * wobble + 0.3 * _band_noise(n, sr, 50.0, 800.0, rng)


def rain(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Dense random clicks (drops) on broadband hiss."""
    drops = np.zeros(n)
    positions = rng.integers(0, n, size=int(n / sr * 400))
    drops[positions] = rng.uniform(-1.0, 1.0, size=positions.shape[0])
    decay = np.exp(-np.arange(int(0.004 * sr)) / (0.001 * sr))
    return signal.fftconvolve(drops, decay)[:n] + 0.2 * _band_noise(n, sr, 2000.0, 10000.0, rng)


def wind(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Band-limited noise whose level gusts slowly."""
    t = np.arange(n) / sr
    gust = 0.6 + 0.4 * np.sin(2 * np.pi * 0.15 * t + rng.uniform(0, 2 * np.pi))
    return _band_noise(n, sr, 100.0, 1200.0, rng) * gust


def birds(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Short fast frequency-modulated chirps (2-8 kHz) at random times, over faint water-like noise."""
    out = 0.05 * _band_noise(n, sr, 200.0, 3000.0, rng)
    for start in rng.integers(0, max(1, n - int(0.2 * sr)), size=int(n / sr * 4)):
        length = int(rng.uniform(0.05, 0.2) * sr)
        tt = np.arange(length) / sr
        f = rng.uniform(2000, 5000) + rng.uniform(1000, 3000) * np.sin(2 * np.pi * rng.uniform(10, 40) * tt)
        chirp = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.hanning(length)
        out[start:start + length] += chirp[: n - start]
    return out


def speech(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Sentences read by espeak-ng (voice and rate drawn from `rng`), looped to length."""
    executable = shutil.which("espeak-ng")
    if executable is None:
        raise CorpusError("espeak-ng not found on PATH; it speaks the corpus's speech queries: run `make system` "
                          "or `apt-get install espeak-ng`, or drop `speech` from data.out_of_domain_textures")
    text = " ".join(SENTENCES[i] for i in rng.permutation(len(SENTENCES)))
    voice = str(rng.choice(["en", "en-us", "en-gb-x-rp"]))
    rate = int(rng.integers(130, 180))
    with tempfile.TemporaryDirectory(prefix="lumina-speech-") as tmp:
        path = Path(tmp) / "speech.wav"
        done = subprocess.run([executable, "-v", voice, "-s", str(rate), "-w", str(path), text],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0 or not path.exists():
            raise CorpusError(f"espeak-ng failed (exit {done.returncode}): {done.stderr.strip()[-300:]}")
        audio, rate_in = sf.read(str(path), dtype="float64")
    audio = soxr.resample(audio if audio.ndim == 1 else audio.mean(axis=1), rate_in, sr)
    return np.resize(audio, n)


TEXTURES: dict[str, Callable[[int, int, np.random.Generator], np.ndarray]] = {
    "white_noise": white_noise, "pink_noise": pink_noise, "sine_tones": sine_tones, "speech": speech,
    "siren": siren, "engine": engine, "rain": rain, "wind": wind, "birds": birds,
}
"""Out-of-domain textures by name (the corpus's `out_of_domain_textures` cycles over them)."""


def synthesize(texture: str, length: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """(length,) float64 audio of one texture; unknown names raise CorpusError listing the known ones."""
    if texture not in TEXTURES:
        raise CorpusError(f"unknown out-of-domain texture {texture!r}; known: {', '.join(TEXTURES)}")
    return TEXTURES[texture](length, sample_rate, rng)
