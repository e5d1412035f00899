"""Attribution reports (SPEC §2): one query's signatures against a database's training songs, per channel.

For each channel: cosine and kernel-regression scores, STS, z_noise against the noise calibration,
confidence, LIP %, threshold tier, qualification (gate) and share (weight). The positive-only policy holds
here: a song whose cosine is not positive never qualifies and sits in the `noise` tier.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lumina.database import SignatureDatabase
from lumina.errors import ParameterError
from lumina.scoring import ScoringConfig, cosine_scores, kernel_factor, kernel_scores, unit_rows
from lumina.signatures import CHANNELS
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
                  f"`{report['scoring']['gate']}` and share; the tier column reads z_noise (seed 000's "
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

