"""A tiny synthetic study for the report's tests, written in well under a second: a manifest of short tones,
method runs (one segment-level with per-query verdicts and two seeds, one track-level without verdicts),
Aria's diagnoses written by hand, ground truth of the runs' model and of another, and an attribution report.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from lumina.runs.score_matrix import ScoreMatrix, write_run

SR = 16000
TRAIN = [f"t{i:04d}" for i in range(6)]
QUERIES = ["q_near_copy_00", "q_held_out_00"]
CHANNELS = ("rhythm", "harmony", "timbre")
MODEL = {"name": "embedded", "kind": "embedded", "seed": 0, "lm": {"num_layers": 2}}
MANIFEST_SHA = "ab" * 32


def tone(freq: float, seconds: float = 2.0, pulse: float = 2.0) -> np.ndarray:
    """A pulsed sine (n,): pitch `freq`, `pulse` notes per second."""
    t = np.arange(int(seconds * SR)) / SR
    envelope = 0.5 * (1 + np.sign(np.sin(2 * np.pi * pulse * t)))
    return (0.3 * envelope * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_manifest(root: Path) -> Path:
    """Six training tones (each its own pitch and pulse rate), a near-copy query (the same audio as t0001, its
    planted source), a held-out query and a control."""
    audio = root / "corpus" / "audio"
    audio.mkdir(parents=True)
    rows = []
    freqs = {t: 220.0 * 2 ** (i / 5) for i, t in enumerate(TRAIN)}
    pulses = {t: 1.0 + 0.75 * i for i, t in enumerate(TRAIN)}
    for track, split, freq, pulse, kind, sources in [
        *[(t, "train", freqs[t], pulses[t], "", "") for t in TRAIN],
        ("q_near_copy_00", "query", freqs["t0001"], pulses["t0001"], "near_copy", "t0001"),
        ("q_held_out_00", "query", 1000.0, 3.0, "held_out", ""),
        ("c0000", "control", 150.0, 2.0, "", ""),
    ]:
        sf.write(audio / f"{track}.wav", tone(freq, pulse=pulse), SR)
        rows.append({"track_id": track, "split": split, "path": f"audio/{track}.wav", "duration_s": 2.0,
                     "sample_rate": SR, "description": f"tone {freq:.0f} Hz", "query_kind": kind,
                     "source_ids": sources, "variant": "copy" if kind == "near_copy" else ""})
    path = root / "corpus" / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def diagnostics(method: str, setting: str, rho1: float, z: tuple[float, float, float]) -> dict:
    """An `aria.json` with the fields the report reads: reliability, energy, collapse, homogeneity per K."""
    channels = {c: {"z_mean": v, "pos": 0.5, "sig": 0.5, "n": 2} for c, v in zip(CHANNELS, z, strict=True)}
    stage = {str(k): {"channels": channels, "features": {}} for k in (2, 3)}
    return {"method": method, "setting": setting, "collapsed": rho1 >= 0.78, "ks": [2, 3], "headline_k": 3,
            "reliability": {"rho1": rho1, "rho2_5": 1 - rho1, "concentration": 0.1, "inter_query_corr": 0.3},
            "energy": [rho1, 1 - rho1], "homogeneity": {"original": stage, "residual": stage}}


def write_run_folder(runs: Path, experiment: str, method: str, setting: str, matrix: ScoreMatrix, rho1: float,
                     verdicts: dict[str, tuple[bool, str]] | None) -> Path:
    """A run folder with `scores.h5`, `run.json`, `aria.json` and `aria_queries.csv` (with the verdict columns
    when `verdicts` is given)."""
    folder = write_run(runs / experiment / method / setting, {"method": method, "setting": setting,
                                                              "provenance": matrix.provenance}, matrix)
    (folder / "aria.json").write_text(json.dumps(diagnostics(method, setting, rho1, (0.5, 1.5, -0.2))))
    rows = [{"query_id": q, "stage": "original", "k": 3, "rhythm": 0.1 * i, "harmony": 1.0, "timbre": -1.0 + i}
            for i, q in enumerate(matrix.query_ids)]
    table = pd.DataFrame(rows)
    if verdicts is not None:
        table["attributable"] = [verdicts[q][0] for q in table["query_id"]]
        table["abstain_reason"] = [verdicts[q][1] for q in table["query_id"]]
    table.to_csv(folder / "aria_queries.csv", index=False)
    return folder


def provenance(manifest: Path, seed: int) -> dict:
    return {"manifest": str(manifest), "manifest_sha256": MANIFEST_SHA, "catalogue_key": "cafe0123456789",
            "data": {"name": "tiny"}, "model": {**MODEL, "seed": seed}, "model_hash": f"hash{seed}",
            "model_id": "/models/tiny", "seed": seed, "command": "python -m experiments.run +method=graddot"}


def segment_scores(seed: int) -> np.ndarray:
    """(12, 2) scores of two 1-s segments per training track: the near-copy query's best track is t0001
    (second segment, starting at 1 s), the held-out query's is t0004 (first segment)."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(0.0, 0.1, size=(12, 2))
    scores[3, 0] = 2.0  # t0001, segment at 1 s
    scores[8, 1] = 1.5  # t0004, segment at 0 s
    return scores


def write_study(root: Path) -> dict:
    """The whole synthetic study under `root`; returns its paths (runs, manifest, truth folders, reports)."""
    manifest = write_manifest(root)
    runs = root / "outputs" / "runs"
    verdicts = {"q_near_copy_00": (True, "top score above the reference queries"),
                "q_held_out_00": (False, "no training song stands out")}
    rows = [t for t in TRAIN for _ in range(2)]
    for seed in (0, 1):
        matrix = ScoreMatrix(segment_scores(seed), rows, QUERIES, "graddot", "raw",
                             segment_start_s=np.tile([0.0, 1.0], 6), provenance=provenance(manifest, seed))
        write_run_folder(runs, f"tiny-cafe0123-embedded-s{seed}", "graddot", "raw", matrix, 0.40 + 0.1 * seed,
                         verdicts)
    track = np.linspace(1.0, 0.0, 6)[:, None] * np.array([[1.0, -1.0]])
    embedding = ScoreMatrix(track, TRAIN, QUERIES, "embedding", "chroma", provenance=provenance(manifest, 0))
    write_run_folder(runs, "tiny-cafe0123-embedded-s0", "embedding", "chroma", embedding, 0.9, None)
    write_run(runs / "tiny-cafe0123-embedded-s0" / "clap" / "default",
              {"method": "clap", "setting": "default", "status": "not configured", "reason": "no checkpoint",
               "provenance": provenance(manifest, 0)})

    truths = {}
    for name, plan_model, rho1 in (("gt_same", MODEL, 0.40), ("gt_other", {**MODEL, "lm": {"num_layers": 4}}, 0.4)):
        folder = root / "outputs" / name
        folder.mkdir(parents=True)
        plan = folder / "study"
        plan.mkdir()
        (plan / "plan.json").write_text(json.dumps({"manifest_sha256": MANIFEST_SHA, "model": plan_model}))
        (folder / "planted_influence.md").write_text(f"4 subset models (study `{plan}`).\n")
        pd.DataFrame([{"method": "graddot", "setting": "raw", "lds": 0.25 if name == "gt_same" else -0.5,
                       "lds_ci_low": 0.1, "lds_ci_high": 0.4, "near_copy_hit_at_10": 1.0, "rho1": rho1,
                       "n_models": 4, "command": "python -m experiments.ground_truth"}]).to_csv(
            folder / "ground_truth.csv", index=False)
        pd.DataFrame([{"method": "graddot", "setting": "raw", "query_id": q, "lds": v}
                      for q, v in zip(QUERIES, (0.6, -0.1), strict=True)]).to_csv(folder / "lds_queries.csv",
                                                                                   index=False)
        truths[name] = folder

    reports = root / "outputs" / "reports" / "q_near_copy_00"
    reports.mkdir(parents=True)
    channel_rows = [{"rank": r + 1, "track_id": t, "cosine": 0.9 - 0.1 * r, "kernel": 0.5, "sts": 2.0 - r,
                     "z_noise": 3.0 - r, "confidence": 0.99, "lip_percent": 80.0, "qualified": r == 0,
                     "share": 1.0 if r == 0 else 0.0, "tier": "strong" if r == 0 else "noise"}
                    for r, t in enumerate(TRAIN)]
    channel = {"attributable": True, "reference_z": 2.5, "abstain_reason": "", "mu": 0.5, "sigma": 0.2, "mu0": 0.4,
               "sigma0": 0.1, "tau": 0.5, "n_qualified": 1, "rows": channel_rows}
    refused = {**channel, "attributable": False, "reference_z": 0.4, "n_qualified": 0,
               "abstain_reason": "no training song stands out: the top cosine is 0.40 reference sd above",
               "rows": [{**r, "qualified": False, "share": 0.0, "tier": "noise"} for r in channel_rows]}
    (reports / "report.json").write_text(json.dumps({
        "schema_version": 2, "audio": str(root / "corpus" / "audio" / "q_near_copy_00.wav"),
        "database": "/db/signatures.h5", "description": "", "model_id": "/models/tiny", "model_hash": "hash0",
        "n_train": 6, "timing": {"extraction_s": 0.5, "similarity_ms": 0.2}, "scoring": {"gate": "sts1"},
        "abstention": {"rule": "reference_z", "threshold": 2.02, "references": "control tracks", "n_references": 10},
        "channels": {"P": channel, "M": refused}, "skipped": []}))
    return {"runs": runs, "manifest": manifest, "outputs": root / "outputs", "truths": truths,
            "reports": root / "outputs" / "reports"}
