"""Corpus builders: `build_corpus` turns a `data` config into a cached corpus (manifest.csv + audio) and
returns its `Manifest`. Builders: `music21` (the embedded default, `lumina.data.music21_corpus`), `folder` (a
user's catalogue, `lumina.data.folder`) and `symbolic` (MIDI windows, `lumina.data.midi_windows`,
docs/symbolic.md); see docs/corpus.md."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from lumina.data import folder
from lumina.data import midi_windows as symbolic_corpus
from lumina.data import music21_corpus as embedded
from lumina.data.common import plain_config
from lumina.data.manifest import Manifest
from lumina.runs.errors import CorpusError, ParameterError
from lumina.runs.layout import corpus_dir as corpus_dir_of
from lumina.runs.layout import corpus_root
from lumina.runs.locking import cache_lock

BUILDERS = {"music21": embedded, "folder": folder, "symbolic": symbolic_corpus}
"""Builder name → module with `cache_key(cfg, corpus_root, *, threads, progress) -> str` (the hash in the corpus
folder's name) and `build(cfg, out_dir, *, threads, progress) -> Manifest`."""


def corpus_dir(data_cfg: Mapping, cache_root: str | Path, *, threads: int = 2, progress: bool = False) -> Path:
    """Where a data config's corpus lives: `cache_root/corpus/<name>-<key>`, the key a hash of the settings
    (music21) or of the catalogue's content (folder: its files are hashed,
    docs/corpus.md#how-a-folder-catalogue-is-keyed)."""
    cfg = plain_config(data_cfg)
    builder = BUILDERS.get(cfg.get("builder"))
    if builder is None:
        raise ParameterError(f"unknown corpus builder {cfg.get('builder')!r}; use one of {sorted(BUILDERS)}")
    key = builder.cache_key(cfg, corpus_root(cache_root), threads=threads, progress=progress)
    return corpus_dir_of(cache_root, cfg["name"], key)


def built_corpus(data_cfg: Mapping, cache_root: str | Path) -> Manifest:
    """The manifest of the corpus a `data` config describes, as built before: nothing is rendered or read beyond
    what keys the folder (CorpusError naming the fix when it is not built)."""
    out_dir = corpus_dir(data_cfg, cache_root)
    if not ((out_dir / "manifest.csv").is_file() and (out_dir / "build.json").is_file()):
        raise CorpusError(f"{out_dir}: this corpus is not built yet; any app that reads it builds it first (for "
                          "example `python -m experiments.generate` or `python -m experiments.run +method=NAME`)")
    return Manifest.load(out_dir / "manifest.csv")


def build_corpus(data_cfg: Mapping, cache_root: str | Path, *, threads: int = 2, progress: bool = True) -> Manifest:
    """Build the corpus a `data` config describes, or reuse its cached build, and return its manifest.

    `threads` worker processes render (music21), or threads read (folder), the files; it does not change the
    result. The build holds the corpus folder's lock: an app building the same corpus meanwhile waits for it.
    """
    cfg = plain_config(data_cfg)
    out_dir = corpus_dir(cfg, cache_root, threads=threads, progress=progress)
    with cache_lock(out_dir):  # two apps building the same corpus at once: the second waits, then reuses it
        return BUILDERS[cfg["builder"]].build(cfg, out_dir, threads=threads, progress=progress)
