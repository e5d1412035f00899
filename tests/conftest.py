"""Shared fixtures: data configs and a tiny embedded corpus built once per test session (about 10 s)."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

import execution  # noqa: F401  (first: pins numpy's and torch's kernels before they load, execution/kernels.py)
from lumina.data.corpus import build_corpus
from lumina.data.manifest import Manifest

REPO = Path(__file__).resolve().parents[1]

TINY_MUSIC21 = {
    "train_pieces": 6,
    "track_s": 3.0,
    "queries": {"near_copy": 7, "composition": 4, "production": 2, "held_out": 2, "sample": 1, "out_of_domain": 2},
    "control_tracks": 4,
    "sample_s": 1.0,
    "out_of_domain_textures": ["white_noise", "speech"],
}
"""Overrides of conf/data/music21.yaml for tests: 12 training tracks of 3 s, every near-copy and composition
variant once, a sample query, a noise and a speech query (18 queries), 4 control tracks (abstention's reference
queries)."""


def data_config(name: str, **overrides: object) -> dict:
    """conf/data/<name>.yaml as a plain dict, with top-level `overrides` (no generated queries: their folder is
    named from the root config, and tests make their own)."""
    loaded = OmegaConf.load(REPO / "conf" / "data" / f"{name}.yaml")
    loaded.generated_dir = None
    cfg = OmegaConf.to_container(loaded, resolve=True)
    cfg.update(overrides)
    return cfg


@pytest.fixture(scope="session")
def tiny_music21_cfg() -> dict:
    """The tiny embedded-corpus config (a fresh copy each use is the caller's business: don't mutate it)."""
    return data_config("music21", **TINY_MUSIC21)


@pytest.fixture(scope="session")
def corpus_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache root shared by the session's corpus builds (parsed scores are reused across builds)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def tiny_corpus(tiny_music21_cfg: dict, corpus_cache: Path) -> Manifest:
    """The tiny embedded corpus (seed 0), built with two worker processes: 12 train, 18 query, 4 control."""
    return build_corpus(tiny_music21_cfg, corpus_cache, threads=2, progress=False)
