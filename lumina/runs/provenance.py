"""What every artefact records about how it was made, stamped by the function that writes it
(docs/formats.md#provenance).

One typed value, `Provenance`: the command, the package version, the UTC time and the machine at write time, the
configuration the artefact was made with, the upstream artefacts it was made from (name → hash), and sections
its producers add under their own keys (a method's fields under `method`). `stamp(...)` makes one at the moment
of writing; `Provenance.record()` is what goes into the file. A section never overwrites the run's fields.

Paths in provenance are relative to the project, the working directory the apps run in (`relative`).
"""

from __future__ import annotations

import functools
import os
import platform
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from execution.kernels import cpu_flags, kernels_in_use
from lumina import __version__
from lumina.runs.errors import ParameterError

PROJECT = Path(__file__).resolve().parents[2]
"""The project's root: where the apps run and what recorded paths are relative to."""
RUN_FIELDS = ("package", "version", "command", "created_utc", "machine", "config", "upstream")


def command_line(app: str | None = None, argv: list[str] | None = None) -> str:
    """The command that is running as a user would type it (`python -m experiments.run +method=lumina`); `app`
    names the module when the caller knows it better than `sys.argv[0]` (entry points called from tests)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if app:
        return " ".join(["python -m", app, *args])
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    if script.suffix == ".py" and script.resolve().is_relative_to(PROJECT):
        module = ".".join(script.resolve().relative_to(PROJECT).with_suffix("").parts)
        return " ".join(["python -m", module, *args])
    return " ".join([str(script.name), *args])


def relative(path: str | Path) -> str:
    """`path` relative to the working directory (the project, where the apps run) when below it, else as given:
    a committed artefact never names the absolute folder of the machine that made it."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(Path.cwd().resolve())) if resolved.is_relative_to(Path.cwd().resolve()) \
        else str(path)


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
    return {"processor": cpu, "vector": vector, "kernels": kernels_in_use(), "cores": os.cpu_count(),
            **_versions()}


@functools.cache
def _versions() -> dict[str, str]:
    """The installed versions of the numeric libraries, read once per process (each read scans the installed
    packages' metadata: most of a stamp's time, and shard tasks stamp every commit)."""
    return {name: metadata.version(name) for name in ("numpy", "scipy", "torch")}


@dataclass(frozen=True)
class Provenance:
    """How one artefact was made.

    context: what the artefact is about, flat in the record (manifest, catalogue key, seed, data, model, …);
    config: the configuration it was made with; upstream: name → hash of the artefacts it was made from;
    sections: a producer's own fields under its own key (`method`, `database`, …).
    """

    command: str
    created_utc: str
    machine: dict
    version: str = __version__
    context: Mapping[str, Any] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    upstream: Mapping[str, str] = field(default_factory=dict)
    sections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        clash = sorted(set(self.context) & set(RUN_FIELDS)) + sorted(set(self.sections) & (set(RUN_FIELDS)
                                                                                          | set(self.context)))
        if clash:
            raise ParameterError(f"provenance fields {clash} are the run's own; a producer adds its fields in a "
                                 "section of its own")

    def with_section(self, name: str, fields: Mapping[str, Any]) -> Provenance:
        """A copy with `fields` under `name` (merged into that section when it exists)."""
        sections = {**self.sections, name: {**self.sections.get(name, {}), **fields}}
        return Provenance(self.command, self.created_utc, self.machine, self.version, self.context, self.config,
                          self.upstream, sections)

    def with_upstream(self, **hashes: str) -> Provenance:
        """A copy with more upstream artefacts (name → hash)."""
        return Provenance(self.command, self.created_utc, self.machine, self.version, self.context, self.config,
                          {**self.upstream, **hashes}, self.sections)

    def restamped(self) -> Provenance:
        """A copy with the time and the machine of now: what the function writing the artefact calls."""
        return Provenance(command_line() if not self.command else self.command, utc_now(), machine(), self.version,
                          self.context, self.config, self.upstream, self.sections)

    def record(self) -> dict:
        """The dictionary written into the artefact: the run fields, the context flat, the sections by name."""
        return {"package": "lumina-aria", "version": self.version, "command": self.command,
                "created_utc": self.created_utc, "machine": self.machine, **self.context,
                "config": dict(self.config), "upstream": dict(self.upstream),
                **{name: dict(fields) for name, fields in self.sections.items()}}


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def stamp(*, command: str | None = None, config: Mapping[str, Any] | None = None,
          upstream: Mapping[str, str] | None = None, **context: Any) -> Provenance:
    """The provenance of an artefact being written now: this command (or `command`), version, time, machine."""
    return Provenance(command or command_line(), utc_now(), machine(), context=context, config=config or {},
                      upstream=upstream or {})
