"""Train (or reuse from the cache) the configured generator and print its training record.

    python -m experiments.train                      # the embedded default
    python -m experiments.train model.train.epochs=8 # another recipe, cached separately
"""

from __future__ import annotations

import json

import hydra
from omegaconf import DictConfig

from lumina.cli import one_line_errors
from lumina.context import configure_runtime, generator_loader, load_corpus


def summary(record: dict) -> str:
    """Steps, time and the loss per group (training tracks, left-out tracks, controls, each query kind)."""
    lines = [f"steps {record.get('steps')}, {record.get('train_seconds')} s of training"]
    lines += [f"  {group:>16}: {loss:.3f} nats" for group, loss in record.get("loss_by_group", {}).items()]
    return "\n".join(lines)


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
@one_line_errors("experiments.train")
def main(cfg: DictConfig) -> None:
    configure_runtime(cfg)
    generator = generator_loader(cfg, load_corpus(cfg))()
    print(f"generator: {generator.source}")
    print(summary(generator.record))
    print(json.dumps({k: generator.record.get(k) for k in ("seed", "identity", "threads", "torch")}))


if __name__ == "__main__":
    main()
