"""Benchmark: the Ray backend with 1 and 2 workers (docs/execution.md#backends).

    python -m benchmarks.ray_scaling                       # 4 subset models, 24 tracks signed in shards of 2
    python -m benchmarks.ray_scaling --models 2 --tracks 8
    python -m benchmarks.ray_scaling --epochs 36 --tracks 96 --shard-size 8   # more work per task

On a synthetic folder catalogue of tones (written under outputs/benchmarks/ray_scaling/), with a small recipe of
the embedded generator, prints the wall time of (a) training 4 subset models and measuring every track's loss
(`groundtruth.study.run_subsets`, a task per model) and (b) a sharded LUMINA extraction (a task per shard), each
on a local Ray cluster of 1 and then 2 CPUs (one torch thread per task; the workers started and warm before
the clock starts), their ratio, and the load average of the machine before each run (the cores may be shared).
Every measured run starts from empty caches; the corpus, codec and full model are made once beforehand.
Writes outputs/benchmarks/ray_scaling.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from execution import ParallelOptions, configure, parallel_map
from groundtruth.study import run_subsets
from lumina.configure import base_corpus, generator_loader
from lumina.methods.lumina.database import build_database, manifest_tracks
from lumina.methods.lumina.signatures import SignatureConfig

CONF = str(Path(__file__).resolve().parents[1] / "conf")
OUT = Path("outputs/benchmarks/ray_scaling")
RECIPE = [
    "model.codec.pitch_codebook_size=12", "model.codec.codebook_size=32", "model.codec.n_mels=32",
    "model.lm.num_layers=4", "model.lm.hidden_size=64", "model.lm.num_heads=4", "model.lm.ffn_dim=128",
    "model.lm.text_hidden_size=16", "model.lm.text_layers=1", "model.lm.text_heads=2", "model.lm.max_frames=256",
    "model.train.batch_size=4", "model.train.crop_frames=96", "model.train.checkpoints=0",
]


def write_catalogue(root: Path, tracks: int, seconds: float = 4.0) -> None:
    """`tracks` training tones and 4 queries of `seconds` each at 32 kHz, with descriptions."""
    rng = np.random.default_rng(0)
    rows = []
    for split, folder, count in (("train", "train", tracks), ("query", "queries", 4)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            t = np.arange(int(seconds * 32000)) / 32000
            f0 = 110 * 2 ** (rng.integers(0, 24) / 12)
            audio = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in (1, 2, 3)) * np.exp(-(t % 0.5))
            audio = 0.3 * audio / np.abs(audio).max() + 0.005 * rng.standard_normal(t.size)
            name = f"{split}{i:03d}"
            sf.write(root / folder / f"{name}.wav", audio.astype(np.float32), 32000)
            rows.append({"track_id": name, "description": ["piano bach", "violin folk"][i % 2]})
    pd.DataFrame(rows).to_csv(root / "metadata.csv", index=False)


def warm_worker(seconds: float) -> int:
    """A task that imports what the measured tasks import and holds its worker for `seconds`, so that every
    worker process is started before the clock starts."""
    import groundtruth.study  # noqa: F401  (torch, transformers and the generator code)
    import lumina.methods.lumina.database  # noqa: F401

    time.sleep(seconds)
    return os.getpid()


def timed_on_ray(cpus: int, work, shard_size: int) -> float:
    """Seconds `work()` takes on a fresh local Ray cluster of `cpus` CPUs, its `cpus` worker processes started
    and warm (the cluster's and the workers' start are not counted: on a cluster they are paid once)."""
    import ray

    configure(ParallelOptions(backend="ray", cpus=cpus, shard_size=shard_size))
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}})
    try:
        workers = set(parallel_map(warm_worker, [2.0] * cpus, cpus=1))
        assert len(workers) == cpus, f"{len(workers)} warm workers for {cpus} CPUs"
        started = time.perf_counter()
        work()
        return time.perf_counter() - started
    finally:
        ray.shutdown()
        configure(ParallelOptions())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=4, help="subset models per run")
    parser.add_argument("--tracks", type=int, default=24, help="training tracks (all signed in the extraction)")
    parser.add_argument("--epochs", type=int, default=12, help="training epochs of each subset model")
    parser.add_argument("--shard-size", type=int, default=2, help="tracks per task of the sharded extraction")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    shutil.rmtree(OUT, ignore_errors=True)
    write_catalogue(OUT / "catalogue", args.tracks)
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("ground_truth", overrides=[
            "data=folder", f"data.path={OUT / 'catalogue/train'}", f"data.queries={OUT / 'catalogue/queries'}",
            f"data.metadata={OUT / 'catalogue/metadata.csv'}", f"paths.outputs={OUT}", "progress=false",
            "threads=1", *RECIPE, f"model.train.epochs={args.epochs}"])
    manifest = base_corpus(cfg)
    model = OmegaConf.to_container(cfg.model, resolve=True)
    generator = generator_loader(cfg, manifest)()  # codec, codes and the full model, made once
    tracks = manifest_tracks(manifest)
    keep, saved = OUT / "cache/models", OUT / "full-model"
    shutil.copytree(keep, saved)
    figures: dict = {"models": args.models, "tracks": len(tracks), "epochs": args.epochs, "shard_size": args.shard_size,
                     "runs": {}}
    for cpus in (1, 2):
        load = os.getloadavg()[0]

        def subsets(cpus=cpus) -> None:
            shutil.rmtree(keep, ignore_errors=True)  # no subset model from the previous run is reused
            run_subsets(manifest, model, cfg.paths.cache, OUT / f"study-{cpus}", n_models=args.models, threads=1,
                        progress=False)

        def extraction(cpus=cpus) -> None:
            build_database(OUT / f"signatures-{cpus}.h5", generator, tracks, SignatureConfig(), progress=False)

        seconds = {"subset_models": timed_on_ray(cpus, subsets, args.shard_size)}
        shutil.rmtree(keep, ignore_errors=True)
        shutil.copytree(saved, keep)  # the full model, which the extraction's workers load
        seconds["sharded_extraction"] = timed_on_ray(cpus, extraction, args.shard_size)
        figures["runs"][cpus] = {"load_average_before": round(load, 2), **{k: round(v, 2) for k, v in seconds.items()}}
        print(f"{cpus} Ray worker(s) (load average {load:.2f} before): {args.models} subset models "
              f"{seconds['subset_models']:.1f} s, sharded extraction of {len(tracks)} tracks "
              f"{seconds['sharded_extraction']:.1f} s")
    for stage in ("subset_models", "sharded_extraction"):
        ratio = figures["runs"][1][stage] / figures["runs"][2][stage]
        figures[f"{stage}_speedup"] = round(ratio, 2)
        print(f"{stage}: 1 worker / 2 workers = {ratio:.2f}x")
    (OUT.parent / "ray_scaling.json").write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
