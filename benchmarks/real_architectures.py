"""Benchmark: the published MusicGen architectures (conf/model/musicgen-*.yaml, random weights) per 10 s track.

    nice -n 0 python -m benchmarks.real_architectures                       # small and medium, 2 tracks each
    python -m benchmarks.real_architectures --sizes small --tracks 1 device=cuda   # on a GPU

For each size, in a fresh process: the LM's parameter counts; per 10 s track (500 frames x 4 codebooks, one
LUMINA chunk): the EnCodec encoding, LUMINA's gradient extraction with the truncated backward (only the
channels' tensors require grad) and with a full backward (every LM parameter does), LoGra's compressed
gradients (dattri's hooks, every linear module, k = 256 per layer), TRAK's per-example gradient of its default
parameters (the top two layers) and TRAK's projection of it to k = 2048 (dattri's dense Gaussian projector,
timed on a slice of 2^20 gradient coordinates and scaled linearly to the whole gradient: the full D x k
matrix does not fit a CPU's memory); the peak resident memory of each stage (Linux VmHWM after a reset). Every
size, large included, also gets its forward FLOPs per track from the architecture, the basis of
docs/scale.md. The synthetic tracks are harmonic tones with noise (above LUMINA's energy floor). Writes
outputs/benchmarks/real_architectures.{json,md}; the machine load (1-min average) is recorded before and after.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from benchmarks.output import write
from lumina.runs.provenance import command_line

CONF = Path(__file__).resolve().parents[1] / "conf"
SIZES = ("small", "medium", "large")
FRAMES = 500
SLICE = 2**20
TEXTS = ["solo piano baroque", "string quartet folk", "organ hymn", "flute and harp"]


def memory_kb(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    return int(match.group(1)) if match else -1


def reset_peak() -> int:
    """Reset VmHWM to the current resident size; returns that size (kB)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return memory_kb("VmRSS")


def forward_flops(decoder: dict, steps: int, text_tokens: int = 12) -> dict[str, float]:
    """Multiply-add FLOPs (x2) of one teacher-forced forward pass over `steps` delayed steps: the decoder's
    matrix products (self-attention, cross-attention queries and outputs, feed-forward, the K output heads),
    its attention scores (QK and AV over `steps`, and over `text_tokens` for cross-attention), per layer and
    in total. The text encoder and EnCodec are left out (under 2 % here)."""
    d, ffn, layers = decoder["hidden_size"], decoder["ffn_dim"], decoder["num_hidden_layers"]
    per_token_layer = 2 * (4 * d * d + 2 * d * d + 2 * d * ffn) + 2 * 2 * d * (steps + text_tokens)
    heads = 2 * decoder["num_codebooks"] * d * decoder["vocab_size"]
    return {"per_layer": per_token_layer * steps, "total": (layers * per_token_layer + heads) * steps,
            "layers": layers}


def tones(n: int, sample_rate: int) -> list[np.ndarray]:
    t = np.arange(10 * sample_rate) / sample_rate
    out = []
    for i in range(n):
        rng = np.random.default_rng(i)
        f = 110 * 2 ** (rng.integers(0, 24) / 12)
        audio = sum(np.sin(2 * np.pi * f * h * t) / h for h in (1, 2, 3)) * (0.6 + 0.4 * np.sin(2 * np.pi * t / 2))
        audio = audio + 0.02 * rng.standard_normal(t.size)
        out.append((0.3 * audio / np.abs(audio).max()).astype(np.float32))
    return out


def timed(fn, *args, **kwargs) -> tuple[object, float, float]:
    """fn's result, its wall seconds and the peak memory it added (MB): resident memory on the CPU, allocated
    GPU memory when a GPU is in use."""
    import torch

    gpu = torch.cuda.is_available() and torch.cuda.is_initialized()
    before = reset_peak()
    if gpu:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() // 1024
    started = time.perf_counter()
    out = fn(*args, **kwargs)
    if gpu:
        torch.cuda.synchronize()
        return out, time.perf_counter() - started, (torch.cuda.max_memory_allocated() // 1024 - before) / 1024
    return out, time.perf_counter() - started, (memory_kb("VmHWM") - before) / 1024


def profile(size: str, tracks: int, threads: int, device: str, skip: tuple[str, ...] = ()) -> dict:
    """Every stage but `skip` for `tracks` tracks of one architecture, in this (fresh) process."""
    import tempfile

    import torch

    from lumina.methods.baselines.block_projected import block_projected
    from lumina.methods.baselines.gradients import example_rows, project
    from lumina.methods.lumina.signatures import SignatureConfig, track_gradients
    from lumina.models.architectures import build_architecture
    from lumina.models.protocol import Item
    from lumina.runs.device import Placement

    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    model = OmegaConf.to_container(OmegaConf.load(CONF / "model" / f"musicgen-{size}.yaml"), resolve=True)
    started = time.perf_counter()
    generator = build_architecture(model, TEXTS, placement=Placement(device))
    build_s = time.perf_counter() - started
    params = generator.trainable_parameters()
    out = {"size": size, "device": str(generator.device), "threads": threads, "build_s": round(build_s, 1),
           "lm_parameters": sum(p.numel() for p in params.values()),
           "flops": forward_flops(model["decoder"], FRAMES + model["decoder"]["num_codebooks"] - 1),
           "tracks": tracks, "stages": {}}
    audios = tones(tracks, generator.codec.sample_rate)
    texts = [TEXTS[i % len(TEXTS)] for i in range(tracks)]
    stages: dict[str, list] = {}

    def record(stage: str, seconds: float, mb: float) -> None:
        stages.setdefault(stage, []).append((seconds, mb))
        print(f"{size} {stage}: {seconds:.1f} s, +{mb:.0f} MB", flush=True)

    codes = []
    for audio in audios:
        c, s, mb = timed(generator.codec.encode, audio)
        codes.append(c)
        record("encodec", s, mb)
    assert codes[0].shape == (4, FRAMES), codes[0].shape
    config = SignatureConfig()
    everything = list(params)
    for audio, text in zip(audios, texts, strict=True):
        _, s, mb = timed(track_gradients, generator, audio, text, config)
        record("lumina_truncated", s, mb)
        if "lumina_full" not in skip:
            _, s, mb = timed(track_gradients, generator, audio, text, config, capture=everything)
            record("lumina_full", s, mb)
    items = [Item(c, t) for c, t in zip(codes, texts, strict=True)]
    names = generator.parameter_group([-2, -1])
    for item in items:
        grads, s, mb = timed(example_rows, generator, names, [item], lambda g: g, None, batch_size=1,
                             progress=False)
        record("trak_gradient", s, mb)
    features = torch.from_numpy(grads[:, :SLICE].copy()).to(generator.device)
    _, s, mb = timed(project, features, 2048, 0)
    out["trak_dims"] = int(grads.shape[1])
    record("trak_projection", s * grads.shape[1] / features.shape[1], mb)
    with tempfile.TemporaryDirectory() as tmp:
        _, s, mb = timed(block_projected, generator, "logra", items, items[:1], Path(tmp), batch_size=1,
                         progress=False)
    record("logra_all_items", s / (len(items) + 1), mb)  # every train item and one query, setup included
    out["stages"] = {k: {"s_per_track": round(float(np.mean([s for s, _ in v])), 2),
                         "peak_extra_mb": round(max(mb for _, mb in v))} for k, v in stages.items()}
    return out


def to_markdown(result: dict) -> str:
    lines = ["# Real MusicGen architectures per 10 s track (random weights)", "", f"Command: `{result['command']}`",
             "", f"Load average (1 min) before/after: {result['load']}; CPU cores: {result['cores']}.", "",
             "| size | LM params | forward TFLOP / track | stage | s / track | peak extra MB |",
             "|---|---|---|---|---|---|"]
    for r in result["profiles"]:
        for stage, v in r["stages"].items():
            lines.append(f"| {r['size']} ({r['device']}, {r['threads']} threads) | {r['lm_parameters'] / 1e6:.0f} M | "
                         f"{r['flops']['total'] / 1e12:.2f} | {stage} | {v['s_per_track']} | {v['peak_extra_mb']} |")
    lines += ["", "| size | forward TFLOP / 10 s track | per layer (GFLOP) |", "|---|---|---|"]
    lines += [f"| {s} | {f['total'] / 1e12:.2f} | {f['per_layer'] / 1e9:.1f} |" for s, f in result["flops"].items()]
    return "\n".join(lines) + "\n"


def arguments() -> argparse.ArgumentParser:
    """The command line (`python -m benchmarks.real_architectures --help`); `device=...` may follow the flags."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", action="append", choices=SIZES, help="an architecture (repeat the flag for several; "
                        "default: small and medium)")
    parser.add_argument("--tracks", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="outputs/benchmarks")
    parser.add_argument("--skip", action="append", default=[], choices=["lumina_full"],
                        help="a stage left out (the full backward of medium needs ~20 GB)")
    parser.add_argument("overrides", nargs="*", help="device=cpu|cuda|cuda:N")
    return parser


def main(argv: list[str] | None = None) -> None:
    import os

    args = arguments().parse_intermixed_args(argv)
    args.sizes = args.sizes or ["small", "medium"]
    device = dict(o.split("=", 1) for o in args.overrides).get("device", "cpu")
    load = [os.getloadavg()[0]]
    profiles = []
    for size in args.sizes:
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            profiles.append(pool.submit(profile, size, args.tracks, args.threads, device, tuple(args.skip)).result())
        print(json.dumps(profiles[-1]), flush=True)
    load.append(os.getloadavg()[0])
    flops = {}
    for size in SIZES:
        decoder = OmegaConf.to_container(OmegaConf.load(CONF / "model" / f"musicgen-{size}.yaml"))["decoder"]
        flops[size] = forward_flops(decoder, FRAMES + decoder["num_codebooks"] - 1)
    command = command_line("benchmarks.real_architectures", argv)
    result = {"command": command, "load": load,
              "cores": os.cpu_count(), "profiles": profiles, "flops": flops}
    write(args.out, "real_architectures", result, to_markdown(result))


if __name__ == "__main__":
    main()
