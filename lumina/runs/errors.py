"""The harness's exception types: one per kind of problem, each message naming the file and the fix."""

from __future__ import annotations


class LuminaError(Exception):
    """Base class of every error the harness raises on purpose."""


class ParameterError(LuminaError, ValueError):
    """A bad parameter value (shape, range, option name)."""


class AudioError(LuminaError):
    """An audio file that cannot be used: corrupt, unsupported, silent or too short."""

    def __init__(self, path: object, problem: str, fix: str = "") -> None:
        self.path = str(path)
        self.problem = problem
        self.fix = fix
        message = f"{self.path}: {problem}"
        if fix:
            message += f" ({fix})"
        super().__init__(message)


class CorpusError(LuminaError):
    """An empty or inconsistent corpus, or a missing tool needed to build one."""


class CheckpointError(LuminaError):
    """A checkpoint directory that is missing, incomplete or unsafe to load."""


class GradientError(LuminaError):
    """A gradient that is not finite (NaN or inf): the audio or the model is broken, not the method."""
