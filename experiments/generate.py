"""The generated-queries stage: clips the generator under attribution samples, written into the folder a corpus
includes as queries of kind `generated` (`data.generated_dir`; docs/corpus.md#queries).

    python -m experiments.generate                                       # the embedded default (16 clips of 12 s)
    python -m experiments.generate data=chorales model=musictransformer data.generated_dir=outputs/symbolic/generated

The generator is trained on the corpus without generated queries (or loaded), so every later stage keeps the same
model. A folder whose key (model identity, sampling settings, decoder) matches is reused; otherwise it is
written anew (lumina/models/generate.py).
"""

from __future__ import annotations

import time

import hydra
from omegaconf import DictConfig, OmegaConf

from lumina.configure import base_corpus, configure_runtime, generator_loader
from lumina.models.generate import GenerationSettings, generate_queries
from lumina.runs.cli import one_line_errors
from lumina.runs.errors import ParameterError


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
@one_line_errors("experiments.generate")
def main(cfg: DictConfig) -> None:
    configure_runtime(cfg)
    if not cfg.data.get("generated_dir"):
        raise ParameterError("data.generated_dir is null: name the folder the generated queries go to")
    started = time.perf_counter()
    manifest = base_corpus(cfg)
    generator = generator_loader(cfg, manifest)()
    settings = GenerationSettings.from_mapping({
        **OmegaConf.to_container(cfg.data.get("generated") or {}, resolve=True),
        **({"target_rms_dbfs": float(cfg.data.target_rms_dbfs)} if "target_rms_dbfs" in cfg.data else {})})
    folder = generate_queries(generator, manifest, cfg.data.generated_dir, settings, workers=int(cfg.threads),
                              progress=bool(cfg.progress))
    print(f"{settings.count} generated queries of model {generator.identity()} in {folder} "
          f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
