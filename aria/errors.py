"""Exception and warning types of `aria`: every message names the file or parameter and the problem."""

from __future__ import annotations


class AriaError(Exception):
    """Base class of every error `aria` raises on purpose."""


class ParameterError(AriaError, ValueError):
    """A bad parameter or array (shape, range, option name, non-finite values)."""


class ArtefactError(AriaError):
    """A score matrix, run record, manifest or audio file that cannot be used; the message names it."""


class AriaWarning(UserWarning):
    """A diagnostic that is undefined for this input (reported as NaN, never a crash)."""
