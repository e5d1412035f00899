"""The Ray backend on a local 2-CPU cluster (`pytest -k ray`): the same results as the local backend, bit for
bit (a tiny subset study, sharded LUMINA signatures, sharded per-example gradients), a killed worker retried,
and interrupted sharded extractions resumed from the shards already written."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from execution import ParallelOptions, configure, parallel_map
from groundtruth.study import MODELS_DIR, open_study
from lumina.configure import load_corpus
from lumina.data.audio import save_audio
from lumina.methods.baselines.gradients import batch_file, example_rows
from lumina.methods.baselines.items import batches
from lumina.methods.lumina.database import (
    Track,
    build_database,
    database_provenance,
    shard_jobs,
    sign_shard,
    with_audio_sha,
)
from lumina.methods.lumina.signatures import SignatureConfig
from lumina.models.musicgen import MusicgenGenerator
from lumina.models.protocol import Item
from lumina.models.remote import generator_handle, use
from tests.generator_fixtures import tiny_generator
from tests.test_ground_truth import corpus, tiny_cfg  # noqa: F401  (the tiny folder corpus and its config)
from tests.tones import SR, tone

ray = pytest.importorskip("ray")

CFG = SignatureConfig(chunk_s=1.0)
SHARD = 2


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster of 2 CPUs for the module (one torch thread here, so two one-CPU tasks run at once);
    the local backend and the thread count again afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    configure(ParallelOptions(backend="ray", cpus=2, shard_size=SHARD))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}})
    yield
    ray.shutdown()
    configure(ParallelOptions())
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def generator(tmp_path_factory) -> MusicgenGenerator:
    return MusicgenGenerator.load(tiny_generator().save(tmp_path_factory.mktemp("tiny") / "generator"))


@pytest.fixture(scope="module")
def tracks(tmp_path_factory) -> list[Track]:
    """Seven 2 s tones and a silent file (skipped: below the energy floor)."""
    folder = tmp_path_factory.mktemp("audio")
    out = []
    for i in range(7):
        save_audio(folder / f"t{i}.wav", tone([220 * 2 ** (i / 12), 330 * 2 ** (i / 7)], 2.0, seed=i), SR)
        out.append(Track(f"t{i}", "train", folder / f"t{i}.wav", ["piano bach", "violin folk"][i % 2]))
    save_audio(folder / "silent.wav", np.zeros(2 * SR, dtype=np.float32), SR)
    return out[:4] + [Track("silent", "train", folder / "silent.wav", "piano bach")] + out[4:]


@pytest.fixture(scope="module")
def local_db(ray_cluster, tmp_path_factory, generator, tracks):
    """The reference: every track signed in this process on the local backend."""
    configure(ParallelOptions())
    try:
        return build_database(tmp_path_factory.mktemp("local") / "db.h5", generator, tracks, CFG, progress=False)
    finally:
        configure(ParallelOptions(backend="ray", cpus=2, shard_size=SHARD))


def assert_same_database(a, b) -> None:
    assert a.song_ids == b.song_ids and a.splits == b.splits and a.contents == b.contents
    for channel in ("P", "M"):
        assert a.signatures[channel].tobytes() == b.signatures[channel].tobytes()
    assert sorted(a.skipped) == sorted(b.skipped)


def test_ray_sharded_signatures_equal_the_local_ones_bit_for_bit(ray_cluster, tmp_path, generator, tracks, local_db):
    path = tmp_path / "db.h5"
    db = build_database(path, generator, tracks, CFG, progress=False)
    assert_same_database(db, local_db)
    assert not list((tmp_path / "db.h5.shards").glob("*.h5"))  # every shard merged and removed
    with h5py.File(path, "r") as f:  # made, then 4 shards merged in 3 commits: 2 tracks, 2, the last two shards
        assert [w["rows"] for w in json.loads(f.attrs["writes_json"])] == [0, 2, 2, 3]


def test_local_worker_processes_shard_the_signatures_with_the_same_bits(ray_cluster, tmp_path, generator, tracks,
                                                                       local_db):
    """`parallel.workers=2` on the local backend: the shards are signed in two spawned processes (one torch thread
    each, as here) and merged as on Ray; the database holds the bits of one signed in this process."""
    configure(ParallelOptions(workers=2, shard_size=SHARD))
    try:
        db = build_database(tmp_path / "db.h5", generator, tracks, CFG, progress=False)
    finally:
        configure(ParallelOptions(backend="ray", cpus=2, shard_size=SHARD))
    assert_same_database(db, local_db)
    assert not list((tmp_path / "db.h5.shards").glob("*.h5"))
    with h5py.File(tmp_path / "db.h5", "r") as f:  # the shards' merges, as on Ray
        assert [w["rows"] for w in json.loads(f.attrs["writes_json"])] == [0, 2, 2, 3]


def test_ray_interrupted_sharded_signing_resumes_from_the_shards_written(ray_cluster, tmp_path, generator, tracks,
                                                                          local_db):
    """A previous run left shard 0 finished and shard 1 half done. Shard 0's stored rows are marked, so the
    final database shows whether they were reused (not recomputed); the rest equals the reference."""
    path = tmp_path / "db.h5"
    build_database(path, generator, [], CFG, progress=False)  # the empty database, as the interrupted run made it
    resolved = [with_audio_sha(t) for t in tracks]
    jobs = shard_jobs(path, resolved, resolved, CFG, database_provenance(generator, CFG), 8)
    use(generator_handle(generator))
    sign_shard(jobs[0])
    sign_shard(replace(jobs[1], tracks=jobs[1].tracks[:1]))
    with h5py.File(jobs[0].path, "a") as f:
        f["signatures_p"][0] = np.full(f["signatures_p"].shape[1], 0.5, dtype=np.float32)
    db = build_database(path, generator, tracks, CFG, progress=False)
    marked = db.signatures["P"][db.song_ids.index(tracks[0].track_id)]
    assert np.all(marked == 0.5)  # shard 0 was merged as written
    rest = [i for i, t in enumerate(db.song_ids) if t != tracks[0].track_id]
    assert db.signatures["P"][rest].tobytes() == local_db.signatures["P"][rest].tobytes()
    assert db.signatures["M"].tobytes() == local_db.signatures["M"].tobytes()


def items_of(generator, n: int = 10) -> list[Item]:
    rng = np.random.default_rng(0)
    card = generator.codec.cardinality
    return [Item(rng.integers(0, card, size=(generator.num_codebooks, 20 + 3 * (i % 4))), ["piano bach",
                 "violin folk"][i % 2]) for i in range(n)]


def projection(g: torch.Tensor) -> torch.Tensor:
    """A fixed reduction of per-example gradients (B, D) → (B, 5)."""
    return g @ torch.linspace(-1.0, 1.0, g.shape[1] * 5, dtype=g.dtype).reshape(g.shape[1], 5)


def test_ray_sharded_gradients_equal_the_local_ones_and_resume(ray_cluster, tmp_path, generator):
    names = generator.parameter_group([-1])
    items = items_of(generator)
    configure(ParallelOptions())
    try:
        local = example_rows(generator, names, items, projection, None, batch_size=2, progress=False)
    finally:
        configure(ParallelOptions(backend="ray", cpus=2, shard_size=SHARD))
    folder = tmp_path / "grads"
    first = batches(items, 2)[0]
    marker = np.full((len(first), 5), 7.0, dtype=local.dtype)
    folder.mkdir()
    np.save(batch_file(folder, 2, 0), marker)  # batch 0 written by an interrupted run (marked)
    rows = example_rows(generator, names, items, projection, folder, batch_size=2, progress=False)
    assert np.all(rows[first] == 7.0)  # resumed, not recomputed
    other = np.setdiff1d(np.arange(len(items)), first)
    assert rows[other].tobytes() == local[other].tobytes()
    assert len(list(folder.glob("batch2-*.npy"))) == len(batches(items, 2))


def slow_square(job: tuple[int, str]) -> int:
    """Square `job[0]`; the first attempt at item 2 records its process id and waits to be killed."""
    value, folder = job
    if value == 2:
        attempts = Path(folder) / "attempts"
        with open(attempts, "a") as f:
            f.write(f"{os.getpid()}\n")
        if len(attempts.read_text().split()) == 1:
            time.sleep(60)
    return value * value


def test_ray_killed_worker_is_retried_and_the_map_completes(ray_cluster, tmp_path):
    attempts = tmp_path / "attempts"

    def kill_first_attempt() -> None:
        for _ in range(600):
            if attempts.exists() and attempts.read_text().strip():
                os.kill(int(attempts.read_text().split()[0]), signal.SIGKILL)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_first_attempt)
    killer.start()
    started = time.perf_counter()
    results = list(parallel_map(slow_square, [(i, str(tmp_path)) for i in range(5)]))
    killer.join()
    assert results == [0, 1, 4, 9, 16]
    pids = attempts.read_text().split()
    assert len(pids) == 2 and pids[0] != pids[1]  # a second worker process ran the task again
    assert time.perf_counter() - started < 50  # it did not wait for the killed attempt's sleep


def test_ray_tiny_study_writes_the_same_records_as_the_local_backend(ray_cluster, corpus, tmp_path):  # noqa: F811
    """Two subset models trained in this process (local backend) and as two Ray tasks of one CPU each. The Ray
    run starts from the codec and codes the local run fitted (made in this process on either backend), not from its
    models."""
    folders = {}
    for backend in ("local", "ray"):
        configure(ParallelOptions(backend=backend, cpus=2, shard_size=SHARD))
        cfg = tiny_cfg(corpus, tmp_path / backend, "ground_truth.n_models=2", "model.train.epochs=2")
        if backend == "ray":
            for shared in ("codecs", "codes"):
                shutil.copytree(tmp_path / "local" / "cache" / shared, Path(cfg.paths.cache) / shared)
        study = open_study(load_corpus(cfg), OmegaConf.to_container(cfg.model, resolve=True), cfg.paths.cache,
                           cfg.ground_truth, progress=False)
        folders[backend] = study.folder / MODELS_DIR
    assert len(record_fields(folders["ray"])) == 2
    assert record_fields(folders["ray"]) == record_fields(folders["local"])


def record_fields(folder: Path) -> list[dict]:
    """The models' records without their timings and the moment they were stamped (what must be identical
    between backends; the stamp's machine and upstream artefacts must be too)."""
    out = []
    for path in sorted(folder.glob("m*.json")):
        record = json.loads(path.read_text())
        kept = {k: v for k, v in record.items() if k not in ("wall_seconds", "train_seconds", "model_path",
                                                             "provenance")}
        out.append({**kept, **{f"provenance.{k}": record["provenance"][k] for k in ("machine", "upstream")}})
    return out


def test_ray_runs_each_seeds_study_as_a_task_and_a_failed_seed_does_not_stop_the_others(ray_cluster, tmp_path):
    """`experiments.seeds`' task on Ray: a stand-in study script that records its seed and fails for seed 1."""
    from experiments.seeds import run_study

    study = tmp_path / "study.sh"
    study.write_text('#!/usr/bin/env bash\necho "study of seed $1"\n[ "$1" != 1 ]\n')
    study.chmod(0o755)
    results = list(parallel_map(partial(run_study, logs=str(tmp_path / "logs"), study=str(study)), [0, 1, 2],
                                cpus=1))
    assert [(r["seed"], r["returncode"]) for r in results] == [(0, 0), (1, 1), (2, 0)]
    for seed in (0, 1, 2):
        assert (tmp_path / "logs" / f"seed{seed}.log").read_text() == f"study of seed {seed}\n"


@pytest.mark.parametrize("method", ["logra", "factgrass"])
def test_ray_sharded_compressed_gradients_give_the_local_scores(ray_cluster, tmp_path, generator, method):
    """LoGra and FactGraSS on Ray: each shard's worker rebuilds the compressors from the same settings, so the
    cached compressed gradients and the scores equal the local backend's bit for bit."""
    from lumina.methods.baselines.block_projected import block_projected

    items = items_of(generator)
    options = {"proj_dim": 4, "blowup": 4, "batch_size": 2, "progress": False}
    configure(ParallelOptions())
    try:
        local, _ = block_projected(generator, method, items[:6], items[6:], tmp_path / "local", **options)
    finally:
        configure(ParallelOptions(backend="ray", cpus=2, shard_size=SHARD))
    distributed, info = block_projected(generator, method, items[:6], items[6:], tmp_path / "ray", **options)
    assert distributed.tobytes() == local.tobytes() and info["layers"] > 1
    assert len(list((tmp_path / "ray").rglob("batch2-*.npy"))) == len(batches(items[:6], 2)) + len(
        batches(items[6:], 2))


def test_a_worker_rebuilds_the_generator_on_its_placement(generator):
    """A handle carries the device and dtype: a bfloat16 generator is rebuilt in bfloat16 in the worker."""
    from lumina.models.remote import generator_handle, rebuild
    from lumina.runs.device import Placement

    low = MusicgenGenerator.load(generator.source, Placement("cpu", "bfloat16"))
    handle = generator_handle(low)
    assert handle.placement == Placement("cpu", "bfloat16")
    rebuilt = rebuild(handle)
    assert rebuilt.dtype == torch.bfloat16
    for name, param in rebuilt.trainable_parameters().items():
        assert torch.equal(param, low.trainable_parameters()[name]), name
