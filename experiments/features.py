"""Aria's audio features of the corpus's training tracks and queries (its generated queries too, once generated),
computed ahead into the cache the leaderboard and the report read (`aria.cache`, keyed by each file's content and
`aria.features`).

    python -m experiments.features                        # the embedded default
    python -m experiments.features aria.workers=1          # one process (make demo runs it beside the training)

Builds the corpus first when it is not built yet (an app building it at the same time waits for the other's
build, then reuses it). Features already cached are not computed again.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from aria.extract import extract_features
from aria.features import FeatureSettings
from lumina.configure import base_corpus, configure_runtime, with_generated
from lumina.data.generated import RECORD
from lumina.runs.cli import one_line_errors


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
@one_line_errors("experiments.features")
def main(cfg: DictConfig) -> None:
    configure_runtime(cfg)
    manifest = base_corpus(cfg)
    generated = cfg.data.get("generated_dir")
    if generated and (Path(generated) / RECORD).is_file():
        manifest = with_generated(cfg, manifest)
    table = manifest.table
    ids = table.loc[table["split"].isin(["train", "query"]), "track_id"].tolist()  # not the control tracks
    settings = FeatureSettings(**OmegaConf.to_container(cfg.aria.features, resolve=True))
    features = extract_features([manifest.path_of(t) for t in ids], ids, settings, cfg.aria.cache,
                             workers=int(cfg.aria.workers), progress=bool(cfg.progress))
    print(f"aria features of {len(ids)} tracks ({manifest.path.name}) in {cfg.aria.cache}/features/{settings.key}: "
          f"{features.seconds.sum():.0f} s of extraction in all")


if __name__ == "__main__":
    main()
