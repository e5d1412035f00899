"""LUMINA attribution report for one audio file against an existing signature database.

    python -m experiments.attribute PATH.wav
    python -m experiments.attribute PATH.wav --description "violin bach" --top 20 method.gate=conf95
    python -m experiments.attribute PATH.wav --database outputs/cache/signatures/<model identity>/signatures.h5

Prints, per channel, the ranked training tracks with cosine, kernel-regression score, STS, z_noise, confidence,
LIP %, share and tier, and writes `report.json` (with its provenance: this command, time, machine, model and
database) and `report.md` (default folder: outputs/reports/<file stem>/).
The database names the model that made it; the signature settings come from the database, the scoring
options (`method.*`) from conf/method/lumina.yaml and the overrides. Extraction and the similarity-and-shares
step are timed separately.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lumina.configure import configure_runtime, generator_loader, load_corpus
from lumina.methods.lumina.attribution import attribute_file, database_generator, track_name, write_report
from lumina.methods.lumina.database import manifest_tracks, read_database
from lumina.methods.lumina.method import database_path, signature_store
from lumina.methods.lumina.scoring import ScoringConfig
from lumina.methods.options import LuminaOptions
from lumina.runs.cli import one_line_errors
from lumina.runs.device import placement_from
from lumina.runs.errors import AudioError, ParameterError
from lumina.runs.layout import report_dir
from lumina.runs.provenance import command_line

CONF = Path(__file__).resolve().parents[1] / "conf"


@one_line_errors("experiments.attribute")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("audio", help="audio file to attribute")
    parser.add_argument("--database", help="signature database (default: the embedded default run's)")
    parser.add_argument("--description", default="", help="the text condition the audio was generated with")
    parser.add_argument("--out", help="output folder (default: outputs/reports/<file stem>)")
    parser.add_argument("--top", type=int, default=10, help="songs per channel in the Markdown table")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. method.gate=conf95")
    args = parser.parse_intermixed_args(argv)
    audio = Path(args.audio)
    if not audio.is_file():  # before anything loads
        raise AudioError(audio, "no such file", "check the path of the audio to attribute")
    if args.database and not Path(args.database).is_file():
        raise ParameterError(f"{args.database}: no such signature database (--database); omit it to use this "
                             "catalogue's, made by `python -m experiments.run +method=lumina`")
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose("config", overrides=["+method=lumina", *args.overrides])
    except (HydraException, OmegaConfBaseException) as err:
        raise ParameterError(f"overrides {args.overrides}: {str(err).splitlines()[0]} (see conf/method/lumina.yaml)"
                             ) from None
    configure_runtime(cfg)
    options = LuminaOptions.from_mapping(OmegaConf.to_container(cfg.method, resolve=True))
    manifest = load_corpus(cfg)
    if args.database:  # the database's own model, on the configured device
        db = read_database(args.database).view(manifest_tracks(manifest), manifest.catalogue_key)
        generator = database_generator(db, manifest, cfg.paths.cache, placement_from(cfg))
    else:
        generator = generator_loader(cfg, manifest)()
        database = database_path(options, signature_store(cfg.paths.cache, generator))
        db = read_database(database).view(manifest_tracks(manifest), manifest.catalogue_key)  # this catalogue version
    names = {t.track_id: track_name(t.description, t.path) for t in manifest_tracks(manifest)}
    report = attribute_file(audio, db, ScoringConfig.from_options(options.as_dict()), description=args.description,
                            generator=generator, names=names)
    out = Path(args.out) if args.out else report_dir(cfg.paths.outputs, args.audio)
    json_path, md_path = write_report(report, out, args.top, command=command_line("experiments.attribute", argv))
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
