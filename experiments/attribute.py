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
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from lumina.context import configure_runtime, layout, load_corpus
from lumina.database import read_database
from lumina.device import placement_from
from lumina.methods.lumina import database_path
from lumina.methods.options import LuminaOptions
from lumina.report import attribute_file, database_generator, write_report
from lumina.signature_scoring import ScoringConfig

CONF = Path(__file__).resolve().parents[1] / "conf"


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
    options = LuminaOptions.from_mapping(OmegaConf.to_container(cfg.method, resolve=True))
    database = args.database or database_path(options, layout(cfg, load_corpus(cfg)).method_cache("lumina"))
    db = read_database(database)
    report = attribute_file(args.audio, db, ScoringConfig.from_options(options.as_dict()),
                            description=args.description, generator=database_generator(db, placement_from(cfg)))
    out = Path(args.out) if args.out else Path(cfg.paths.outputs) / "reports" / Path(args.audio).stem
    json_path, md_path = write_report(report, out, args.top)
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
