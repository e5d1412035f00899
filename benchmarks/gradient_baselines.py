"""Benchmark: the gradient baselines on the embedded default, their shared gradient pass, and plain dattri.

    python -m benchmarks.gradient_baselines                                  # every part
    python -m benchmarks.gradient_baselines --methods graddot gradcos tracin trak logra factgrass --skip dattri
    python -m benchmarks.gradient_baselines --methods trak gradcos --segments 48 --queries 8 threads=1

Hydra overrides (`KEY=VALUE`, after the flags) apply to every method and pass. `--repeats N` runs every
measurement of parts 1 and 3 N times, one after the other, and keeps the fastest (least CPU time): on a machine
shared with other jobs a single run can be starved for minutes (docs/baselines.md's figures: the second command
above with `--repeats 2`, about 70 minutes).

Part 1 (`runs`): each method's `run` exactly as `python -m experiments.run +method=NAME` calls it, with its
default options, in a fresh process with an empty method cache: wall and process CPU seconds and peak resident
memory (VmHWM of the process: imports, model and corpus included); the scores are kept for part 3.
Part 2 (`dattri`): on the first `--segments` training segments and `--queries` queries of the embedded
default, each method's scores computed by the project's pipeline and by the plain dattri attributor with the
same settings (`TracInAttributor` for GradDot, Grad-Cos and TracIn, `TRAKAttributor`, `LoGraAttributor`,
`FactGraSSAttributor`), each in a fresh process, one after the other: wall and process CPU seconds (the
CPU-time ratio is the steadier one on a machine shared with other jobs), peak memory, the time ratios and the
largest score difference. LoGra and FactGraSS take every training segment: with fewer segments than
a layer's projected dimension their per-layer Fisher is singular, and float32 rounding differences between
any two implementations are amplified past comparison. Unlearning has no dattri counterpart.
Part 3 (`shared`, with the `--methods` among the six of the shared pass): `python -m experiments.run
+method=gradients` as it runs them with their default options, in a fresh process with an empty cache; the same
pass without LoGra and FactGraSS; and plain dattri's `LoGraAttributor` and `FactGraSSAttributor` on every
segment and query (fresh process each). Printed: the pass's time over the slowest method alone (part 1; goal ≤ 1.5),
LoGra's and FactGraSS's added cost inside the pass over plain dattri's time for the same two methods on the same
segments and queries (goal ≤ 0.5), the added cost measured two ways: the pass with them minus the pass without
them (two runs of a few minutes, so on a shared machine their difference is within the noise), and the time the
pass spends in their own steps (`BLOCK_STEPS`, timed inside the pass); every time in wall and CPU seconds; and each
method's largest score difference between the pass and its own run in part 1.
Writes outputs/benchmarks/gradient_baselines.{json,md}.
"""

from __future__ import annotations

import os

# As `python -m experiments.run` (experiments/__init__.py): OpenMP and OpenBLAS threads that sleep while they wait,
# set before torch loads here and inherited by the spawned processes (spinning threads slow every run under load).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import importlib
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
PASS_METHODS = COMPARED
"""The methods of the shared gradient pass (`lumina.methods.options.GRADIENT_PASS_METHODS`)."""
BLOCK = ("logra", "factgrass")
BLOCK_STEPS = (("lumina.methods.gradient", "set_up_compressors"),
               ("lumina.methods.baselines.gradient_pass", "sparsified_rows"),
               ("lumina.methods.gradient", "projected_rows"), ("lumina.methods.gradient", "block_scores"))
"""What LoGra and FactGraSS add to the shared pass, as the functions it calls for them and for nothing else."""


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


def measure_run(method: str, overrides: list[str], out: str) -> dict:
    """Part 1, in a fresh process: the method's run with an empty cache of its own; its scores saved to `out`."""
    from lumina.methods import get_method

    cfg, manifest, load = setup(method, overrides)
    ctx = context(cfg, manifest, load)
    shutil.rmtree(ctx.cache_dir, ignore_errors=True)
    ctx.generator  # noqa: B018 - load the (cached) model before the clock starts, as any second run would
    started, cpu_started = time.perf_counter(), time.process_time()
    (result,) = get_method(method)(ctx)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    shutil.rmtree(ctx.cache_dir, ignore_errors=True)
    np.save(out, result.scores)
    return {"method": method, "setting": result.setting, "seconds": round(seconds, 1),
            "cpu_seconds": round(cpu_seconds, 1), "peak_mb": peak_kb() // 1024, "shape": list(result.scores.shape),
            "threads": int(cfg.threads)}


def measure_pass(methods: list[str], overrides: list[str], out: str) -> dict:
    """Part 3, in a fresh process: `+method=gradients` deriving `methods` (their default options) with an empty
    cache; each method's scores saved as `out/<method>.npy`. Also timed inside the pass: LoGra's and FactGraSS's own
    steps (`BLOCK_STEPS`: compressor set-up, each batch's compression, the second stage, the preconditioned scores)."""
    from lumina.methods import get_method

    inside = {"seconds": 0.0, "cpu_seconds": 0.0}
    for module_name, name in BLOCK_STEPS:
        module = importlib.import_module(module_name)
        setattr(module, name, timed(getattr(module, name), inside))
    cfg, manifest, load = setup("gradients", [f"method.methods=[{','.join(methods)}]", *overrides])
    ctx = context(cfg, manifest, load)
    shutil.rmtree(ctx.cache_dir, ignore_errors=True)
    ctx.generator  # noqa: B018 - as in measure_run
    started, cpu_started = time.perf_counter(), time.process_time()
    results = get_method("gradients")(ctx)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    shutil.rmtree(ctx.cache_dir, ignore_errors=True)
    Path(out).mkdir(parents=True, exist_ok=True)
    for result in results:
        np.save(Path(out) / f"{result.method}.npy", result.scores)
    return {"methods": methods, "settings": {r.method: r.setting for r in results}, "seconds": round(seconds, 1),
            "cpu_seconds": round(cpu_seconds, 1), "peak_mb": peak_kb() // 1024,
            "block_steps": {k: round(v, 1) for k, v in inside.items()}, "shape": list(results[0].scores.shape)}


def timed(fn, total: dict):
    """`fn`, adding its wall and CPU seconds to `total`."""
    def wrapper(*args, **kwargs):
        started, cpu_started = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            total["seconds"] += time.perf_counter() - started
            total["cpu_seconds"] += time.process_time() - cpu_started
    return wrapper


def measure_pair(method: str, variant: str, overrides: list[str], segments: int, queries: int | None, out: str
                 ) -> dict:
    """Part 2, in a fresh process: `variant` ('project' or 'dattri') of `method` on the subset (`queries` None: every
    query; LoGra and FactGraSS: every segment); scores to `out`."""
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
        train, qs = corpus.train[:segments], corpus.queries[:queries]  # [:None]: every query
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


def fastest(repeats: int, fn, *args) -> dict:
    """The run of least CPU time among `repeats` runs of `fn(*args)`, each in a fresh process, one after the other."""
    return min((fresh(fn, *args) for _ in range(repeats)), key=lambda r: r["cpu_seconds"])


def fresh(fn, *args) -> dict:
    """Run `fn(*args)` in a new process (spawned: nothing inherited) and return its result."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def to_markdown(result: dict) -> str:
    lines = ["# Gradient baselines on the embedded default", "", f"Command: `{result['command']}`", "",
             f"Threads: {result['threads']}; machine load (1-min average) before/after: {result['load']}.", ""]
    if result["runs"]:
        lines += ["## Each method's run (fresh process, empty method cache)", "",
                  "| method | setting | rows × queries | seconds | CPU seconds | peak memory (MB) |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['method']} | {r['setting']} | {r['shape'][0]} × {r['shape'][1]} | {r['seconds']} | "
                  f"{r['cpu_seconds']} | {r['peak_mb']} |" for r in result["runs"]]
    if result["dattri"]:
        lines += ["", "## Project pipeline beside plain dattri (same settings, fresh process each)", "",
                  "| method | segments × queries | project s | dattri s | dattri / project | same, CPU time | "
                  "project MB | dattri MB | max abs diff | max abs score |", "|---" * 10 + "|"]
        lines += [f"| {c['method']} | {c['segments']} × {c['queries']} | {c['project_s']} | {c['dattri_s']} | "
                  f"{c['ratio']:.2f} | {c['cpu_ratio']:.2f} | {c['project_mb']} | {c['dattri_mb']} | "
                  f"{c['max_abs_diff']:.3g} | {c['max_abs_score']:.3g} |" for c in result["dattri"]]
    if result["shared"]:
        lines += shared_markdown(result["shared"])
    return "\n".join(lines) + "\n"


def shared_markdown(shared: dict) -> list[str]:
    """Part 3's tables: the runs, the two ratios against their goals, the score check."""
    lines = ["", "## The shared gradient pass (`+method=gradients`), fresh process each", "",
             "| run | seconds | CPU seconds | peak memory (MB) |", "|---|---|---|---|"]
    lines += [f"| {row['label']} | {row['seconds']} | {row['cpu_seconds']} | {row.get('peak_mb', '')} |"
              for row in shared["rows"]]
    lines += ["", "| ratio | wall | CPU | goal |", "|---|---|---|---|"]
    for r in shared["ratios"]:
        lines.append(f"| {r['ratio']} | {fmt(r['wall'])} | {fmt(r['cpu'])} | ≤ {r['goal']} "
                     f"({'met' if r['met'] else 'not met'}) |")
    if shared["scores"]:
        lines += ["", "| method | pass vs own run: max abs diff | max abs score | relative | bit for bit |",
                  "|---|---|---|---|---|"]
        lines += [f"| {c['method']} | {c['max_abs_diff']:.3g} | {c['max_abs_score']:.3g} | {c['relative']:.2g} | "
                  f"{'yes' if c['identical'] else 'no'} |" for c in shared["scores"]]
    return lines


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def measure_shared(methods: list[str], runs: list[dict], overrides: list[str], tmp: str, repeats: int) -> dict:
    """Part 3: the shared pass of `methods`, the pass without LoGra and FactGraSS, plain dattri's LoGra and
    FactGraSS on every segment and query (each the fastest of `repeats`); the ratios against the goals and the score
    check against part 1."""
    both = fastest(repeats, measure_pass, methods, overrides, f"{tmp}/pass")
    rows = [{"label": f"pass: {', '.join(methods)}", **both}]
    alone = {r["method"]: r for r in runs if r["method"] in methods}
    ratios = []
    if set(alone) == set(methods):
        slowest = max(alone.values(), key=lambda r: r["seconds"])
        slowest_cpu = max(alone.values(), key=lambda r: r["cpu_seconds"])
        ratios.append({"ratio": f"pass / slowest alone (wall: {slowest['method']}, CPU: {slowest_cpu['method']})",
                       "goal": 1.5, "wall": both["seconds"] / slowest["seconds"],
                       "cpu": both["cpu_seconds"] / slowest_cpu["cpu_seconds"]})
    block = [m for m in methods if m in BLOCK]
    if block and len(block) < len(methods):
        rest = [m for m in methods if m not in BLOCK]
        without = fastest(repeats, measure_pass, rest, overrides, f"{tmp}/without")
        rows.append({"label": f"pass without {' and '.join(block)}", **without})
        plain = [fastest(repeats, measure_pair, m, "dattri", overrides, 0, None, f"{tmp}/{m}-dattri-all.npy")
                 for m in block]
        rows += [{"label": f"plain dattri {p['method']}: {p['segments']} × {p['queries']}", **p} for p in plain]
        added = both["seconds"] - without["seconds"], both["cpu_seconds"] - without["cpu_seconds"]
        steps = both["block_steps"]["seconds"], both["block_steps"]["cpu_seconds"]
        rows.append({"label": f"added cost of {' and '.join(block)}: the two passes' difference",
                     "seconds": round(added[0], 1), "cpu_seconds": round(added[1], 1)})
        rows.append({"label": f"added cost of {' and '.join(block)}: their own steps, timed inside the pass",
                     "seconds": steps[0], "cpu_seconds": steps[1]})
        plain_s, plain_cpu = sum(p["seconds"] for p in plain), sum(p["cpu_seconds"] for p in plain)
        ratios.append({"ratio": f"added cost (difference) / plain dattri ({' + '.join(block)})", "goal": 0.5,
                       "wall": added[0] / plain_s, "cpu": added[1] / plain_cpu})
        ratios.append({"ratio": f"added cost (own steps) / plain dattri ({' + '.join(block)})", "goal": 0.5,
                       "wall": steps[0] / plain_s, "cpu": steps[1] / plain_cpu})
    for r in ratios:
        r["met"] = r["wall"] <= r["goal"] and r["cpu"] <= r["goal"]
    scores = []
    for m in [m for m in methods if m in alone]:
        ours, theirs = np.load(f"{tmp}/pass/{m}.npy"), np.load(f"{tmp}/{m}-run.npy")
        diff, scale = float(np.abs(ours - theirs).max()), float(np.abs(theirs).max())
        scores.append({"method": m, "max_abs_diff": diff, "max_abs_score": scale, "relative": diff / scale,
                       "identical": ours.tobytes() == theirs.tobytes()})
    return {"rows": rows, "ratios": ratios, "scores": scores}


def configuration(overrides: list[str]):
    """The Hydra configuration the overrides apply to: `conf/config.yaml` with the shared pass's method (its
    segment options are every gradient method's)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=["+method=gradients", *overrides])


def arguments() -> argparse.ArgumentParser:
    """The command line (`python -m benchmarks.gradient_baselines --help`); Hydra overrides follow the flags (not
    right after `--methods` or `--skip`, which take several words)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--skip", nargs="*", default=[], choices=["runs", "dattri", "shared"],
                        help="parts to leave out")
    parser.add_argument("--segments", type=int, default=24, help="training segments in the dattri comparison")
    parser.add_argument("--queries", type=int, default=4, help="queries in the dattri comparison")
    parser.add_argument("--repeats", type=int, default=1, help="parts 1 and 3: runs of each measurement, the "
                                                                   "fastest (least CPU time) kept")
    parser.add_argument("--out", default="outputs/benchmarks", help="folder for gradient_baselines.{json,md}")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every method and pass, e.g. threads=1")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = arguments().parse_intermixed_args(argv)
    overrides = list(args.overrides)
    configuration(overrides)  # an unknown key fails here, before any measurement
    load_before = load_average()
    compared, shared = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = [] if "runs" in args.skip else [fastest(args.repeats, measure_run, m, overrides, f"{tmp}/{m}-run.npy")
                                               for m in args.methods]
        for r in runs:
            print(f"{r['method']:>10}: {r['seconds']} s ({r['cpu_seconds']} s CPU), {r['peak_mb']} MB")
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
        in_pass = [m for m in args.methods if m in PASS_METHODS]
        if "shared" not in args.skip and in_pass:
            shared = measure_shared(in_pass, runs, overrides, tmp, args.repeats)
    from omegaconf import OmegaConf

    threads = OmegaConf.from_dotlist([o for o in overrides if o.startswith("threads=")]).get("threads", 2)
    result = {"command": command_line("benchmarks.gradient_baselines", argv or None),
              "threads": threads, "load": [load_before, load_average()], "segments": args.segments,
              "queries": args.queries, "repeats": args.repeats, "runs": runs, "dattri": compared,
              "shared": shared}
    write(args.out, "gradient_baselines", result, to_markdown(result))


if __name__ == "__main__":
    main()
