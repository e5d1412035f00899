"""Silencing what C libraries print: libmpg123 (libsndfile's MP3 decoder) writes notes such as "Illegal
Audio-MPEG-Header" or "Xing stream size off" straight to file descriptor 2, past Python's `sys.stderr`."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator

_LOCK = threading.Lock()
_state = {"depth": 0, "saved": -1}


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at the null device while the block runs, for every thread of the process.

    Nested and concurrent uses share one redirection (the last to leave restores the terminal). Python's own
    writes to stderr during the block (a progress bar redrawn by another thread) are lost too, so keep the
    block to the native call that chatters.
    """
    with _LOCK:
        if _state["depth"] == 0:
            sys.stderr.flush()
            _state["saved"] = os.dup(2)
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 2)
            os.close(null)
        _state["depth"] += 1
    try:
        yield
    finally:
        with _LOCK:
            _state["depth"] -= 1
            if _state["depth"] == 0:
                os.dup2(_state["saved"], 2)
                os.close(_state["saved"])
