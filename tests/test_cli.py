"""Command-line errors are one line naming the file and the fix, and come before anything heavy loads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lumina.runs.cli import EXIT_STATUS, one_line_errors
from lumina.runs.errors import AudioError

REPO = Path(__file__).resolve().parents[1]


def run_app(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})


def test_missing_audio_is_one_line_before_any_model_loads(tmp_path: Path) -> None:
    done = run_app("experiments.attribute", str(tmp_path / "nothing.wav"), f"paths.outputs={tmp_path}", cwd=tmp_path)
    assert done.returncode == EXIT_STATUS
    lines = done.stderr.strip().splitlines()
    assert lines == [f"error: experiments.attribute: {tmp_path / 'nothing.wav'}: no such file (check the path of "
                     "the audio to attribute)"]
    assert not (tmp_path / "cache").exists()  # no corpus was built, no model trained


def test_bad_override_is_one_line(tmp_path: Path) -> None:
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"RIFF")
    done = run_app("experiments.attribute", str(audio), "method.nonsense=1", cwd=tmp_path)
    assert done.returncode == EXIT_STATUS and len(done.stderr.strip().splitlines()) == 1
    assert "method.nonsense" in done.stderr and "Traceback" not in done.stderr


def test_the_decorator_keeps_bugs_loud(capsys: pytest.CaptureFixture) -> None:
    @one_line_errors("app")
    def fails(kind: type[Exception]) -> None:
        raise kind("x.wav", "too short") if kind is AudioError else kind("a bug")

    with pytest.raises(SystemExit) as stop:
        fails(AudioError)
    assert stop.value.code == EXIT_STATUS and capsys.readouterr().err == "error: app: x.wav: too short\n"
    with pytest.raises(KeyError):
        fails(KeyError)
