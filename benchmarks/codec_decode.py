"""Benchmark and listening check: the embedded codec's decode, pseudo-inverse against librosa's NNLS inversion.

    python -m benchmarks.codec_decode                        # 4 clips of 12 s sampled by the embedded default
    python -m benchmarks.codec_decode --clips 2 data.generated.seconds=6

The clips are sampled as the generated-queries stage samples them (the descriptions of the first training
tracks, top-k and temperature of `data.generated`). Each is decoded twice on one BLAS thread: by the codec
(`EmbeddedCodec.decode`: the mel filterbank's pseudo-inverse, then Griffin-Lim) and with the mel inversion
replaced by `librosa.feature.inverse.mel_to_stft` (a non-negative least-squares solve per frame, the decoder
before it), the same Griffin-Lim after both. Printed per decoder: seconds per clip, how far the decoded audio's
z-scored log-mel lies from the codes' (RMS, in codec units), the fraction of frames whose codes survive
re-encoding (per codebook), and the chroma correlation between the two decodes. Writes
outputs/benchmarks/codec_decode.{json,md} and a spectrogram figure (codes' mel, both decodes) per clip,
codec_decode.png.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import librosa
import numpy as np
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from threadpoolctl import threadpool_limits

from benchmarks.output import write
from lumina.runs.provenance import command_line

CONF = Path(__file__).resolve().parents[1] / "conf"


def nnls_decode(codec, codes: np.ndarray) -> np.ndarray:
    """`codec.decode` with its mel inversion done by librosa's per-frame NNLS (the decoder before the
    pseudo-inverse): codes (K, T) → audio (T · hop,) at peak 0.5."""
    cfg = codec.config
    log_mel = codec.reconstruct_mel(codes) * codec.mel_std + codec.mel_mean
    power = np.maximum(np.power(10.0, log_mel.T.astype(np.float64)) - 1e-6, 0.0)
    magnitude = librosa.feature.inverse.mel_to_stft(power, sr=cfg.sample_rate, n_fft=cfg.n_fft)
    audio = librosa.griffinlim(magnitude, n_iter=32, hop_length=cfg.hop_length, random_state=cfg.seed,
                               dtype=np.float32)
    n_samples = codes.shape[1] * cfg.hop_length
    audio = np.pad(audio, (0, max(0, n_samples - audio.size)))[:n_samples]
    return (audio / np.abs(audio).max() * 0.5).astype(np.float32)


def fidelity(codec, codes: np.ndarray, audio: np.ndarray) -> dict:
    """How much of the codes the decoded audio (n,) carries: log-mel RMS error (z units) against the codes' mel,
    and the fraction of frames re-encoded to the same code, per codebook."""
    target = codec.reconstruct_mel(codes)
    frames = min(target.shape[0], codec.frames(audio)[1].shape[0])
    mel = codec.frames(audio)[1][:frames]
    again = codec.encode(audio)[:, :frames]
    return {"mel_rmse_z": float(np.sqrt(np.mean((mel - target[:frames]) ** 2))),
            "codes_kept": [float(np.mean(again[k] == codes[k, :frames])) for k in range(codes.shape[0])]}


def figure(path: Path, codec, clips: list[np.ndarray], decoded: dict[str, list[np.ndarray]]) -> None:
    """Log-mel spectrograms: the codes' own mel and each decoder's audio re-analysed, one row per clip."""
    import matplotlib.pyplot as plt

    columns = ["codes", *decoded]
    fig, axes = plt.subplots(len(clips), len(columns), figsize=(4 * len(columns), 2.2 * len(clips)), squeeze=False)
    for row, codes in enumerate(clips):
        images = [codec.reconstruct_mel(codes)] + [codec.frames(decoded[name][row])[1] for name in decoded]
        for col, (name, image) in enumerate(zip(columns, images, strict=True)):
            axes[row, col].imshow(image.T, origin="lower", aspect="auto", vmin=-3, vmax=3, cmap="magma")
            axes[row, col].set_title(f"clip {row}: {name}", fontsize=8)
            axes[row, col].set_xlabel("frame (50 Hz)", fontsize=7)
            axes[row, col].set_ylabel("mel band", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def to_markdown(result: dict) -> str:
    lines = ["# Embedded codec decode benchmark", "", f"Command: `{result['command']}`", "",
             f"Model `{result['model_hash']}`, {result['clips']} clips of {result['seconds']:g} s, one BLAS thread.",
             "", "| decoder | s / clip | log-mel RMS error (z) | codes kept after re-encoding, per codebook |",
             "|---|---:|---:|---|"]
    for name, r in result["decoders"].items():
        kept = " / ".join(f"{k:.2f}" for k in np.mean([c["codes_kept"] for c in r["clips"]], axis=0))
        lines.append(f"| {name} | {r['seconds_per_clip']:.2f} | "
                     f"{np.mean([c['mel_rmse_z'] for c in r['clips']]):.3f} | {kept} |")
    lines += ["", f"Speed-up of the pseudo-inverse: {result['speedup']:.1f}×; chroma correlation between the two "
              f"decodes: {result['chroma_correlation']:.3f} (mean over clips).", ""]
    return "\n".join(lines)


def configuration(overrides: list[str]) -> DictConfig:
    """The Hydra configuration this benchmark runs with: `conf/config.yaml` and `overrides`."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def arguments() -> argparse.ArgumentParser:
    """The command line (`python -m benchmarks.codec_decode --help`); Hydra overrides may follow the flags."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=4, help="clips to sample and decode")
    parser.add_argument("--out", default=None, help="output folder (default: <paths.outputs>/benchmarks)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data.generated.seconds=6")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = arguments().parse_intermixed_args(argv)
    cfg = configuration(args.overrides)
    from lumina.configure import base_corpus, configure_runtime, generator_loader
    from lumina.models.generate import GenerationSettings

    configure_runtime(cfg)
    manifest = base_corpus(cfg)
    generator = generator_loader(cfg, manifest)()
    codec = generator.codec
    settings = GenerationSettings.from_mapping(OmegaConf.to_container(cfg.data.generated, resolve=True))
    prompts = [manifest.description_of(t) for t in manifest.train_ids[: args.clips]]
    frames = int(round(settings.seconds * codec.frame_rate))
    clips = list(generator.sample(prompts, frames, seed=settings.seed, temperature=settings.temperature,
                                  top_k=settings.top_k))
    decoders = {"pseudo-inverse (the codec)": codec.decode,
                "NNLS (librosa mel_to_stft)": lambda c: nnls_decode(codec, c)}
    decoded, rows = {}, {}
    for name, decode in decoders.items():
        with threadpool_limits(limits=1, user_api="blas"):
            started = time.perf_counter()
            decoded[name] = [decode(c) for c in clips]
            seconds = time.perf_counter() - started
        rows[name] = {"seconds_per_clip": seconds / len(clips),
                      "clips": [fidelity(codec, c, a) for c, a in zip(clips, decoded[name], strict=True)]}
        print(f"{name}: {rows[name]['seconds_per_clip']:.2f} s per clip", flush=True)
    first, second = (decoded[name] for name in decoders)
    chroma = [np.corrcoef(codec.frames(a)[0].ravel(), codec.frames(b)[0].ravel())[0, 1]
              for a, b in zip(first, second, strict=True)]
    names = list(decoders)
    result = {"command": command_line("benchmarks.codec_decode", argv), "model_hash": generator.identity(),
              "clips": args.clips, "seconds": settings.seconds, "decoders": rows,
              "speedup": rows[names[1]]["seconds_per_clip"] / rows[names[0]]["seconds_per_clip"],
              "chroma_correlation": float(np.mean(chroma))}
    out = Path(args.out or Path(cfg.paths.outputs) / "benchmarks")
    write(out, "codec_decode", result, to_markdown(result))
    figure(out / "codec_decode.png", codec, clips, decoded)
    print(f"spectrograms: {out / 'codec_decode.png'}")


if __name__ == "__main__":
    main()
