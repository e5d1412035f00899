"""A tiny synthetic study for the report's tests, written in well under a second: a manifest of short tones (and a
second manifest of the same tracks with other descriptions, named by one run), method runs written by the run
writer (one segment-level with per-query verdicts and two seeds, one track-level without verdicts, one LUMINA
setting with its evidence table), Aria's diagnoses written by hand, ground truth of the runs' model (catalogue key
matching, manifest SHA-256 not), of another model and one without `truth.json`, and an attribution report written
by its writer.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from groundtruth.identity import write_truth_identity
from groundtruth.study import Study
from lumina.methods.lumina.attribution import write_report
from lumina.runs.provenance import Provenance, stamp
from lumina.runs.score_matrix import ScoreMatrix, write_run

SR = 16000
TRAIN = [f"t{i:04d}" for i in range(6)]
QUERIES = ["q_near_copy_00", "q_held_out_00"]
CHANNELS = ("rhythm", "harmony", "timbre")
MODEL = {"name": "embedded", "kind": "embedded", "seed": 0, "lm": {"num_layers": 2}}
MANIFEST_SHA = "ab" * 32
CATALOGUE = "cafe0123456789"
EXPERIMENT = "tiny-cafe0123-embedded-seed{}"
"""The runs' study keys (`lumina.runs.layout.experiment_name`); the report's study is `tiny-cafe0123-embedded`."""
ATTRIBUTE_COMMAND = "python -m experiments.attribute corpus/audio/q_near_copy_00.wav"


def tone(freq: float, seconds: float = 2.0, pulse: float = 2.0) -> np.ndarray:
    """A pulsed sine (n,): pitch `freq`, `pulse` notes per second."""
    t = np.arange(int(seconds * SR)) / SR
    envelope = 0.5 * (1 + np.sign(np.sin(2 * np.pi * pulse * t)))
    return (0.3 * envelope * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_manifest(root: Path) -> Path:
    """Six training tones (each its own pitch and pulse rate), a near-copy query (the same audio as t0001, its
    planted source), a held-out query and a control; and `manifest_b.csv`, the same tracks described "… (b)"."""
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
    pd.DataFrame(rows).assign(description=lambda t: t["description"] + " (b)").to_csv(path.with_name("manifest_b.csv"),
                                                                                      index=False)
    return path


def diagnostics(method: str, setting: str, rho1: float, z: tuple[float, float, float]) -> dict:
    """An `aria.json` with the fields the report reads: reliability, energy, collapse, homogeneity per K."""
    channels = {c: {"z_mean": v, "pos": 0.5, "sig": 0.5, "n": 2} for c, v in zip(CHANNELS, z, strict=True)}
    stage = {str(k): {"channels": channels, "features": {}} for k in (2, 3)}
    return {"method": method, "setting": setting, "collapsed": rho1 >= 0.78, "ks": [2, 3], "headline_k": 3,
            "reliability": {"rho1": rho1, "rho2_5": 1 - rho1, "concentration": 0.1, "inter_query_corr": 0.3},
            "energy": [rho1, 1 - rho1], "homogeneity": {"original": stage, "residual": stage}}


def write_run_folder(runs: Path, experiment: str, matrix: ScoreMatrix, provenance: Provenance, rho1: float,
                     verdicts: dict[str, tuple[bool, str]] | None) -> Path:
    """A run folder written by the run writer (`scores.h5`, `run.json`, the matrix's tables), with `aria.json` and
    `aria_queries.csv` (with the verdict columns when `verdicts` is given)."""
    folder = write_run(runs / experiment / matrix.method / matrix.setting,
                       {"method": matrix.method, "setting": matrix.setting}, provenance, matrix)
    (folder / "aria.json").write_text(json.dumps(diagnostics(matrix.method, matrix.setting, rho1, (0.5, 1.5, -0.2))))
    rows = [{"query_id": q, "stage": "original", "k": 3, "rhythm": 0.1 * i, "harmony": 1.0, "timbre": -1.0 + i}
            for i, q in enumerate(matrix.query_ids)]
    table = pd.DataFrame(rows)
    if verdicts is not None:
        table["attributable"] = [verdicts[q][0] for q in table["query_id"]]
        table["abstain_reason"] = [verdicts[q][1] for q in table["query_id"]]
    table.to_csv(folder / "aria_queries.csv", index=False)
    return folder


def provenance(manifest: Path, seed: int, method: str = "graddot") -> Provenance:
    """What `lumina.configure.run_provenance` stamps for a run of seed `seed` on `manifest` (the model under
    attribution among the upstream artefacts)."""
    return stamp(command=f"python -m experiments.run +method={method} seed={seed}", config={"name": method},
                 upstream={"manifest": MANIFEST_SHA, "catalogue": CATALOGUE, "model": f"hash{seed}"},
                 study=EXPERIMENT.format(seed), manifest=str(manifest), manifest_sha256=MANIFEST_SHA,
                 catalogue_key=CATALOGUE, generated_key="", seed=seed, threads=1, data={"name": "tiny"},
                 model={**MODEL, "seed": seed})


def lumina_evidence() -> pd.DataFrame:
    """An evidence table as LUMINA writes it (query, track, channel, tier, confidence, share) for both queries
    and channels: (2 × 2 × 6) rows with values no formatting rounds alike."""
    rows = []
    for q, query in enumerate(QUERIES):
        for channel in ("P", "M"):
            for i, track in enumerate(TRAIN):
                rows.append({"query_id": query, "track_id": track, "channel": channel,
                             "tier": ("definitive", "qualified", "noise")[i % 3],
                             "confidence": round(0.5 + 0.0731 * i + 0.011 * q + (0.002 if channel == "M" else 0), 4),
                             "share": round(0.4 - 0.061 * i + 0.03 * q, 4) if i < 4 else 0.0})
    return pd.DataFrame(rows)


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
                             segment_start_s=np.tile([0.0, 1.0], 6), provenance={"model_id": "/models/tiny"})
        write_run_folder(runs, EXPERIMENT.format(seed), matrix, provenance(manifest, seed), 0.40 + 0.1 * seed,
                         verdicts)
    track = np.linspace(1.0, 0.0, 6)[:, None] * np.array([[1.0, -1.0]])
    embedding = ScoreMatrix(track, TRAIN, QUERIES, "embedding", "chroma")
    write_run_folder(runs, EXPERIMENT.format(0), embedding, provenance(manifest.with_name("manifest_b.csv"), 0,
                                                                       "embedding"), 0.9, None)
    lumina = ScoreMatrix(np.linspace(0.0, 1.0, 6)[:, None] * np.array([[1.0, 0.5]]), TRAIN, QUERIES, "lumina",
                         "lumina-PM", settings={"channel": "PM"},
                         provenance={"model_id": "/models/tiny", "model_hash": "hash0"},
                         tables={"lumina_evidence": lumina_evidence()})
    write_run_folder(runs, EXPERIMENT.format(0), lumina, provenance(manifest, 0, "lumina"), 0.3, None)
    write_run(runs / EXPERIMENT.format(0) / "clap" / "default",
              {"method": "clap", "setting": "default", "status": "not configured", "reason": "no checkpoint"},
              provenance(manifest, 0, "clap"))

    truths = {}
    for name, plan_model, rho1 in (("gt_same", MODEL, 0.40), ("gt_other", {**MODEL, "lm": {"num_layers": 4}}, 0.4),
                                   ("gt_legacy", MODEL, 0.40)):
        folder = root / "outputs" / name
        folder.mkdir(parents=True)
        plan = folder / "study"
        plan.mkdir()
        # the manifest's SHA-256 moved on with its path columns since the study was planned; its catalogue did not
        (plan / "plan.json").write_text(json.dumps({"manifest_sha256": "cd" * 32, "model": plan_model}))
        (folder / "planted_influence.md").write_text(f"4 subset models (study `{plan}`).\n")
        pd.DataFrame([{"method": "graddot", "setting": "raw", "lds": {"gt_same": 0.25}.get(name, -0.5),
                       "lds_ci_low": 0.1, "lds_ci_high": 0.4, "near_copy_hit_at_10": 1.0, "rho1": rho1,
                       "n_models": 4, "command": "python -m experiments.ground_truth"}]).to_csv(
            folder / "ground_truth.csv", index=False)
        pd.DataFrame([{"method": "graddot", "setting": "raw", "query_id": q, "lds": v}
                      for q, v in zip(QUERIES, (0.6, -0.1), strict=True)]).to_csv(folder / "lds_queries.csv",
                                                                                   index=False)
        if name != "gt_legacy":  # written before truths named what they were measured on
            subsets = [TRAIN[:3], TRAIN[3:], TRAIN[::2], TRAIN[1::2]]
            study = Study(plan, TRAIN, TRAIN + QUERIES, subsets, np.zeros((4, 6), bool), np.zeros((4, 8)),
                          np.zeros((4, 8, 1)), [{} for _ in subsets])
            write_truth_identity(folder, study, "python -m experiments.ground_truth", catalogue_key=CATALOGUE)
        truths[name] = folder

    reports = root / "outputs" / "reports" / "q_near_copy_00"
    channel_rows = [{"rank": r + 1, "track_id": t, "name": t, "cosine": 0.9 - 0.1 * r, "kernel": 0.5,
                     "sts": 2.0 - r, "z_noise": 3.0 - r, "confidence": 0.99, "lip_percent": 80.0,
                     "qualified": r == 0, "share": 1.0 if r == 0 else 0.0, "tier": "strong" if r == 0 else "noise"}
                    for r, t in enumerate(TRAIN)]
    channel = {"attributable": True, "reference_z": 2.5, "abstain_reason": "", "mu": 0.5, "sigma": 0.2, "mu0": 0.4,
               "sigma0": 0.1, "tau": 0.5, "n_qualified": 1, "rows": channel_rows}
    refused = {**channel, "attributable": False, "reference_z": 0.4, "n_qualified": 0,
               "abstain_reason": "no training song stands out: the top cosine is 0.40 reference sd above",
               "rows": [{**r, "qualified": False, "share": 0.0, "tier": "noise"} for r in channel_rows]}
    write_report({
        "schema_version": 2, "audio": str(root / "corpus" / "audio" / "q_near_copy_00.wav"),
        "database": str(root / "db" / "signatures.h5"), "description": "", "model_id": "/models/tiny",
        "model_hash": "hash0", "catalogue_key": CATALOGUE, "n_train": 6,
        "hashes": {"audio_sha256": "a1" * 32, "database_sha256": "d2" * 32, "model_identity": "hash0"},
        "timing": {"extraction_s": 0.5, "similarity_ms": 0.2}, "scoring": {"gate": "sts1"},
        "abstention": {"rule": "reference_z", "threshold": 2.02, "references": "control tracks", "n_references": 10},
        "channels": {"P": channel, "M": refused}, "skipped": []}, reports, command=ATTRIBUTE_COMMAND)
    return {"runs": runs, "manifest": manifest, "outputs": root / "outputs", "truths": truths,
            "reports": root / "outputs" / "reports"}
