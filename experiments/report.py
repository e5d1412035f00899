"""The HTML report of a study (conf/report.yaml; docs/report.md).

    python -m experiments.report                                  # outputs/report/index.html
    python -m experiments.report report.runs=outputs/runs/my-exp report.channel_similarity=false

Reads what was written, recomputing nothing: every run under `report.runs` (score matrices, each run's manifest,
LUMINA's `lumina_evidence.csv`, verdicts, Aria's `aria.json` and `aria_queries.csv`), every `ground_truth.csv`
under `report.ground_truth` with its `truth.json` (joined to a run only when their models are the same) and every
attribution report under `report.attributions` with its recorded provenance, and writes a static site into
`report.out`: a leaderboard, a page per method setting, a page per query with players and every method side by
side, and a page per attribution report, with the audio transcoded to Ogg Vorbis. Every page names this command.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from aria.channels import get_channel_set
from aria.features import FeatureSettings
from lumina.runs.cli import one_line_errors
from lumina.runs.provenance import command_line
from lumina.site import SiteOptions, build_site


@hydra.main(config_path="../conf", config_name="report", version_base="1.3")
@one_line_errors("experiments.report")
def main(cfg: DictConfig) -> None:
    r = cfg.report
    command = command_line("experiments.report")
    options = SiteOptions(top=int(r.top), sample_rate=int(r.sample_rate), quality=float(r.quality),
                          channel_similarity=bool(r.channel_similarity), headline_k=int(cfg.aria.headline_k),
                          workers=int(cfg.aria.workers), progress=bool(cfg.progress))
    features = FeatureSettings(**OmegaConf.to_container(cfg.aria.features, resolve=True))
    index = build_site(r.runs, r.out, truth_roots=list(r.ground_truth), attributions=r.attributions,
                       manifest=r.manifest, channel_set=get_channel_set(cfg.aria.channels), feature_settings=features,
                       aria_cache=cfg.aria.cache, skip=[cfg.paths.cache], options=options, command=command)
    print(f"report written to {index} (open it in a browser; no server needed)")


if __name__ == "__main__":
    main()
