"""LUMINA causal verification (docs/lumina.md#causal-verification) on the embedded default: ablate, retrain,
re-sign, compare.

    python -m experiments.causal_verification                           # 8 queries, Channel P
    python -m experiments.causal_verification causal.queries=4 causal.channel=M

For each chosen query: remove its top-attributed training song, retrain the embedded model without it
(cached), sign the query and the training songs under that model, and pass when the query's cosine to the
removed song dropped by at least `causal.sigmas` times the query's population std of cosines; the
same with a random mid-ranked song removed as the control; and, in that control's model, the top song's own
drop (`top_kept`: what retraining alone does to a song ranked first). Writes
`<paths.results>/causal_verification.md` and `.csv` after every query, so an interrupted run leaves its table
so far (and a rerun reuses every retrained model and signature). The library: `lumina.methods.lumina.ablation`.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from lumina.configure import build_context, configure_runtime
from lumina.methods.lumina.ablation import causal_check
from lumina.runs.cli import one_line_errors
from lumina.runs.provenance import command_line


def verify(cfg: DictConfig) -> list[dict]:
    """Run the causal verification the config describes; returns one row per ablation and measured song."""
    configure_runtime(cfg)
    causal = cfg.causal
    return causal_check(build_context(cfg), channel=str(causal.channel), queries=int(causal.queries),
                        sigmas=float(causal.sigmas), seed=int(causal.seed), results=Path(cfg.paths.results),
                        command=command_line("experiments.causal_verification"))


@hydra.main(config_path="../conf", config_name="causal_verification", version_base="1.3")
@one_line_errors("experiments.causal_verification")
def main(cfg: DictConfig) -> None:
    verify(cfg)


if __name__ == "__main__":
    main()
