"""Attribution methods behind one small interface, and the registry keyed by the Hydra `method` name.

A method is a function `run(ctx: RunContext) -> list[ScoreMatrix | NotConfigured]`. The registry maps the
name to the function's import path, so a method's heavy dependencies load only when it runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from lumina.methods.base import NotConfigured, RunContext
from lumina.runs.errors import ParameterError
from lumina.runs.score_matrix import ScoreMatrix, write_run

METHODS: dict[str, str] = {
    "lumina": "lumina.methods.lumina.method:run",
    "clap": "lumina.methods.embedding:run_clap",
    "mert": "lumina.methods.embedding:run_mert",
    "embedding": "lumina.methods.embedding:run_embedding",
    "trak": "lumina.methods.gradient:run_trak",
    "gradcos": "lumina.methods.gradient:run_gradcos",
    "graddot": "lumina.methods.gradient:run_graddot",
    "tracin": "lumina.methods.gradient:run_tracin",
    "logra": "lumina.methods.gradient:run_logra",
    "factgrass": "lumina.methods.gradient:run_factgrass",
    "unlearning": "lumina.methods.gradient:run_unlearning",
    "gradients": "lumina.methods.gradient:run_gradients",
    "symbolic": "lumina.methods.symbolic_retrieval:run",
}
"""Method name → `module:function`. Only methods that really exist are listed."""


def get_method(name: str) -> Callable[[RunContext], list]:
    """The `run` function of a registered method."""
    if name not in METHODS:
        raise ParameterError(f"unknown method {name!r}; registered: {sorted(METHODS)}")
    module, function = METHODS[name].split(":")
    return getattr(importlib.import_module(module), function)


__all__ = ["METHODS", "NotConfigured", "RunContext", "get_method", "write_results"]


def write_results(results: list[ScoreMatrix | NotConfigured], ctx: RunContext, *, seconds: float) -> list[Path]:
    """Write each setting's `scores.h5` + `run.json` (or a `run.json` saying why it is not configured) into
    `<runs>/<experiment>/<method>/<setting>/` (the result's own method: `gradients` writes each method it derives
    where that method's own run writes), stamped with the run's provenance at write time (the method's own
    fields under `method`, the model under attribution among the upstream artefacts when it was loaded);
    returns the folders."""
    provenance = ctx.provenance
    if "generator" in ctx.__dict__:  # loaded by the method (cached_property): the model the scores came from
        provenance = provenance.with_upstream(model=ctx.generator.identity())
    folders = []
    for result in results:
        folder = ctx.layout.run_folder(result.method, result.setting)
        if isinstance(result, NotConfigured):
            write_run(folder, {"method": result.method, "setting": result.setting, "status": "not configured",
                               "reason": result.reason}, provenance)
        else:
            write_run(folder, {"method": result.method, "setting": result.setting, "seconds": seconds}, provenance,
                      result)
        folders.append(folder)
    return folders
