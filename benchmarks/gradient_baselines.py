"""Benchmark: the gradient baselines on the embedded default, and the project's pipelines beside plain dattri.

    python -m benchmarks.gradient_baselines                                  # every method, then the comparison
    python -m benchmarks.gradient_baselines --methods trak gradcos --segments 48 --queries 8 threads=1

Part 1 (`runs`): each method's `run` exactly as `python -m experiments.run +method=NAME` calls it, with its
default options (overrides after the flags apply to every method), in a fresh process with an empty method
cache: wall seconds and peak resident memory (VmHWM of the process: imports, model and corpus included).
Part 2 (`dattri`): on the first `--segments` training segments and `--queries` queries of the embedded
default, each method's scores computed by the project's pipeline and by the plain dattri attributor with the
same settings (`TracInAttributor` for GradDot, Grad-Cos and TracIn, `TRAKAttributor`, `LoGraAttributor`,
`FactGraSSAttributor`), each in a fresh process, one after the other: wall and process CPU seconds (the
CPU-time ratio is the steadier one on a machine shared with other jobs), peak memory, the time ratios and the
largest score difference. LoGra and FactGraSS take every training segment: with fewer segments than
a layer's projected dimension their per-layer Fisher is singular, and float32 rounding differences between
any two implementations are amplified past comparison. Unlearning has no dattri counterpart. Writes
outputs/benchmarks/gradient_baselines.{json,md}.
"""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from benchmarks.output import write
from lumina.runs.provenance import command_line

CONF = Path(__file__).resolve().parents[1] / "conf"
METHODS = ("graddot", "gradcos", "tracin", "trak", "logra", "factgrass", "unlearning")
COMPARED = METHODS[:-1]


def peak_kb() -> int:
    """Peak resident memory of this process so far (Linux VmHWM), kB."""
    match = re.search(r"^VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    return int(match.group(1)) if match else -1


def setup(method: str, overrides: list[str]):
    """Config, manifest and generator loader of the embedded default with `+method=method` (in this process)."""
    from hydra import compose, initialize_config_dir

    from lumina.configure import base_corpus, configure_runtime, generator_loader

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"+method={method}", *overrides])
    configure_runtime(cfg)
    manifest = base_corpus(cfg)
    return cfg, manifest, generator_loader(cfg, manifest)


def context(cfg, manifest, load):
    """The method's context in the experiment `benchmark` (its cache: `<cache>/methods/benchmark/<method>`; the
    codes are shared with the model's)."""
    from omegaconf import OmegaConf

    from lumina.configure import method_context
    from lumina.runs.layout import Layout

    where = Layout(Path(cfg.paths.cache), Path(cfg.paths.runs), "benchmark")
    return method_context(manifest, OmegaConf.to_container(cfg.method, resolve=True), where, load,
                          seed=int(cfg.seed), threads=int(cfg.threads), progress=False)


def measure_run(method: str, overrides: list[str]) -> dict:
    """Part 1, in a fresh process: the method's run with an empty cache of its own."""
    from lumina.methods import get_method

    cfg, manifest, load = setup(method, overrides)
    ctx = context(cfg, manifest, load)
    shutil.rmtree(ctx.cache_dir, ignore_errors=True)
    ctx.generator  # noqa: B018 - load the (cached) model before the clock starts, as any second run would
    started = time.perf_counter()
    (result,) = get_method(method)(ctx)
    seconds = time.perf_counter() - started
    shutil.rmtree(ctx.cache_dir, ignore_errors=True)
    return {"method": method, "setting": result.setting, "seconds": round(seconds, 1), "peak_mb": peak_kb() // 1024,
            "shape": list(result.scores.shape), "threads": int(cfg.threads)}


def measure_pair(method: str, variant: str, overrides: list[str], segments: int, queries: int, out: str) -> dict:
    """Part 2, in a fresh process: `variant` ('project' or 'dattri') of `method` on the subset; scores to `out`."""
    import torch

    from lumina.methods.baselines import block_projected as blockif
    from lumina.methods.baselines.gradient_similarity import inner_product_scores
    from lumina.methods.baselines.items import batch_fields, loader
    from lumina.methods.baselines.trak import trak
    from lumina.methods.baselines.weights import load_weights, make_task, restored, weights_copy
    from lumina.methods.gradient import segment_corpus
    from lumina.models.capture import only_requiring_grad

    cfg, manifest, load = setup(method, overrides)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = context(cfg, manifest, load)
        generator = ctx.generator
        corpus = segment_corpus(ctx, generator)
        if method in ("logra", "factgrass"):
            segments = len(corpus.train)
        train, qs = corpus.train[:segments], corpus.queries[:queries]
        o = ctx.options.as_dict()
        batch = int(o["batch_size"])
        device = str(generator.device)
        started, cpu_started = time.perf_counter(), time.process_time()
        if method in ("logra", "factgrass"):
            layers = o["layers"]
            if variant == "project":
                scores, _ = blockif.block_projected(generator, method, train, qs, Path(tmp), layers=layers,
                                                    proj_dim=int(o["proj_dim"]), blowup=int(o.get("blowup", 4)),
                                                    hessian=o["hessian"], damping=o["damping"], batch_size=batch)
            else:
                from dattri.algorithm import FactGraSSAttributor, LoGraAttributor
                from dattri.task import AttributionTask

                module = generator.loss_module(mean=True)
                t = AttributionTask(loss_func=lambda model, b, device: model(**b).loss, model=module,
                                    checkpoints=[weights_copy(generator)], checkpoints_load_func=load_weights)
                extra = {"blowup_factor": int(o["blowup"])} if method == "factgrass" else {}
                cls = LoGraAttributor if method == "logra" else FactGraSSAttributor
                with torch.compiler.set_stance("force_eager"):
                    a = cls(task=t, layer_names=blockif.linear_layers(module, layers, generator.num_layers),
                            hessian=o["hessian"], damping=o["damping"], device=device, offload=device, cache_dir=tmp,
                            proj_dim=int(o["proj_dim"]), **extra)
                    a.cache(loader(generator, train, batch, as_dict=True))
                    scores = a.attribute(loader(generator, train, batch, as_dict=True),
                                         loader(generator, qs, batch, as_dict=True)).numpy()
        else:
            names = generator.parameter_group(o["parameters"])
            proj_dim, seed = int(o["proj_dim"]), int(o["proj_seed"])
            if method == "tracin":
                saved = generator.checkpoints()
                checkpoints, weights = [p for p, _ in saved], [lr for _, lr in saved]
            elif method == "trak":
                checkpoints, weights = [weights_copy(generator)] * int(o["ensemble"]), None
            else:
                checkpoints, weights = [weights_copy(generator)], [1.0]
            with restored(generator), only_requiring_grad(generator.loss_module(), names):
                if variant == "project" and method == "trak":
                    scores, _ = trak(generator, names, checkpoints[:1], [(0, m) for m in range(len(checkpoints))],
                                     train, qs, Path(tmp), proj_dim=proj_dim, regularization=float(o["regularization"]),
                                     proj_seed=seed, batch_size=batch)
                elif variant == "project":
                    scores = inner_product_scores(generator, names, checkpoints, weights, train, qs, Path(tmp),
                                                  normalize=method == "gradcos", proj_dim=proj_dim, proj_seed=seed,
                                                  batch_size=batch)
                else:
                    from dattri.algorithm import TracInAttributor, TRAKAttributor

                    t = make_task(generator.loss_module(), checkpoints, batch_fields(generator, train[0]))
                    projector = {"proj_dim": proj_dim if proj_dim > 0 else -1, "proj_max_batch_size": 32,
                                 "proj_seed": seed, "device": device,
                                 "proj_type": "normal" if proj_dim > 0 else "identity"}
                    if method == "trak":
                        d = sum(generator.trainable_parameters()[n].numel() for n in names)  # dattri's φ is P g / √D
                        a = TRAKAttributor(t, correct_probability_func=lambda params, data: data[0].sum() * 0.0,
                                           projector_kwargs=projector, regularization=float(o["regularization"]) / d)
                        a.cache(loader(generator, train, batch))
                        scores = a.attribute(loader(generator, qs, batch)).numpy()
                    else:
                        a = TracInAttributor(t, weight_list=torch.tensor(weights), normalized_grad=method == "gradcos",
                                             projector_kwargs=projector)
                        scores = a.attribute(loader(generator, train, batch), loader(generator, qs, batch)).numpy()
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    np.save(out, np.asarray(scores, dtype=np.float64))
    return {"method": method, "variant": variant, "seconds": round(seconds, 1), "cpu_seconds": round(cpu_seconds, 1),
            "peak_mb": peak_kb() // 1024,
            "segments": len(train), "queries": len(qs)}


def fresh(fn, *args) -> dict:
    """Run `fn(*args)` in a new process (spawned: nothing inherited) and return its result."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def to_markdown(result: dict) -> str:
    lines = ["# Gradient baselines on the embedded default", "", f"Command: `{result['command']}`", "",
             f"Threads: {result['threads']}; machine load (1-min average) before/after: {result['load']}.", ""]
    if result["runs"]:
        lines += ["## Each method's run (fresh process, empty method cache)", "",
                  "| method | setting | rows × queries | seconds | peak memory (MB) |", "|---|---|---|---|---|"]
        lines += [f"| {r['method']} | {r['setting']} | {r['shape'][0]} × {r['shape'][1]} | {r['seconds']} | "
                  f"{r['peak_mb']} |" for r in result["runs"]]
    if result["dattri"]:
        lines += ["", "## Project pipeline beside plain dattri (same settings, fresh process each)", "",
                  "| method | segments × queries | project s | dattri s | dattri / project | same, CPU time | "
                  "project MB | dattri MB | max abs diff | max abs score |", "|---" * 10 + "|"]
        lines += [f"| {c['method']} | {c['segments']} × {c['queries']} | {c['project_s']} | {c['dattri_s']} | "
                  f"{c['ratio']:.2f} | {c['cpu_ratio']:.2f} | {c['project_mb']} | {c['dattri_mb']} | "
                  f"{c['max_abs_diff']:.3g} | {c['max_abs_score']:.3g} |" for c in result["dattri"]]
    return "\n".join(lines) + "\n"


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--skip", nargs="*", default=[], choices=["runs", "dattri"], help="parts to leave out")
    parser.add_argument("--segments", type=int, default=24, help="training segments in the dattri comparison")
    parser.add_argument("--queries", type=int, default=4, help="queries in the dattri comparison")
    parser.add_argument("--out", default="outputs/benchmarks", help="folder for gradient_baselines.{json,md}")
    args, overrides = parser.parse_known_args(argv)
    load_before = load_average()
    runs = [] if "runs" in args.skip else [fresh(measure_run, m, overrides) for m in args.methods]
    for r in runs:
        print(f"{r['method']:>10}: {r['seconds']} s, {r['peak_mb']} MB")
    compared = []
    with tempfile.TemporaryDirectory() as tmp:
        for m in ([] if "dattri" in args.skip else [m for m in args.methods if m in COMPARED]):
            pair = {v: fresh(measure_pair, m, v, overrides, args.segments, args.queries, f"{tmp}/{m}-{v}.npy")
                    for v in ("project", "dattri")}
            ours, theirs = np.load(f"{tmp}/{m}-project.npy"), np.load(f"{tmp}/{m}-dattri.npy")
            compared.append({
                "method": m, "project_s": pair["project"]["seconds"], "dattri_s": pair["dattri"]["seconds"],
                "ratio": pair["dattri"]["seconds"] / max(pair["project"]["seconds"], 1e-9),
                "cpu_ratio": pair["dattri"]["cpu_seconds"] / max(pair["project"]["cpu_seconds"], 1e-9),
                "project_mb": pair["project"]["peak_mb"], "dattri_mb": pair["dattri"]["peak_mb"],
                "max_abs_diff": float(np.abs(ours - theirs).max()), "max_abs_score": float(np.abs(theirs).max()),
                "segments": pair["project"]["segments"], "queries": pair["project"]["queries"],
            })
            print(f"{m:>10}: project {compared[-1]['project_s']} s, dattri {compared[-1]['dattri_s']} s")
    from omegaconf import OmegaConf

    threads = OmegaConf.from_dotlist([o for o in overrides if o.startswith("threads=")]).get("threads", 2)
    result = {"command": command_line("benchmarks.gradient_baselines", argv or None),
              "threads": threads, "load": [load_before, load_average()], "segments": args.segments,
              "queries": args.queries, "runs": runs, "dattri": compared}
    write(args.out, "gradient_baselines", result, to_markdown(result))


if __name__ == "__main__":
    main()
