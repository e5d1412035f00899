"""What every command-line app shares: problems the harness raises on purpose end the app with one line naming the
file and the fix (`error: <app>: <message>`, exit status 2), never a Python or Hydra traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

from aria.errors import AriaError
from lumina.runs.errors import LuminaError

F = TypeVar("F", bound=Callable)

EXIT_STATUS = 2


def one_line_errors(app: str) -> Callable[[F], F]:
    """Decorate an app's entry point: LuminaError and AriaError become one line on stderr and exit status 2;
    anything else (a bug) keeps its traceback."""

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapped(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except (LuminaError, AriaError) as err:
                print(f"error: {app}: {err}", file=sys.stderr)
                sys.exit(EXIT_STATUS)

        return wrapped  # type: ignore[return-value]

    return decorate
