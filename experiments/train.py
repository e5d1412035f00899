"""Train (or reuse from the cache) the configured generator and print its training record.

    python -m experiments.train                      # the embedded default
    python -m experiments.train model.train.epochs=8 # another recipe, cached separately
    python -m experiments.train data=chorales model=musictransformer train_app.curve=true   # + loss per checkpoint
"""

from __future__ import annotations

import json
from pathlib import Path

import hydra
from omegaconf import DictConfig

from lumina.configure import base_corpus, configure_runtime, generator_loader
from lumina.models.codes import encode_tracks
from lumina.models.training import checkpoint_curve
from lumina.runs.cli import one_line_errors


def summary(record: dict) -> str:
    """Steps, time and the loss per group (training tracks, left-out tracks, controls, each query kind)."""
    lines = [f"steps {record.get('steps')}, {record.get('train_seconds')} s of training"]
    lines += [f"  {group:>16}: {loss:.3f} nats" for group, loss in record.get("loss_by_group", {}).items()]
    return "\n".join(lines)


@hydra.main(config_path="../conf", config_name="train", version_base="1.3")
@one_line_errors("experiments.train")
def main(cfg: DictConfig) -> None:
    configure_runtime(cfg)
    manifest = base_corpus(cfg)
    generator = generator_loader(cfg, manifest)()
    print(f"generator: {generator.source}")
    print(summary(generator.record))
    print(json.dumps({k: generator.record.get(k) for k in ("seed", "identity", "threads", "torch")}))
    if cfg.train_app.curve:
        known = set(manifest.table["track_id"])
        ids = [t for t in generator.record["clip_losses"] if t in known]  # the tracks the record measured
        codes = encode_tracks(generator.codec, manifest, ids, Path(cfg.paths.cache), progress=False)
        descriptions = dict(zip(manifest.table["track_id"], manifest.table["description"], strict=True))
        for row in checkpoint_curve(generator, manifest, codes, descriptions, manifest.train_ids):
            print(f"{row.pop('checkpoint')}: " + ", ".join(f"{group} {loss:.3f}" for group, loss in row.items()))


if __name__ == "__main__":
    main()
