"""Attribution reports (docs/lumina.md#attribution-report): one query's signatures against a database's training songs,
per channel.

For each channel: cosine and kernel-regression scores, STS, z_noise against the noise calibration,
confidence, LIP %, threshold tier, qualification (gate) and share (weight). The positive-only policy holds
here: a song whose cosine is not positive never qualifies and sits in the `noise` tier.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from scipy.linalg import cho_solve

from execution.files import write_text
from lumina.data.audio import file_sha256, load_audio
from lumina.data.manifest import Manifest
from lumina.methods.attributable import reference_z
from lumina.methods.lumina.database import SignatureDatabase
from lumina.methods.lumina.scoring import ScoringConfig, cosine_scores, kernel_factor, unit_rows
from lumina.methods.lumina.signatures import CHANNELS, SignatureConfig, Skipped, signature
from lumina.methods.lumina.stats import (
    TIER_NAMES,
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
from lumina.models.builder import model_loader
from lumina.models.protocol import Generator
from lumina.runs.device import REFERENCE, Placement
from lumina.runs.errors import CheckpointError, LuminaError, ParameterError
from lumina.runs.provenance import relative, stamp

TIMING_REPEATS = 20
"""Repeats of the similarity-and-shares step whose median a report gives."""


SCHEMA_VERSION = 2
"""Version of the report's JSON layout (2: abstention verdicts and the hashes of what the report was made from)."""

MIN_REFERENCES = 3
REFERENCE_TEXTURES = ("white_noise", "pink_noise", "sine_tones", "rain", "wind", "engine")
"""Reference queries synthesised for a catalogue with fewer than MIN_REFERENCES control tracks."""


@dataclass
class Reference:
    """A database prepared for attribution: unit-norm training signatures (N, D) per channel, stored float32
    (the similarity step reads them once per query and is bound by memory bandwidth; cosines agree with float64 to
    about 1e-7), the kernel factors of the float64 signatures, each channel's noise floor (mu_0, sigma_0) and the
    top cosines of reference queries without a source in training (the abstention's null, (R,) per channel;
    `reference_kind` says where they came from)."""

    track_ids: list[str]
    train: dict[str, np.ndarray]
    factors: dict[str, tuple]
    noise: dict[str, tuple[float, float]]
    config: ScoringConfig
    reference_tops: dict[str, np.ndarray]
    reference_kind: str


def prepare(db: SignatureDatabase, config: ScoringConfig, references: dict[str, np.ndarray] | None = None
            ) -> Reference:
    """Training signatures, kernel factors, noise calibration (controls vs training songs) and the abstention's
    reference top cosines of a database: its control tracks' when it has at least MIN_REFERENCES, else those of
    `references` (signatures (R, d) per channel, e.g. `synthetic_references`)."""
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
    use_controls = len(db.ids("control")) >= MIN_REFERENCES
    if not use_controls and references is None and config.abstain:
        raise ParameterError(f"{db.path}: fewer than {MIN_REFERENCES} control tracks and no reference queries; "
                             "pass synthetic_references(...) or set method.abstain=false")
    tops = {c: (cosine_scores(train[c], db.matrix(c, "control")) if use_controls
                else cosine_scores(train[c], references[c]) if references is not None
                else np.zeros((1, 0))).max(axis=0, initial=-np.inf) for c in CHANNELS}
    factors = {c: kernel_factor(train[c], config.kernel_lambda) for c in CHANNELS}
    kind = "control tracks" if use_controls else "synthetic references" if references is not None else "none"
    return Reference(track_ids, {c: m.astype(np.float32) for c, m in train.items()}, factors, noise, config, tops,
                     kind)


def reference_for(db: SignatureDatabase, config: ScoringConfig, generator: Generator) -> Reference:
    """`prepare` with the reference queries the abstention needs: the database's control tracks, or with fewer
    than MIN_REFERENCES of them, `synthetic_references` of `generator` cached beside the database."""
    references = None
    if config.abstain and len(db.ids("control")) < MIN_REFERENCES:
        references = synthetic_references(generator, SignatureConfig.from_options(db.provenance),
                                          Path(f"{db.path}.references.npz"))
    return prepare(db, config, references)


def synthetic_references(generator: Generator, config: SignatureConfig, cache: Path, *, seconds: float = 10.0
                         ) -> dict[str, np.ndarray]:
    """Signatures (R, d) per channel of synthesised audio no training song influenced (REFERENCE_TEXTURES),
    cached in `cache` (.npz) under the generator's identity: the reference queries of a catalogue without
    control tracks."""
    from lumina.data.textures import synthesize

    cache = Path(cache)
    if cache.exists():
        stored = np.load(cache)
        if str(stored["identity"]) == generator.identity():
            return {c: stored[c] for c in CHANNELS}
    rate = generator.codec.sample_rate
    signatures = []
    for i, texture in enumerate(REFERENCE_TEXTURES):
        audio = synthesize(texture, int(seconds * rate), rate, np.random.default_rng([i, 11]))
        audio = (0.1 * audio / max(float(np.sqrt(np.mean(audio**2))), 1e-12)).astype(np.float32)
        signed = signature(generator, audio, "", config)
        if not isinstance(signed, Skipped):
            signatures.append(signed)
    out = {c: np.stack([s[c] for s in signatures]) for c in CHANNELS}
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, identity=generator.identity(), **out)
    return out


@dataclass
class ChannelScores:
    """One channel's scores and statistics for one query, arrays (N,) over the training songs.

    The per-song statistics that no share, gate or tier needs beyond the candidates (`score_channel`) — STS,
    z_noise, confidence, LIP % — are computed for every song when first read."""

    cosine: np.ndarray
    kernel: np.ndarray
    qualified: np.ndarray
    share: np.ndarray
    tier: np.ndarray
    """(N,) int8 tier codes; `TIER_NAMES[code]` is the name."""
    mu: float
    sigma: float
    mu0: float
    sigma0: float
    attributable: bool = True
    reference_z: float = float("nan")
    abstain_reason: str = ""
    confidence_kind: str = "two_sided"
    lip_k: float = 0.5

    @cached_property
    def sts(self) -> np.ndarray:
        """(N,) STS of each song: its cosine's z against the query's own scores (mu, sigma)."""
        return sts(self.cosine, self.mu, self.sigma)

    @cached_property
    def z_noise(self) -> np.ndarray:
        """(N,) z of each song's cosine against the noise floor (mu0, sigma0)."""
        return sts(self.cosine, self.mu0, self.sigma0)

    @cached_property
    def confidence(self) -> np.ndarray:
        """(N,) confidence of each song's z_noise (`lumina.methods.lumina.stats.confidence`)."""
        return confidence(self.z_noise, self.confidence_kind)

    @cached_property
    def lip_percent(self) -> np.ndarray:
        """(N,) LIP % of each song's STS (`lumina.methods.lumina.stats.lip_percent`)."""
        return lip_percent(self.sts, self.lip_k)


CANDIDATE_MARGIN = 1e-9
"""Relative slack below the candidates' cut-off (`score_channel`), far above the rounding of one z-score."""


def verdict(cosines: np.ndarray, reference_tops: np.ndarray, config: ScoringConfig) -> tuple[bool, float, str]:
    """(attributable, reference z, reason) of one query's cosines (N,) against the reference queries' top cosines
    (docs/abstention.md#the-report-rule); with `abstain` off every query is attributable (the sources' rule)."""
    top = float(np.max(cosines))
    if reference_tops.size < MIN_REFERENCES:
        z = float("nan")
    else:
        z = float(reference_z(np.array([top]), reference_tops)[0])
    if not config.abstain:
        return True, z, ""
    if z >= config.abstain_z:
        return True, z, ""
    return False, z, (f"no training song stands out: the top cosine {top:.4f} is {z:.2f} standard deviations above "
                      f"the reference queries' top cosines (mean {reference_tops.mean():.4f}), below the "
                      f"threshold {config.abstain_z:g}")


def score_channel(cosines: np.ndarray, kernel: np.ndarray, noise: tuple[float, float], config: ScoringConfig,
                  reference_tops: np.ndarray | None = None) -> ChannelScores:
    """Qualification, share and tier of every song (cosines, kernel: (N,)), and the query's verdict.

    Every gate and every tier above `noise` needs STS > 1, z_noise >= 1 or a score above tau = mu_0 + sigma_0,
    so only songs whose cosine reaches the lower of mu + sigma and tau (less CANDIDATE_MARGIN) can have any:
    the statistics are evaluated on those candidates and every other song is unqualified, without share, in
    the `noise` tier (the same values as evaluating every song; shares may differ in the last bit, as their
    sum is taken over fewer terms). Positive-only: a song whose cosine is not positive never qualifies and is
    in the `noise` tier. With `reference_tops` and `config.abstain`, a query that is not attributable
    (`verdict`) qualifies no song: no shares, every tier `noise`.
    """
    cosines = np.asarray(cosines, dtype=np.float64)
    mu, sigma = population(cosines)
    mu0, sigma0 = noise
    tau = mu0 + sigma0
    cutoff = min(mu + sigma if sigma > 0 else np.inf, tau)
    candidates = np.flatnonzero(cosines >= cutoff - CANDIDATE_MARGIN * max(1.0, abs(cutoff)))
    scores = cosines[candidates]
    sts_values, z_noise = sts(scores, mu, sigma), sts(scores, mu0, sigma0)
    passed = qualify(config.gate, scores=scores, sts_values=sts_values, z_noise=z_noise, tau=tau,
                     sided=config.confidence, positive_only=config.positive_only)
    weights = weigh(config.weight, scores=scores, sts_values=sts_values, tau=tau, k=config.lip_k)
    tier_codes = tiers(z_noise)
    if config.positive_only:
        tier_codes[scores <= 0] = 0
    attributable, z_ref, reason = (True, float("nan"), "") if reference_tops is None else verdict(
        cosines, reference_tops, config)
    qualified, share, tier = np.zeros(cosines.shape, bool), np.zeros(cosines.shape), np.zeros(cosines.shape, np.int8)
    if attributable:
        qualified[candidates], share[candidates], tier[candidates] = passed, shares(weights, passed), tier_codes
    return ChannelScores(cosines, np.asarray(kernel, dtype=np.float64), qualified, share, tier, mu, sigma, mu0,
                         sigma0, attributable, z_ref, reason, config.confidence, config.lip_k)


def track_name(description: str, path: str | Path) -> str:
    """How a report names a track for people: its description and file name (`piano bach · t0003.wav`)."""
    return " · ".join(part for part in (str(description).strip(), Path(path).name) if part)


def summary(scores: ChannelScores, track_ids: list[str], names: Mapping[str, str] | None = None) -> dict:
    """A JSON-able channel report: the population (mu, sigma), the noise floor (mu0, sigma0, tau = mu0 + sigma0)
    and every song ranked by cosine (rank, track_id, cosine, kernel, sts, z_noise, confidence, lip_percent,
    qualified, share, tier)."""
    rows = []
    for rank, i in enumerate(np.argsort(-scores.cosine, kind="stable"), start=1):
        rows.append({
            "rank": rank, "track_id": track_ids[i], "name": (names or {}).get(track_ids[i], track_ids[i]),
            "cosine": float(scores.cosine[i]),
            "kernel": float(scores.kernel[i]), "sts": float(scores.sts[i]), "z_noise": float(scores.z_noise[i]),
            "confidence": float(scores.confidence[i]), "lip_percent": float(scores.lip_percent[i]),
            "qualified": bool(scores.qualified[i]), "share": float(scores.share[i]), "tier": TIER_NAMES[scores.tier[i]],
        })
    return {"attributable": scores.attributable, "reference_z": scores.reference_z,
            "abstain_reason": scores.abstain_reason, "mu": scores.mu, "sigma": scores.sigma, "mu0": scores.mu0,
            "sigma0": scores.sigma0, "tau": scores.mu0 + scores.sigma0, "n_qualified": int(scores.qualified.sum()),
            "rows": rows}


def attribute(query: dict[str, np.ndarray], reference: Reference) -> dict[str, ChannelScores]:
    """The similarity-and-shares step: both channels' scores for one query's signatures {"P": (d_P,), "M": (d_M,)}."""
    out = {}
    for c in CHANNELS:
        g = unit_rows(np.asarray(query[c])[None])[0]
        # cosine K g and kernel K (KᵀK + λI)⁻¹ g (signature_scoring.kernel_scores) in one pass over K: (N, 2)
        both = reference.train[c] @ np.stack([g, cho_solve(reference.factors[c], g)], axis=1).astype(np.float32)
        cosine, kernel = np.ascontiguousarray(both.T, dtype=np.float64)
        out[c] = score_channel(cosine, kernel, reference.noise[c], reference.config, reference.reference_tops[c])
    return out


CHANNEL_TITLES = {"P": "Channel P (composition)", "M": "Channel M (production)"}


def to_markdown(report: dict, top: int = 10) -> str:
    """A readable Markdown version of a report made by `experiments.attribute` (top `top` songs per channel)."""
    lines = [f"# LUMINA attribution: `{report['audio']}`", ""]
    verdicts = {c: report["channels"][c]["attributable"] for c in CHANNELS}
    if not any(verdicts.values()):
        lines += ["**Verdict: no training song stands out.** The query is not attributable in either channel, so "
                  "no song gets a share (docs/abstention.md).", ""]
    else:
        lines += ["**Verdict: attributable in " + ", ".join(CHANNEL_TITLES[c] for c in CHANNELS if verdicts[c])
                  + ".** Shares below are assigned only where the query is attributable.", ""]
    hashes = report["hashes"]
    lines += [f"- made from: query audio SHA-256 `{hashes['audio_sha256'][:16]}…`, signature database SHA-256 "
              f"`{hashes['database_sha256'][:16]}…`, model `{hashes['model_identity']}`; report schema "
              f"{report['schema_version']}",
              f"- abstention: {report['abstention']['rule']}, threshold {report['abstention']['threshold']:g}, "
              f"against {report['abstention']['n_references']} {report['abstention']['references']}"]
    if "provenance" in report:
        lines += [f"- made by: `{report['provenance']['command']}` at {report['provenance']['created_utc']}"]
    lines += [f"- database: `{report['database']}` ({report['n_train']} training songs, model "
              f"`{report['model_hash']}`)",
              f"- catalogue version: `{report.get('catalogue_key') or 'unknown'}`",
              f"- description: `{report['description']}`",
              f"- extraction: {report['timing']['extraction_s']:.3f} s; similarity and shares: "
              f"{report['timing']['similarity_ms']:.3f} ms",
              "- options: " + ", ".join(f"{k}={v}" for k, v in report["scoring"].items()), ""]
    for c in CHANNELS:
        ch = report["channels"][c]
        verdict_line = ("attributable: the top cosine lies {:.2f} standard deviations above the reference queries' "
                        "top cosines".format(ch["reference_z"]) if ch["attributable"]
                        else "not attributable: " + (ch["abstain_reason"] or "abstention is off"))
        lines += [f"## {CHANNEL_TITLES[c]}", "", f"Verdict: {verdict_line}.", "",
                  f"Population mean {ch['mu']:.4f}, std {ch['sigma']:.4f}; noise floor mu_0 {ch['mu0']:.4f}, "
                  f"sigma_0 {ch['sigma0']:.4f}; {ch['n_qualified']} song(s) pass the gate "
                  f"`{report['scoring']['gate']}` and share; the tier column reads z_noise "
                  f"(docs/sources.md#lumina-due-diligence's "
                  "thresholds), not the gate.", "",
                  "| rank | track | cosine | kernel | STS | z_noise | confidence | LIP % | share | tier |",
                  "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in ch["rows"][:top]:
            label = r["track_id"] if r.get("name", r["track_id"]) == r["track_id"] else f"{r['track_id']} ({r['name']})"
            lines.append(f"| {r['rank']} | {label} | {r['cosine']:.4f} | {r['kernel']:.4f} | {r['sts']:.2f} | "
                         f"{r['z_noise']:.2f} | {r['confidence']:.3f} | {r['lip_percent']:.1f} | "
                         f"{100 * r['share']:.1f} % | {r['tier']} |")
        lines.append("")
    if report.get("skipped"):
        lines += ["Tracks of the database without a signature:", ""]
        lines += [f"- {track} ({split}): {reason}" for track, split, reason in report["skipped"]] + [""]
    return "\n".join(lines)


def saved_model(folder: str | Path) -> dict:
    """The `model` config that loads a saved generator folder through the builder (`model_loader`): a
    MusicTransformer when its `config.json` says so or it has none (dattri's layout), else a MusicGen directory."""
    folder = Path(folder)
    config = folder / "config.json"
    symbolic = not config.is_file() or json.loads(config.read_text()).get("kind") == "musictransformer"
    return {"kind": "musictransformer" if symbolic else "pretrained", "name": folder.name, "path": str(folder)}


def database_generator(db: SignatureDatabase, manifest: Manifest, cache: str | Path,
                       placement: Placement = REFERENCE) -> Generator:
    """The generator a database was made with: its recorded folder loaded by the one builder onto `placement`,
    hash checked (`manifest`, `cache`: what the builder takes; a saved folder reads neither)."""
    source = db.provenance["model_id"]
    if not Path(source).is_dir():
        raise CheckpointError(f"{db.path}: the model that made it ({source}) is not a directory here")
    generator = model_loader(saved_model(source), manifest, Path(cache), progress=False, placement=placement)()
    if generator.identity() != db.provenance["model_hash"]:
        raise CheckpointError(f"{db.path}: the model at {source} has changed since the database was made "
                              f"(hash {generator.identity()}, database {db.provenance['model_hash']})")
    return generator


def attribute_file(audio_path: str | Path, db: SignatureDatabase, scoring: ScoringConfig, *, generator: Generator,
                   description: str = "", names: Mapping[str, str] | None = None) -> dict:
    """The attribution report (a JSON-able dict, schema SCHEMA_VERSION) of one audio file against a database
    made by `generator` (`database_generator`); `names` (track id → `track_name`) names the training songs for
    people."""
    config = SignatureConfig.from_options(db.provenance)
    description = "" if config.text == "empty" else description
    started = time.perf_counter()
    audio = load_audio(audio_path, generator.codec.sample_rate, allow_silent=True)
    query = signature(generator, audio, description, config)
    extraction_s = time.perf_counter() - started
    if isinstance(query, Skipped):
        raise LuminaError(f"{audio_path}: no signature ({query.reason})")
    started = time.perf_counter()
    reference = reference_for(db, scoring, generator)
    prepare_s = time.perf_counter() - started
    times = []
    for _ in range(TIMING_REPEATS):
        started = time.perf_counter()
        channels = attribute(query, reference)
        times.append(time.perf_counter() - started)
    return {
        "schema_version": SCHEMA_VERSION,
        "audio": str(audio_path), "database": str(db.path), "description": description,
        "hashes": {"audio_sha256": file_sha256(audio_path), "database_sha256": file_sha256(db.path),
                   "model_identity": db.provenance["model_hash"]},
        "catalogue_key": db.provenance.get("catalogue_key", ""),
        "model_id": db.provenance["model_id"], "model_hash": db.provenance["model_hash"],
        "n_train": len(reference.track_ids), "signature_settings": {k: db.provenance[k] for k in (
            "mode", "channel_split", "segments", "chunk_s", "codebook_weights", "codebook_weighting",
            "p_layers_resolved", "m_layers_resolved")},
        "scoring": asdict(scoring),
        "abstention": {"rule": "reference_z" if scoring.abstain else "off (the sources' rule: shares for every query)",
                       "threshold": scoring.abstain_z, "references": reference.reference_kind,
                       "n_references": int(reference.reference_tops["P"].size)},
        "timing": {"extraction_s": extraction_s, "prepare_s": prepare_s,
                   "similarity_ms": 1000 * float(np.median(times)), "similarity_first_ms": 1000 * times[0],
                   "similarity_repeats": TIMING_REPEATS},
        "channels": {c: summary(scores, reference.track_ids, names) for c, scores in channels.items()},
        "skipped": db.skipped,
    }


def write_report(report: dict, out_dir: str | Path, top: int = 10, *, command: str | None = None) -> tuple[Path, Path]:
    """`report.json` and `report.md` in `out_dir`, stamped with their provenance (`command`, default this
    process's; time, machine, model, database and catalogue version; paths relative to the project)."""
    hashes = report["hashes"]
    provenance = stamp(
        command=command, config=report["scoring"],
        upstream={"audio": hashes["audio_sha256"], "database": hashes["database_sha256"],
                  "model": hashes["model_identity"], "catalogue": report.get("catalogue_key", "")},
        audio=relative(report["audio"]), database=relative(report["database"]), model_id=relative(report["model_id"]),
        model_hash=report["model_hash"], catalogue_key=report.get("catalogue_key", ""),
    )
    report = {**report, "provenance": provenance.record()}
    out_dir = Path(out_dir)
    json_path, md_path = out_dir / "report.json", out_dir / "report.md"
    write_text(json_path, json.dumps(report, indent=1))  # in the report's order: channel P before M
    write_text(md_path, to_markdown(report, top))
    return json_path, md_path
