"""Corpus builders: `build_corpus` turns a `data` config into a cached corpus (manifest.csv + audio) and
returns its `Manifest`. Builders: `music21` (the embedded default) and `folder` (a user's catalogue)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from experiments.corpus import embedded, folder
from experiments.corpus.common import plain_config, settings_key
from lumina.errors import ParameterError
from lumina.manifest import Manifest

BUILDERS = {"music21": embedded, "folder": folder}
"""Builder name → module with `identity(cfg) -> dict` (cache-key extras) and `build(cfg, out_dir, *, threads,
progress) -> Manifest`."""


def corpus_dir(data_cfg: Mapping, cache_root: str | Path) -> Path:
    """Where a data config's corpus lives: `cache_root/corpus/<name>-<hash of the settings>`."""
    cfg = plain_config(data_cfg)
    builder = BUILDERS.get(cfg.get("builder"))
    if builder is None:
        raise ParameterError(f"unknown corpus builder {cfg.get('builder')!r}; use one of {sorted(BUILDERS)}")
    key = settings_key({"settings": cfg, "identity": builder.identity(cfg)})
    return Path(cache_root) / "corpus" / f"{cfg['name']}-{key}"


def build_corpus(data_cfg: Mapping, cache_root: str | Path, *, threads: int = 2, progress: bool = True) -> Manifest:
    """Build the corpus a `data` config describes, or reuse its cached build, and return its manifest.

    `threads` worker processes render (music21) or read (folder) files; it does not change the result.
    """
    cfg = plain_config(data_cfg)
    return BUILDERS[cfg["builder"]].build(cfg, corpus_dir(cfg, cache_root), threads=threads, progress=progress)
