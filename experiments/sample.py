"""Windows sampled from the trained symbolic generator (docs/symbolic.md#the-corpus), the benchmark's generated
queries.

    python -m experiments.sample data=chorales model=musictransformer
    python -m experiments.run +method=trak data=chorales model=musictransformer \
        data.generated_dir=outputs/symbolic/generated      # the corpus with them as queries

The model is trained on the training windows only, so the corpus with generated queries keeps the same model.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from lumina.configure import configure_runtime, generator_loader, load_corpus
from lumina.models.music_transformer_recipe import write_generated


@hydra.main(config_path="../conf", config_name="sample", version_base="1.3")
def main(cfg: DictConfig) -> None:
    configure_runtime(cfg)
    manifest = load_corpus(cfg)
    generator = generator_loader(cfg, manifest)()
    s = cfg.sample
    paths = write_generated(generator, manifest, s.out, count=int(s.count), primer=int(s.primer),
                            length=int(s.length), seed=int(s.seed), temperature=float(s.temperature))
    print(f"{len(paths)} generated windows in {s.out} (from {generator.source})")


if __name__ == "__main__":
    main()
