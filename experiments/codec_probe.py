"""Does the codec carry both what was played and how it sounds? Nearest neighbours over per-track code
histograms of each codebook: how often is a training track's nearest neighbour the same piece (another
rendering of it) or the same instrument, against chance.

    python -m experiments.codec_probe            # writes results/codec_probe.md
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from lumina.configure import base_corpus, configure_runtime
from lumina.models.codecs.probe import probe
from lumina.models.codes import encode_tracks
from lumina.models.embedded_recipe import EmbeddedModelConfig, fit_codec
from lumina.runs.cli import one_line_errors
from lumina.runs.provenance import command_line


def codec_probe(cfg: DictConfig) -> list[dict]:
    """Probe rows (codebook, label, recovery, chance, ratio) for the configured corpus and embedded codec."""
    configure_runtime(cfg)
    manifest = base_corpus(cfg)
    model = EmbeddedModelConfig.from_dict(OmegaConf.to_container(cfg.model, resolve=True))
    codec = fit_codec(manifest, model.codec, Path(cfg.paths.cache), progress=bool(cfg.progress))
    ids = manifest.train_ids
    codes = encode_tracks(codec, manifest, ids, Path(cfg.paths.cache), progress=bool(cfg.progress))
    table = manifest.table.set_index("track_id").loc[ids]
    labels = {"piece": table["piece"].tolist(), "instrument": table["program"].astype(str).tolist()}
    return probe([codes[t] for t in ids], codec.cardinality, labels)


def write_markdown(rows: list[dict], path: Path) -> None:
    lines = [
        "# Codec probe: nearest neighbours over per-track code histograms",
        "",
        f"Command: `{command_line()}`",
        "",
        "| codebook | label | recovery | chance | ratio |",
        "|---:|---|---:|---:|---:|",
    ]
    lines += [f"| {r['codebook']} | {r['label']} | {r['recovery']:.3f} | {r['chance']:.4f} | {r['ratio']:.1f}× |"
              for r in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
@one_line_errors("experiments.codec_probe")
def main(cfg: DictConfig) -> None:
    rows = codec_probe(cfg)
    out = Path(cfg.paths.results) / "codec_probe.md"
    write_markdown(rows, out)
    print(out.read_text())


if __name__ == "__main__":
    main()
