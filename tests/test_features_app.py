"""`python -m experiments.features`: Aria's features of a catalogue's training tracks and queries, computed ahead into
the cache the leaderboard reads (its settings' key), and not computed again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir

from aria.extract import cache_file, file_sha256
from experiments.leaderboard import settings_from
from lumina.data.audio import save_audio
from tests.tones import SR, tone

ROOT = Path(__file__).resolve().parents[1]


def test_features_app_fills_the_cache_the_leaderboard_reads(tmp_path):
    rows = []
    for split, folder, count in (("train", "train", 3), ("query", "queries", 2)):
        for i in range(count):
            name = f"{split}{i}"
            save_audio(tmp_path / folder / f"{name}.wav", tone([220 * 2 ** (i / 5), 330], 3.0, seed=i), SR)
            rows.append({"track_id": name, "description": "piano bach"})
    pd.DataFrame(rows).to_csv(tmp_path / "metadata.csv", index=False)
    overrides = ["data=folder", f"data.path={tmp_path / 'train'}", f"data.queries={tmp_path / 'queries'}",
                 f"data.metadata={tmp_path / 'metadata.csv'}", f"paths.outputs={tmp_path / 'out'}", "progress=false",
                 "aria.workers=1"]
    cmd = [sys.executable, "-m", "experiments.features", *overrides, f"hydra.run.dir={tmp_path / 'hydra'}"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "aria features of 5 tracks" in done.stdout
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("leaderboard", overrides=overrides)
    _, settings = settings_from(cfg)  # the leaderboard's feature settings: the cache it reads
    files = sorted(tmp_path.glob("*/*.wav"))
    cached = [cache_file(cfg.aria.cache, settings, file_sha256(f)) for f in files]
    assert len(files) == 5 and all(c.is_file() for c in cached)
    stamps = [c.stat().st_mtime_ns for c in cached]
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert [c.stat().st_mtime_ns for c in cached] == stamps, "nothing computed again"
    with np.load(cached[0]) as features:
        assert float(features["seconds"]) > 0 and len(features.files) > 5
