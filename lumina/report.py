"""Attribution reports (docs/lumina.md#attribution-report): one query's signatures against a database's training songs,
per channel.

For each channel: cosine and kernel-regression scores, STS, z_noise against the noise calibration,
confidence, LIP %, threshold tier, qualification (gate) and share (weight). The positive-only policy holds
here: a song whose cosine is not positive never qualifies and sits in the `noise` tier.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lumina.audio import load_audio
from lumina.database import SignatureDatabase
from lumina.device import REFERENCE, Placement
from lumina.errors import CheckpointError, LuminaError, ParameterError
from lumina.generator.musicgen import MusicgenGenerator
from lumina.generator.protocol import Generator
from lumina.signature_scoring import ScoringConfig, cosine_scores, kernel_factor, kernel_scores, unit_rows
from lumina.signatures import CHANNELS, SignatureConfig, Skipped, signature
from lumina.stats import (
    calibration,
    confidence,
    lip_percent,
    population,
    qualify,
    shares,
    sts,
    tiers,
    weigh,
)

TIMING_REPEATS = 20
"""Repeats of the similarity-and-shares step whose median a report gives."""


@dataclass
class Reference:
    """A database prepared for attribution: unit-norm training signatures (N, D) per channel, their kernel
    factors and each channel's noise floor (mu_0, sigma_0)."""

    track_ids: list[str]
    train: dict[str, np.ndarray]
    factors: dict[str, tuple]
    noise: dict[str, tuple[float, float]]
    config: ScoringConfig


def prepare(db: SignatureDatabase, config: ScoringConfig) -> Reference:
    """Training signatures, kernel factors and noise calibration (controls vs training songs) of a database."""
    track_ids = db.ids("train")
    if not track_ids:
        raise ParameterError(f"{db.path}: the database holds no training songs")
    train = {c: unit_rows(db.matrix(c, "train")) for c in CHANNELS}
    noise = {}
    for c in CHANNELS:
        controls = db.matrix(c, "control")
        control_scores = cosine_scores(train[c], controls) if len(controls) else None
        try:
            noise[c] = calibration(control_scores, train[c].shape[1], config.calibration)
        except ParameterError as err:
            raise ParameterError(f"{db.path}: {err}") from None
    factors = {c: kernel_factor(train[c], config.kernel_lambda) for c in CHANNELS}
    return Reference(track_ids, train, factors, noise, config)


@dataclass
class ChannelScores:
    """One channel's scores and statistics for one query, arrays (N,) over the training songs."""

    cosine: np.ndarray
    kernel: np.ndarray
    sts: np.ndarray
    z_noise: np.ndarray
    confidence: np.ndarray
    lip_percent: np.ndarray
    qualified: np.ndarray
    share: np.ndarray
    tier: np.ndarray
    mu: float
    sigma: float
    mu0: float
    sigma0: float


def score_channel(cosines: np.ndarray, kernel: np.ndarray, noise: tuple[float, float], config: ScoringConfig
                  ) -> ChannelScores:
    """STS, z_noise, confidence, LIP %, qualification, share and tier of every song (cosines, kernel: (N,)).

    Positive-only: a song whose cosine is not positive never qualifies and is in the `noise` tier.
    """
    cosines = np.asarray(cosines, dtype=np.float64)
    mu, sigma = population(cosines)
    mu0, sigma0 = noise
    tau = mu0 + sigma0
    sts_values = sts(cosines, mu, sigma)
    z_noise = sts(cosines, mu0, sigma0)
    qualified = qualify(config.gate, scores=cosines, sts_values=sts_values, z_noise=z_noise, tau=tau,
                        sided=config.confidence, positive_only=config.positive_only)
    weights = weigh(config.weight, scores=cosines, sts_values=sts_values, tau=tau, k=config.lip_k)
    tier = tiers(z_noise)
    if config.positive_only:
        tier = np.where(cosines > 0, tier, "noise")
    return ChannelScores(cosines, np.asarray(kernel, dtype=np.float64), sts_values, z_noise,
                         confidence(z_noise, config.confidence), lip_percent(sts_values, config.lip_k), qualified,
                         shares(weights, qualified), tier, mu, sigma, mu0, sigma0)


def summary(scores: ChannelScores, track_ids: list[str]) -> dict:
    """A JSON-able channel report: the population (mu, sigma), the noise floor (mu0, sigma0, tau = mu0 + sigma0)
    and every song ranked by cosine (rank, track_id, cosine, kernel, sts, z_noise, confidence, lip_percent,
    qualified, share, tier)."""
    rows = []
    for rank, i in enumerate(np.argsort(-scores.cosine, kind="stable"), start=1):
        rows.append({
            "rank": rank, "track_id": track_ids[i], "cosine": float(scores.cosine[i]),
            "kernel": float(scores.kernel[i]), "sts": float(scores.sts[i]), "z_noise": float(scores.z_noise[i]),
            "confidence": float(scores.confidence[i]), "lip_percent": float(scores.lip_percent[i]),
            "qualified": bool(scores.qualified[i]), "share": float(scores.share[i]), "tier": str(scores.tier[i]),
        })
    return {"mu": scores.mu, "sigma": scores.sigma, "mu0": scores.mu0, "sigma0": scores.sigma0,
            "tau": scores.mu0 + scores.sigma0, "n_qualified": int(scores.qualified.sum()), "rows": rows}


def attribute(query: dict[str, np.ndarray], reference: Reference) -> dict[str, ChannelScores]:
    """The similarity-and-shares step: both channels' scores for one query's signatures {"P": (d_P,), "M": (d_M,)}."""
    out = {}
    for c in CHANNELS:
        g = unit_rows(np.asarray(query[c])[None])
        cos = reference.train[c] @ g[0]
        kr = kernel_scores(reference.train[c], g, reference.config.kernel_lambda, reference.factors[c])[:, 0]
        out[c] = score_channel(cos, kr, reference.noise[c], reference.config)
    return out


CHANNEL_TITLES = {"P": "Channel P (composition)", "M": "Channel M (production)"}


def to_markdown(report: dict, top: int = 10) -> str:
    """A readable Markdown version of a report made by `experiments.attribute` (top `top` songs per channel)."""
    lines = [f"# LUMINA attribution: `{report['audio']}`", ""]
    lines += [f"- database: `{report['database']}` ({report['n_train']} training songs, model "
              f"`{report['model_hash']}`)",
              f"- description: `{report['description']}`",
              f"- extraction: {report['timing']['extraction_s']:.3f} s; similarity and shares: "
              f"{report['timing']['similarity_ms']:.3f} ms",
              "- options: " + ", ".join(f"{k}={v}" for k, v in report["scoring"].items()), ""]
    for c in CHANNELS:
        ch = report["channels"][c]
        lines += [f"## {CHANNEL_TITLES[c]}", "",
                  f"Population mean {ch['mu']:.4f}, std {ch['sigma']:.4f}; noise floor mu_0 {ch['mu0']:.4f}, "
                  f"sigma_0 {ch['sigma0']:.4f}; {ch['n_qualified']} song(s) pass the gate "
                  f"`{report['scoring']['gate']}` and share; the tier column reads z_noise "
                  f"(docs/sources.md#lumina-due-diligence's "
                  "thresholds), not the gate.", "",
                  "| rank | track | cosine | kernel | STS | z_noise | confidence | LIP % | share | tier |",
                  "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in ch["rows"][:top]:
            lines.append(f"| {r['rank']} | {r['track_id']} | {r['cosine']:.4f} | {r['kernel']:.4f} | {r['sts']:.2f} | "
                         f"{r['z_noise']:.2f} | {r['confidence']:.3f} | {r['lip_percent']:.1f} | "
                         f"{100 * r['share']:.1f} % | {r['tier']} |")
        lines.append("")
    if report.get("skipped"):
        lines += ["Tracks of the database without a signature:", ""]
        lines += [f"- {track} ({split}): {reason}" for track, split, reason in report["skipped"]] + [""]
    return "\n".join(lines)


def database_generator(db: SignatureDatabase, placement: Placement = REFERENCE) -> Generator:
    """The generator a database was made with (loaded from its recorded directory onto `placement`, hash
    checked)."""
    source = db.provenance["model_id"]
    if not Path(source).is_dir():
        raise CheckpointError(f"{db.path}: the model that made it ({source}) is not a directory here")
    generator = MusicgenGenerator.load(source, placement)
    if generator.identity() != db.provenance["model_hash"]:
        raise CheckpointError(f"{db.path}: the model at {source} has changed since the database was made "
                              f"(hash {generator.identity()}, database {db.provenance['model_hash']})")
    return generator


def attribute_file(audio_path: str | Path, db: SignatureDatabase, scoring: ScoringConfig, *, description: str = "",
                   generator: Generator | None = None) -> dict:
    """The attribution report (a JSON-able dict) of one audio file against a database."""
    config = SignatureConfig.from_options(db.provenance)
    generator = database_generator(db) if generator is None else generator
    description = "" if config.text == "empty" else description
    started = time.perf_counter()
    audio = load_audio(audio_path, generator.codec.sample_rate, allow_silent=True)
    query = signature(generator, audio, description, config)
    extraction_s = time.perf_counter() - started
    if isinstance(query, Skipped):
        raise LuminaError(f"{audio_path}: no signature ({query.reason})")
    started = time.perf_counter()
    reference = prepare(db, scoring)
    prepare_s = time.perf_counter() - started
    times = []
    for _ in range(TIMING_REPEATS):
        started = time.perf_counter()
        channels = attribute(query, reference)
        times.append(time.perf_counter() - started)
    return {
        "audio": str(audio_path), "database": str(db.path), "description": description,
        "model_id": db.provenance["model_id"], "model_hash": db.provenance["model_hash"],
        "n_train": len(reference.track_ids), "signature_settings": {k: db.provenance[k] for k in (
            "mode", "channel_split", "segments", "chunk_s", "codebook_weights", "codebook_weighting",
            "p_layers_resolved", "m_layers_resolved")},
        "scoring": asdict(scoring),
        "timing": {"extraction_s": extraction_s, "prepare_s": prepare_s,
                   "similarity_ms": 1000 * float(np.median(times)), "similarity_first_ms": 1000 * times[0],
                   "similarity_repeats": TIMING_REPEATS},
        "channels": {c: summary(scores, reference.track_ids) for c, scores in channels.items()},
        "skipped": db.skipped,
    }


def write_report(report: dict, out_dir: str | Path, top: int = 10) -> tuple[Path, Path]:
    """`report.json` and `report.md` in `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "report.json", out_dir / "report.md"
    json_path.write_text(json.dumps(report, indent=1))
    md_path.write_text(to_markdown(report, top))
    return json_path, md_path
