"""LUMINA attribution report for one audio file against an existing signature database.

    python -m experiments.attribute PATH.wav
    python -m experiments.attribute PATH.wav --description "violin bach" --top 20 method.gate=conf95
    python -m experiments.attribute PATH.wav --database outputs/cache/methods/music21-embedded/lumina/signatures.h5

Prints, per channel, the ranked training tracks with cosine, kernel-regression score, STS, z_noise, confidence,
LIP %, share and tier, and writes `report.json` and `report.md` (default folder: outputs/reports/<file stem>/).
The database names the model that made it; the signature settings come from the database, the scoring
options (`method.*`) from conf/method/lumina.yaml and the overrides. Extraction and the similarity-and-shares
step are timed separately.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from experiments.setup import configure_runtime
from lumina.audio import load_audio
from lumina.database import SignatureDatabase, read_database
from lumina.errors import CheckpointError, LuminaError
from lumina.generator.model import Generator
from lumina.methods.lumina import database_path
from lumina.report import attribute, prepare, summary, to_markdown
from lumina.scoring import ScoringConfig
from lumina.signatures import SignatureConfig, Skipped, signature

CONF = Path(__file__).resolve().parents[1] / "conf"
TIMING_REPEATS = 20


def database_generator(db: SignatureDatabase) -> Generator:
    """The generator a database was made with (loaded from its recorded directory, hash checked)."""
    source = db.provenance["model_id"]
    if not Path(source).is_dir():
        raise CheckpointError(f"{db.path}: the model that made it ({source}) is not a directory here")
    generator = Generator.load(source)
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("audio", help="audio file to attribute")
    parser.add_argument("--database", help="signature database (default: the embedded default run's)")
    parser.add_argument("--description", default="", help="the text condition the audio was generated with")
    parser.add_argument("--out", help="output folder (default: outputs/reports/<file stem>)")
    parser.add_argument("--top", type=int, default=10, help="songs per channel in the Markdown table")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. method.gate=conf95")
    args = parser.parse_intermixed_args(argv)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=["+method=lumina", *args.overrides])
    configure_runtime(cfg)
    options = OmegaConf.to_container(cfg.method, resolve=True)
    cache_dir = Path(cfg.paths.cache) / "methods" / f"{cfg.data.name}-{cfg.model.name}" / "lumina"
    db = read_database(args.database or database_path(options, cache_dir, SignatureConfig.from_options(options)))
    report = attribute_file(args.audio, db, ScoringConfig.from_options(options), description=args.description)
    out = Path(args.out) if args.out else Path(cfg.paths.outputs) / "reports" / Path(args.audio).stem
    json_path, md_path = write_report(report, out, args.top)
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
