"""Every model seed's whole study, each a task of the parallel map (docs/replication.md#running).

    python -m experiments.seeds                                  # seeds 0 1 2, one after the other
    python -m experiments.seeds seeds.seeds=[1,2] parallel=ray   # as Ray tasks (a cluster: one study a node)

Each task runs `scripts/study.sh SEED` (resumable per stage) with its output in `seeds.logs/seed<N>.log`, and
returns its exit status and wall seconds; a failed seed does not stop the others, and the app exits non-zero
if any failed. On a cluster every node must reach this checkout and `paths.results` on a shared filesystem.
"""

from __future__ import annotations

import subprocess
import time
from functools import partial
from pathlib import Path

import hydra
from omegaconf import DictConfig

from execution import parallel_map
from lumina.configure import configure_parallel
from lumina.runs.cli import one_line_errors
from lumina.runs.errors import ParameterError

STUDY = Path(__file__).resolve().parents[1] / "scripts" / "study.sh"


def run_study(seed: int, logs: str, study: str = str(STUDY)) -> dict:
    """Run one seed's study (`study SEED`, from the project's root) to its end: {seed, returncode, seconds, log}."""
    log = Path(logs) / f"seed{seed}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log.open("a") as out:
        code = subprocess.run([study, str(seed)], cwd=STUDY.parents[1], stdout=out, stderr=subprocess.STDOUT,
                              check=False).returncode
    return {"seed": seed, "returncode": code, "seconds": round(time.perf_counter() - started), "log": str(log)}


@hydra.main(config_path="../conf", config_name="seeds", version_base="1.3")
@one_line_errors("experiments.seeds")
def main(cfg: DictConfig) -> None:
    configure_parallel(cfg)
    options = cfg.seeds
    seeds = [int(s) for s in options.seeds]
    if not seeds:
        raise ParameterError("seeds.seeds is empty: name the model seeds to study, e.g. seeds.seeds=[0,1,2]")
    failed = []
    for result in parallel_map(partial(run_study, logs=str(Path(options.logs).resolve())), seeds,
                               workers=int(options.workers), cpus=float(options.cpus_per_study)):
        status = "done" if result["returncode"] == 0 else f"FAILED (exit {result['returncode']})"
        print(f"seed {result['seed']}: {status} in {result['seconds']} s; log {result['log']}", flush=True)
        if result["returncode"] != 0:
            failed.append(result["seed"])
    if failed:
        raise SystemExit(f"experiments.seeds: the studies of seeds {failed} failed; their logs say where "
                         "(rerun to resume them)")


if __name__ == "__main__":
    main()
