"""Aria diagnostics of every run of an experiment, and the leaderboard (conf/leaderboard.yaml).

    python -m experiments.leaderboard                                   # the embedded default's runs
    python -m experiments.leaderboard leaderboard.runs=outputs/runs/my-exp aria.manifest=/data/manifest.csv
    python -m experiments.leaderboard aria.channels=audio                # a channel set of aria.channels

Writes `aria.json` and `aria_queries.csv` into each run folder and `leaderboard.{csv,md,tex}` and
`figures/*.png` into `leaderboard.results`; every output records this command.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from aria.channels import get_channel_set
from aria.diagnose import AriaSettings
from aria.errors import AriaError
from aria.features import FeatureSettings
from aria.leaderboard import run_leaderboard
from lumina.configure import experiment_runs
from lumina.runs.cli import one_line_errors
from lumina.runs.provenance import command_line


def settings_from(cfg: DictConfig) -> tuple[AriaSettings, FeatureSettings]:
    """The diagnostics and feature settings of the `aria` config group."""
    a = cfg.aria
    f = a.features
    return (
        AriaSettings(
            normalization=a.normalization, ks=tuple(a.ks), headline_k=int(a.headline_k), n_groups=int(a.n_groups),
            seed=int(a.seed), sig_z=float(a.sig_z), collapse_rho1=float(a.collapse_rho1),
            collapse_concentration=float(a.collapse_concentration), n_components=int(a.n_components),
            confound_columns=tuple(a.confound_columns),
        ),
        FeatureSettings(
            sample_rate=int(f.sample_rate), beat_tracker=f.beat_tracker, beat_range_s=tuple(f.beat_range_s),
            onset_range_s=tuple(f.onset_range_s), n_bins=int(f.n_bins), n_mfcc=int(f.n_mfcc),
            n_cqt_bins=int(f.n_cqt_bins), hop_length=int(f.hop_length),
            min_beat_activation=float(f.min_beat_activation),
        ),
    )


@hydra.main(config_path="../conf", config_name="leaderboard", version_base="1.3")
@one_line_errors("experiments.leaderboard")
def main(cfg: DictConfig) -> None:
    settings, feature_settings = settings_from(cfg)
    command = command_line("experiments.leaderboard")
    runs = cfg.leaderboard.runs or experiment_runs(cfg)
    try:
        table = run_leaderboard(
            runs, cfg.leaderboard.results, settings=settings, feature_settings=feature_settings,
            cache_dir=cfg.aria.cache, manifest=cfg.aria.manifest, workers=int(cfg.aria.workers),
            progress=bool(cfg.progress), command=command, channel_set=get_channel_set(cfg.aria.channels),
        )
    except AriaError as err:
        sys.exit(f"leaderboard: {err}")
    print(table.drop(columns=["command"]).to_string(index=False))
    print(f"leaderboard written to {cfg.leaderboard.results}/leaderboard.{{csv,md,tex}}")


if __name__ == "__main__":
    main()
