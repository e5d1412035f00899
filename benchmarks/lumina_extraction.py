"""Benchmark: LUMINA signature extraction on the embedded model, and the similarity-and-shares step.

    python -m benchmarks.lumina_extraction                       # 8 training tracks, stats mode
    python -m benchmarks.lumina_extraction --tracks 16 method.mode=jl threads=1
    python -m benchmarks.lumina_extraction --skip extraction    # the similarity-and-shares step alone

Extraction, with the truncated backward (only the captured layers and what lies above them) and with a full
backward (every LM parameter requires grad): seconds per track, gradient tokens per second (code tokens
predicted in the backward passes, K · T per chunk) and the peak resident memory of the extraction (each
variant in a fresh process; Linux VmHWM after a reset, minus the resident size before extracting).
Similarity step: `lumina.methods.lumina.attribution.attribute` for one query (cosine, kernel regression, STS, z_noise,
confidence, LIP, gate and shares, both channels) against 99 and 100,000 stored signatures (random unit
vectors of the real dimension, 10 controls); its one-off preparation (kernel factor, calibration) apart;
wall time (median and minimum of 20) and process CPU time per call (with `OPENBLAS_NUM_THREADS=1`, as the
apps set it, the CPU time is what an idle core takes).
Writes outputs/benchmarks/lumina_extraction.json and .md.
"""

from __future__ import annotations

import argparse
import re
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from benchmarks.output import write
from lumina.runs.provenance import command_line

CONF = Path(__file__).resolve().parents[1] / "conf"
SIMILARITY_SIZES = (99, 100_000)
REPEATS = 20


def _memory_kb(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    return int(match.group(1)) if match else -1


def measure_extraction(model_dir: str, audio_paths: list[str], texts: list[str], options: dict, backward: str,
                       threads: int) -> dict:
    """Extract the tracks' signatures in this (fresh) process, the first as a warm-up; returns the seconds,
    tokens and memory of the others."""
    import torch

    from lumina.data.audio import load_audio
    from lumina.methods.lumina.signatures import SignatureConfig, signatures_from_gradients, track_gradients
    from lumina.models.musicgen import MusicgenGenerator

    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    generator = MusicgenGenerator.load(model_dir)
    config = SignatureConfig.from_options(options)
    capture = list(generator.trainable_parameters()) if backward == "full" else None
    audios = [load_audio(p, generator.codec.sample_rate, allow_silent=True) for p in audio_paths]
    signatures_from_gradients([track_gradients(generator, audios[0], texts[0], config, capture=capture)], config)
    before_kb = _memory_kb("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current resident size
    except OSError:
        pass
    tokens = 0
    started = time.perf_counter()
    for audio, text in zip(audios[1:], texts[1:], strict=True):
        grads = track_gradients(generator, audio, text, config, capture=capture)
        signatures_from_gradients([grads], config)
        tokens += grads.tokens
    seconds = time.perf_counter() - started
    n = len(audios) - 1
    return {"backward": backward, "tracks": n, "seconds": seconds, "seconds_per_track": seconds / n,
            "tokens": tokens, "tokens_per_second": tokens / seconds, "rss_before_mb": before_kb / 1024,
            "peak_extra_mb": (_memory_kb("VmHWM") - before_kb) / 1024}


def similarity_timing(dims: dict[str, int], options: dict, sizes=SIMILARITY_SIZES) -> list[dict]:
    """Time `prepare` and `attribute` on random databases of each size."""
    from lumina.methods.lumina.attribution import attribute, prepare
    from lumina.methods.lumina.database import SignatureDatabase
    from lumina.methods.lumina.scoring import ScoringConfig

    rng = np.random.default_rng(0)
    scoring = ScoringConfig.from_options(options)
    out = []
    for n in sizes:
        def unit(rows: int, d: int) -> np.ndarray:
            x = rng.standard_normal((rows, d)).astype(np.float32)
            return x / np.linalg.norm(x, axis=1, keepdims=True)

        db = SignatureDatabase(Path(f"random-{n}"), [f"t{i}" for i in range(n + 10)], ["train"] * n + ["control"] * 10,
                               {c: unit(n + 10, d) for c, d in dims.items()}, [], {})
        query = {c: unit(1, d)[0] for c, d in dims.items()}
        started = time.perf_counter()
        reference = prepare(db, scoring)
        prepare_s = time.perf_counter() - started
        times = []
        cpu_started = time.process_time()
        for _ in range(REPEATS):
            started = time.perf_counter()
            attribute(query, reference)
            times.append(time.perf_counter() - started)
        cpu_ms = 1000 * (time.process_time() - cpu_started) / REPEATS
        out.append({"stored": n, "dims": dims, "prepare_ms": 1000 * prepare_s, "attribute_cpu_ms": cpu_ms,
                    "attribute_ms_median": 1000 * float(np.median(times)), "attribute_ms_min": 1000 * min(times)})
    return out


def to_markdown(result: dict) -> str:
    lines = ["# LUMINA extraction benchmark", "", f"Command: `{result['command']}`", "",
             f"Model `{result['model_hash']}` ({result['num_layers']} layers), mode {result['mode']}, "
             f"{result['threads']} torch thread(s), {result['tracks']} training tracks of the corpus.", "",
             "| backward | s / track | gradient tokens / s | peak extra memory (MB) | RSS before (MB) |",
             "|---|---:|---:|---:|---:|"]
    for r in result["extraction"]:
        lines.append(f"| {r['backward']} | {r['seconds_per_track']:.3f} | {r['tokens_per_second']:.0f} | "
                     f"{r['peak_extra_mb']:.1f} | {r['rss_before_mb']:.0f} |")
    lines += ["", "| stored signatures | similarity and shares, median (ms) | min (ms) | CPU time (ms) | "
              "preparation (ms) |", "|---:|---:|---:|---:|---:|"]
    for r in result["similarity"]:
        lines.append(f"| {r['stored']:,} | {r['attribute_ms_median']:.3f} | {r['attribute_ms_min']:.3f} | "
                     f"{r['attribute_cpu_ms']:.3f} | {r['prepare_ms']:.1f} |")
    return "\n".join(lines) + "\n"


def configuration(overrides: list[str]) -> DictConfig:
    """The Hydra configuration this benchmark runs with: `conf/config.yaml` with LUMINA and `overrides`."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=["+method=lumina", *overrides])


def arguments() -> argparse.ArgumentParser:
    """The command line (`python -m benchmarks.lumina_extraction --help`); Hydra overrides may follow the flags."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracks", type=int, default=8, help="training tracks to extract (after one warm-up)")
    parser.add_argument("--out", default=None, help="output folder (default: <paths.outputs>/benchmarks)")
    parser.add_argument("--skip", action="append", default=[], choices=["extraction"],
                        help="a part to leave out (repeat the flag for several)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. method.mode=jl threads=1")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = arguments().parse_intermixed_args(argv)
    cfg = configuration(args.overrides)
    from lumina.configure import base_corpus, configure_runtime, generator_loader
    from lumina.methods.lumina.signatures import SignatureConfig, signature_dims

    configure_runtime(cfg)
    options = OmegaConf.to_container(cfg.method, resolve=True)
    manifest = base_corpus(cfg)
    generator = generator_loader(cfg, manifest)()
    ids = manifest.train_ids[: args.tracks + 1]
    paths = [str(manifest.path_of(t)) for t in ids]
    texts = [manifest.description_of(t) for t in ids]
    extraction = []
    for backward in () if "extraction" in args.skip else ("truncated", "full"):
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            extraction.append(pool.submit(measure_extraction, generator.source, paths, texts, options, backward,
                                          int(cfg.threads)).result())
        print(f"{backward} backward: {extraction[-1]['seconds_per_track']:.3f} s/track", flush=True)
    config = SignatureConfig.from_options(options)
    result = {
        "command": command_line("benchmarks.lumina_extraction", argv),
        "model_hash": generator.identity(), "num_layers": generator.num_layers, "mode": config.mode,
        "threads": int(cfg.threads), "tracks": args.tracks, "extraction": extraction,
        "similarity": similarity_timing(signature_dims(generator, config), options),
    }
    write(args.out or Path(cfg.paths.outputs) / "benchmarks", "lumina_extraction", result, to_markdown(result))


if __name__ == "__main__":
    main()
