"""Shared fixtures: data configs and a tiny embedded corpus built once per test session (about 25 s), whichever
pytest-xdist worker needs it first (`make test` runs two)."""

from __future__ import annotations

import os
from pathlib import Path

if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs two pytest-xdist workers: numba's on-disk cache is not
    # safe when two processes compile the same function at once (execution.parallel_map's `first_here`), so each
    # worker, and every process it spawns, compiles into a cache of its own
    os.environ["NUMBA_CACHE_DIR"] = str(Path(os.environ.get("NUMBA_CACHE_DIR", "outputs/cache/numba"))
                                        / f"pytest-{os.environ['PYTEST_XDIST_WORKER']}")

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
    """A cache root shared by the session's corpus builds (parsed scores are reused across builds) and by its
    pytest-xdist workers (the folder above a worker's temporary folder is the session's). Corpora built here are
    read by tests running at once in the other worker: a test that changes one works on a copy."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    (shared / "corpus-cache").mkdir(exist_ok=True)
    return shared / "corpus-cache"


@pytest.fixture(scope="session")
def tiny_corpus(tiny_music21_cfg: dict, corpus_cache: Path) -> Manifest:
    """The tiny embedded corpus (seed 0), built with two worker processes: 12 train, 18 query, 4 control. The first
    pytest-xdist worker to ask builds it; the other waits on the build's lock and reads it (`build_corpus`)."""
    return build_corpus(tiny_music21_cfg, corpus_cache, threads=2, progress=False)
