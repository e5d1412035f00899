"""Every benchmark command written in the docs, the README and the benchmarks' own docstrings parses as written:
its flags by the benchmark's own parser (`arguments()`), its Hydra overrides against the configuration it composes
(`configuration(overrides)`)."""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMAND = re.compile(r"python -m (benchmarks\.\w+)([^`\n|#)]*)")


def documented_commands() -> list[tuple[str, str, list[str]]]:
    """(where, module, arguments) of every `python -m benchmarks.NAME ...` in the docs, README and benchmarks."""
    found = []
    for path in sorted([*ROOT.glob("docs/*.md"), ROOT / "README.md", *ROOT.glob("benchmarks/*.py")]):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for module, rest in COMMAND.findall(line):
                argv = shlex.split(rest.strip(" ,.;"))
                if "--help" not in argv:
                    found.append((f"{path.relative_to(ROOT)}:{number}", module, argv))
    return found


COMMANDS = documented_commands()


def test_the_docs_name_every_benchmark():
    named = {module for _, module, _ in COMMANDS}
    modules = {f"benchmarks.{p.stem}" for p in (ROOT / "benchmarks").glob("*.py")
               if "def main(" in p.read_text()}
    assert modules <= named, f"benchmarks no document runs: {sorted(modules - named)}"


@pytest.mark.parametrize(("where", "module", "argv"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_a_documented_benchmark_command_parses(where, module, argv):
    benchmark = importlib.import_module(module)
    args = benchmark.arguments().parse_intermixed_args(argv)  # SystemExit (argparse's error) fails the test
    overrides = getattr(args, "overrides", [])
    if overrides and hasattr(benchmark, "configuration"):
        benchmark.configuration(overrides)  # Hydra raises on a key the configuration lacks
