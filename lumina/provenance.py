"""What every output records about how it was made: the command, the package version, the time and the machine."""

from __future__ import annotations

import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

from execution.kernels import cpu_flags, kernels_in_use
from lumina import __version__


def command_line() -> str:
    """The command that is running, as a user would type it (`python -m experiments.run +method=lumina`)."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    root = Path(__file__).resolve().parent.parent
    if script.suffix == ".py" and script.resolve().is_relative_to(root):
        module = ".".join(script.resolve().relative_to(root).with_suffix("").parts)
        return " ".join(["python -m", module, *sys.argv[1:]])
    return " ".join(sys.argv)


def machine() -> dict:
    """What the bits of a CPU result depend on beyond the code and the seeds: the CPU model, its widest vector
    extension, the kernels the numeric libraries picked (`kernels`: pinned to AVX2 unless
    LUMINA_NATIVE_KERNELS=1, execution/kernels.py) and their versions."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [v for k, _, v in (line.partition(":") for line in cpuinfo.read_text().splitlines())
                 if k.strip() == "model name"]
        cpu = names[0].strip() if names else cpu
    flags = cpu_flags()
    vector = next((f for f in ("avx512f", "avx2", "avx", "sse4_2", "asimd") if f in flags), "")
    versions = {name: metadata.version(name) for name in ("numpy", "scipy", "torch")}
    return {"processor": cpu, "vector": vector, "kernels": kernels_in_use(), "cores": os.cpu_count(), **versions}


def provenance(**extra: object) -> dict:
    """Package version, command line, UTC time and the machine (`machine`), plus whatever the caller adds (model
    hash, seeds, …)."""
    return {
        "package": "lumina-aria",
        "version": __version__,
        "command": command_line(),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        **extra,
    }
