"""Audio input (lumina.data.audio): bad files raise AudioError naming the file and the fix; conversions are exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lumina.data.audio import chunk_bounds, load_audio, rms_dbfs, save_audio
from lumina.runs.errors import AudioError, ParameterError

SR = 32000


def sine(seconds: float, sample_rate: int, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    """A sine of shape (n,), float32."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def check_error(path: Path, match: str, **kwargs: object) -> AudioError:
    """Load `path`, expect an AudioError whose message names the file and matches `match`."""
    with pytest.raises(AudioError, match=match) as caught:
        load_audio(path, SR, **kwargs)
    assert str(path) in str(caught.value)
    assert caught.value.fix, "every audio error carries a fix"
    return caught.value


def test_mono_file_at_model_rate_is_returned_as_is(tmp_path: Path) -> None:
    audio = sine(1.0, SR)
    sf.write(tmp_path / "a.wav", audio, SR, subtype="FLOAT")
    loaded = load_audio(tmp_path / "a.wav", SR)
    assert loaded.dtype == np.float32 and loaded.shape == (SR,)
    np.testing.assert_array_equal(loaded, audio)


def test_stereo_is_averaged_to_mono(tmp_path: Path) -> None:
    left, right = sine(0.5, SR, 440.0, 0.6), sine(0.5, SR, 660.0, 0.2)
    sf.write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), SR, subtype="FLOAT")
    loaded = load_audio(tmp_path / "stereo.wav", SR)
    np.testing.assert_allclose(loaded, (left + right) / 2, atol=1e-7)


@pytest.mark.parametrize("rate", [44100, 16000, 48000])
def test_other_rates_are_resampled_to_the_right_length(tmp_path: Path, rate: int) -> None:
    sf.write(tmp_path / "x.flac", sine(1.5, rate, 440.0), rate)
    loaded = load_audio(tmp_path / "x.flac", SR)
    assert loaded.shape == (round(1.5 * SR),)
    # still a 440 Hz tone: the spectrum peaks at 440 Hz (1 Hz bins over the middle second)
    spectrum = np.abs(np.fft.rfft(loaded[SR // 4: SR // 4 + SR]))
    assert np.argmax(spectrum) == 440
    assert rms_dbfs(loaded) == pytest.approx(rms_dbfs(sine(1.0, SR)), abs=0.1)


def test_stereo_44k_file_is_converted(tmp_path: Path) -> None:
    stereo = np.stack([sine(2.0, 44100), sine(2.0, 44100)], axis=1)
    sf.write(tmp_path / "s.wav", stereo, 44100)
    assert load_audio(tmp_path / "s.wav", SR).shape == (2 * SR,)


def test_compressed_formats(tmp_path: Path) -> None:
    stereo = np.stack([sine(1.0, 44100), sine(1.0, 44100)], axis=1)
    sf.write(tmp_path / "x.mp3", stereo, 44100, format="MP3")
    sf.write(tmp_path / "x.ogg", stereo, 44100, format="OGG", subtype="VORBIS")
    for name in ("x.mp3", "x.ogg"):
        loaded = load_audio(tmp_path / name, SR)
        assert abs(loaded.shape[0] - SR) <= 0.06 * SR, name  # encoder padding differs by format
        assert rms_dbfs(loaded) == pytest.approx(rms_dbfs(sine(1.0, SR)), abs=1.0), name


def test_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.wav"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    check_error(path, "cannot decode")


def test_truncated_wav(tmp_path: Path) -> None:
    sf.write(tmp_path / "full.wav", sine(1.0, SR), SR)
    path = tmp_path / "truncated.wav"
    path.write_bytes((tmp_path / "full.wav").read_bytes()[:30])
    check_error(path, "cannot decode")


def test_unsupported_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp3"
    path.write_text("these are my notes, not a recording\n" * 20)
    check_error(path, "not an audio file: it holds text")


def test_missing_file(tmp_path: Path) -> None:
    check_error(tmp_path / "nowhere.wav", "not found")


def test_silent_file(tmp_path: Path) -> None:
    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros(SR, dtype=np.float32), SR)
    check_error(path, "silent")
    np.testing.assert_array_equal(load_audio(path, SR, allow_silent=True), np.zeros(SR, dtype=np.float32))


def test_file_shorter_than_one_frame(tmp_path: Path) -> None:
    path = tmp_path / "blip.wav"
    sf.write(path, sine(0.005, SR), SR)  # 5 ms < one 50 Hz frame (20 ms)
    check_error(path, "too short")
    sf.write(tmp_path / "frame.wav", sine(0.02, SR), SR)  # exactly one frame is enough
    assert load_audio(tmp_path / "frame.wav", SR).shape == (640,)


def test_short_file_at_another_rate(tmp_path: Path) -> None:
    path = tmp_path / "blip.wav"
    sf.write(path, sine(0.01, 44100), 44100)
    check_error(path, "too short")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), SR)
    check_error(path, "no samples")


def test_non_finite_samples(tmp_path: Path) -> None:
    audio = sine(0.5, SR)
    audio[100] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, audio, SR, subtype="FLOAT")
    check_error(path, "NaN")


def test_save_audio_clips_and_writes_16_bit(tmp_path: Path) -> None:
    audio = np.array([0.0, 0.5, 1.5, -2.0, -0.25])
    save_audio(tmp_path / "out" / "x.wav", audio, SR)
    info = sf.info(str(tmp_path / "out" / "x.wav"))
    assert info.subtype == "PCM_16" and info.samplerate == SR
    written, _ = sf.read(tmp_path / "out" / "x.wav")
    np.testing.assert_allclose(written, np.clip(audio, -1, 1), atol=1 / 32767)


def test_rms_dbfs() -> None:
    assert rms_dbfs(np.ones(100)) == pytest.approx(0.0)
    assert rms_dbfs(sine(1.0, SR, amp=1.0)) == pytest.approx(-3.0103, abs=1e-3)
    assert rms_dbfs(np.zeros(10)) == float("-inf")
    assert rms_dbfs(np.zeros(0)) == float("-inf")


def test_chunk_bounds() -> None:
    assert chunk_bounds(25 * SR, SR, 10.0, 1.0) == [(0, 10 * SR), (10 * SR, 20 * SR), (20 * SR, 25 * SR)]
    assert chunk_bounds(int(20.5 * SR), SR, 10.0, 1.0) == [(0, 10 * SR), (10 * SR, 20 * SR)]
    assert chunk_bounds(SR // 2, SR, 10.0, 1.0) == [(0, SR // 2)]
    assert chunk_bounds(0, SR, 10.0, 1.0) == []
    with pytest.raises(ParameterError):
        chunk_bounds(SR, SR, 0.0, 1.0)
