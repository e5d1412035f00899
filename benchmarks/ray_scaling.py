"""Benchmark: the Ray backend with 1 and 2 workers (docs/execution.md#speed).

    python -m benchmarks.ray_scaling                          # 4 subset models; the extraction in shards of 2, 8 and 32
    python -m benchmarks.ray_scaling --models 2 --tracks 8 --shard-sizes 4
    python -m benchmarks.ray_scaling --tracks 124 --shard-sizes 8,16,32       # more tracks

On a synthetic folder catalogue of tones (written under outputs/benchmarks/ray_scaling/), with a small recipe of
the embedded generator, prints the wall time of (a) training 4 subset models and measuring every track's loss
(`groundtruth.study.run_subsets`, a task per model) and (b) a sharded LUMINA extraction of every track (a task
per shard) once for each shard size of `--shard-sizes`, each on a local Ray cluster of 1 and then 2 CPUs (one
torch thread per task; the workers started and warm before the clock starts: `warm_worker`), their ratios, and
the load average of the machine before each run (the cores may be shared). The last line is the extraction's
ratio at `parallel.shard_size`, the default. Every measured run starts from empty caches and rebuilds the
generator in each worker; the corpus, codec and full model are made once beforehand.
Writes outputs/benchmarks/ray_scaling.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
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
from lumina.models.musicgen import CODEC_DIR

CONF = str(Path(__file__).resolve().parents[1] / "conf")
OUT = Path("outputs/benchmarks/ray_scaling")
RECIPE = [
    "model.codec.pitch_codebook_size=12", "model.codec.codebook_size=32", "model.codec.n_mels=32",
    "model.lm.num_layers=4", "model.lm.hidden_size=64", "model.lm.num_heads=4", "model.lm.ffn_dim=128",
    "model.lm.text_hidden_size=16", "model.lm.text_layers=1", "model.lm.text_heads=2", "model.lm.max_frames=256",
    "model.train.batch_size=4", "model.train.crop_frames=96", "model.train.checkpoints=0",
]
DEFAULT_SHARD = ParallelOptions().shard_size
SHARD_SIZES = [2, 8, 32]


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


def warm_worker(seconds: float, codec: str) -> int:
    """A task that brings a worker process to the state of one that has run before: it imports what the measured
    tasks import and encodes a second of noise with the `codec` folder's codec (librosa imports its modules and
    numba loads its compiled functions on first use: seconds per process), then holds its worker for `seconds`,
    so that every worker process is started and warm before the clock starts. It makes nothing of a stage: the
    generator is rebuilt by each measured stage."""
    import groundtruth.study  # noqa: F401  (torch, transformers and the generator code)
    import lumina.methods.lumina.database  # noqa: F401
    from lumina.models.codecs import load_codec

    loaded = load_codec(codec)
    loaded.encode(0.1 * np.random.default_rng(0).standard_normal(int(loaded.sample_rate)).astype(np.float32))
    time.sleep(seconds)
    return os.getpid()


@contextmanager
def warm_cluster(cpus: int, codec: Path) -> Iterator[None]:
    """A fresh local Ray cluster of `cpus` CPUs for the block, its `cpus` worker processes started and warm
    (`warm_worker`; the cluster's and the workers' start are not measured: on a cluster they are paid once)."""
    import ray

    configure(ParallelOptions(backend="ray", cpus=cpus))
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}})
    try:
        workers = set(parallel_map(partial(warm_worker, codec=str(codec)), [2.0] * cpus, cpus=1))
        assert len(workers) == cpus, f"{len(workers)} warm workers for {cpus} CPUs"
        yield
    finally:
        ray.shutdown()
        configure(ParallelOptions())


def timed(work: Callable[[], object]) -> tuple[float, float]:
    """The load average of the last minute before `work()` and the seconds it takes."""
    load, started = os.getloadavg()[0], time.perf_counter()
    work()
    return round(load, 2), round(time.perf_counter() - started, 2)


def sizes(text: str) -> list[int]:
    """`--shard-sizes`: comma-separated sizes, each at least 1."""
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"shard sizes must be integers >= 1, got {text!r}")
    return values


def arguments() -> argparse.ArgumentParser:
    """The command line (`python -m benchmarks.ray_scaling --help`)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=4, help="subset models per run")
    parser.add_argument("--tracks", type=int, default=60, help="training tracks (all signed in the extraction)")
    parser.add_argument("--seconds", type=float, default=12.0, help="length of each track (the embedded corpus': 12)")
    parser.add_argument("--epochs", type=int, default=12, help="training epochs of each subset model")
    parser.add_argument("--shard-sizes", type=sizes, default=SHARD_SIZES,
                        help="tracks per task of the sharded extraction, comma-separated: one extraction each "
                             f"(default {','.join(map(str, SHARD_SIZES))}; the last line is the ratio at the "
                             f"default parallel.shard_size, {DEFAULT_SHARD}, when it is one of them)")
    parser.add_argument("--repeats", type=int, default=2,
                        help="rounds of every measurement, 1 and 2 workers taking turns; the shortest is reported")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = arguments().parse_args(argv)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    shutil.rmtree(OUT, ignore_errors=True)
    write_catalogue(OUT / "catalogue", args.tracks, args.seconds)
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
    codec = Path(generator.source) / CODEC_DIR
    stages = {"subset_models": f"{args.models} subset models", **{
        f"extraction_shard{size}": f"sharded extraction of {len(tracks)} tracks in shards of {size} "
                                   f"({-(-len(tracks) // size)} tasks)" for size in args.shard_sizes}}
    runs: dict = {cpus: {stage: {"load_average_before": [], "seconds": []} for stage in stages} for cpus in (1, 2)}

    def measure(run: int, cpus: int, stage: str, work: Callable[[], object]) -> None:
        """Time one run of a stage, record and print it."""
        load, seconds = timed(work)
        runs[cpus][stage]["load_average_before"].append(load)
        runs[cpus][stage]["seconds"].append(seconds)
        print(f"round {run + 1}/{args.repeats}, {cpus} Ray worker(s): {stages[stage]} {seconds:.1f} s (load average "
              f"{load:.2f} before)", flush=True)

    for run in range(args.repeats):
        for cpus in (1, 2):  # taking turns: a change in the machine's other load falls on both
            with warm_cluster(cpus, codec):
                shutil.rmtree(keep)  # no model of an earlier run is reused
                measure(run, cpus, "subset_models", partial(
                    run_subsets, manifest, model, cfg.paths.cache, OUT / f"study-{cpus}-{run}",
                    n_models=args.models, threads=1, progress=False))
                shutil.rmtree(keep)
                shutil.copytree(saved, keep)  # the full model, which the extraction's workers load
                for size in args.shard_sizes:
                    configure(ParallelOptions(backend="ray", cpus=cpus, shard_size=size))
                    measure(run, cpus, f"extraction_shard{size}", partial(
                        build_database, OUT / f"signatures-{cpus}-{size}-{run}.h5", generator, tracks,
                        SignatureConfig(), progress=False))
    figures: dict = {"models": args.models, "tracks": len(tracks), "seconds_per_track": args.seconds,
                     "epochs": args.epochs, "repeats": args.repeats, "runs": runs}
    print(f"shortest of {args.repeats} round(s):")
    for stage, label in stages.items():
        one, two = (min(runs[cpus][stage]["seconds"]) for cpus in (1, 2))
        figures[f"{stage}_speedup"] = round(one / two, 2)
        print(f"{label}: 1 worker {one:.1f} s, 2 workers {two:.1f} s, ratio {one / two:.2f}x")
    if DEFAULT_SHARD in args.shard_sizes:
        figures["sharded_extraction_speedup"] = figures[f"extraction_shard{DEFAULT_SHARD}_speedup"]
        print(f"sharded extraction at the default parallel.shard_size={DEFAULT_SHARD}: 1 worker / 2 workers = "
              f"{figures['sharded_extraction_speedup']:.2f}x")
    (OUT.parent / "ray_scaling.json").write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
