"""Training the embedded MusicGen on any subset of training tracks: deterministic, resumable, with
intermediate checkpoints and their learning rates kept (TracIn sums over them)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from execution.files import atomic_path
from lumina.data.manifest import Manifest
from lumina.models.musicgen import MusicgenGenerator
from lumina.models.teacher_forcing import pad_clips
from lumina.runs.errors import ParameterError

RESUME_FILE = "resume.pt"
CHECKPOINT_DIR = "checkpoints"


@dataclass(frozen=True)
class TrainConfig:
    """The training recipe. `epochs` counts crops seen per training track."""

    epochs: float = 32.0
    batch_size: int = 8
    crop_frames: int = 192
    lr: float = 1e-3
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    checkpoints: int = 4
    resume_every: int = 50
    seed: int = 0

    def steps(self, n_tracks: int) -> int:
        return max(1, math.ceil(self.epochs * n_tracks / self.batch_size))


def learning_rate(step: int, total: int, config: TrainConfig) -> float:
    """Linear warm-up over `warmup_steps`, then cosine decay to `min_lr_ratio · lr` at `total`."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, total - config.warmup_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return config.lr * (config.min_lr_ratio + (1.0 - config.min_lr_ratio) * cosine)


def checkpoint_steps(total: int, count: int) -> list[int]:
    """Steps after which intermediate checkpoints are written (evenly spaced, the last = `total`)."""
    return sorted({max(1, round(total * (i + 1) / count)) for i in range(count)}) if count > 0 else []


def batch_schedule(
    lengths: Sequence[int], total_steps: int, config: TrainConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Track indices (steps, B) drawn epoch by epoch without replacement, and crop starts (steps, B)."""
    rng = np.random.default_rng(config.seed)
    n = len(lengths)
    needed = total_steps * config.batch_size
    order = np.concatenate([rng.permutation(n) for _ in range(math.ceil(needed / n))])[:needed]
    order = order.reshape(total_steps, config.batch_size)
    room = np.maximum(np.asarray(lengths)[order] - config.crop_frames, 0)
    starts = np.floor(rng.random(order.shape) * (room + 1)).astype(np.int64)
    return order, starts


def train_lm(
    generator: MusicgenGenerator,
    codes: Mapping[str, np.ndarray],
    descriptions: Mapping[str, str],
    train_ids: Sequence[str],
    config: TrainConfig,
    out_dir: str | Path,
    *,
    progress: bool = True,
) -> dict:
    """Train `generator`'s LM in place on `train_ids`; write checkpoints under `out_dir`; return the record.

    An interrupted run continues from `out_dir/resume.pt` (same config and subset), bit for bit as if it had
    not stopped.
    """
    if not train_ids:
        raise ParameterError("cannot train on an empty subset of tracks")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_ids = list(train_ids)
    total = config.steps(len(train_ids))
    order, starts = batch_schedule([codes[t].shape[1] for t in train_ids], total, config)
    params = generator.trainable_parameters()
    for p in params.values():
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(list(params.values()), lr=config.lr)
    identity = {"config": asdict(config), "train_ids": train_ids}
    state = {"step": 0, "losses": [], "seconds": 0.0}
    resume_path = out_dir / RESUME_FILE
    if resume_path.exists():
        saved = torch.load(resume_path, weights_only=True, map_location=generator.device)
        if json.loads(saved["identity"]) == identity:
            generator.model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            state = json.loads(saved["state"])
    kept = checkpoint_steps(total, config.checkpoints)
    generator.model.train()
    bar = tqdm(total=total, initial=state["step"], desc="training", disable=not progress, unit="step")
    try:
        while state["step"] < total:
            step = state["step"]
            started = time.perf_counter()
            lr = learning_rate(step, total, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            ids = [train_ids[i] for i in order[step]]
            batch, lengths = pad_clips([codes[t] for t in ids], starts[step], config.crop_frames)
            loss = generator.clip_losses(batch, [descriptions[t] for t in ids], lengths=lengths).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(params.values()), config.grad_clip)
            optimizer.step()
            state["losses"].append(round(loss.item(), 5))
            state["step"] = step + 1
            state["seconds"] += time.perf_counter() - started
            bar.update(1)
            bar.set_postfix(loss=f"{state['losses'][-1]:.3f}")
            if state["step"] in kept:
                save_checkpoint(generator, out_dir, state["step"], lr)
            if state["step"] % config.resume_every == 0 and state["step"] < total:
                _save_resume(resume_path, generator, optimizer, identity, state)
    finally:
        bar.close()
        generator.model.eval()
    resume_path.unlink(missing_ok=True)
    return {
        "train_config": asdict(config),
        "train_ids": train_ids,
        "steps": total,
        "step_losses": state["losses"],
        "train_seconds": round(state["seconds"], 2),
        "checkpoints": [
            {"step": s, "lr": learning_rate(s - 1, total, config), "path": f"{CHECKPOINT_DIR}/step-{s:06d}"}
            for s in kept
        ],
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def save_checkpoint(generator: MusicgenGenerator, out_dir: Path, step: int, lr: float) -> Path:
    """Write the LM's trainable weights after `step` (safetensors) and the learning rate used at that step."""
    path = out_dir / CHECKPOINT_DIR / f"step-{step:06d}"
    path.mkdir(parents=True, exist_ok=True)
    weights = {n: p.detach().contiguous() for n, p in generator.trainable_parameters().items()}
    save_file(weights, str(path / "lm.safetensors"))
    (path / "meta.json").write_text(json.dumps({"step": step, "lr": lr}))
    return path


def checkpoint_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The trainable weights a checkpoint folder holds (`save_checkpoint`'s `lm.safetensors`), by parameter name."""
    file = Path(path) / "lm.safetensors"
    if not file.is_file():
        raise ParameterError(f"{file}: no checkpoint weights here; pass a folder written by save_checkpoint")
    return load_file(str(file))


def _save_resume(path: Path, generator: MusicgenGenerator, optimizer, identity: dict, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save({"model": generator.model.state_dict(), "optimizer": optimizer.state_dict(),
                    "identity": json.dumps(identity), "state": json.dumps(state)}, tmp)


@torch.no_grad()
def evaluate_losses(
    generator: MusicgenGenerator,
    codes: Mapping[str, np.ndarray],
    descriptions: Mapping[str, str],
    ids: Sequence[str],
    *,
    batch_size: int = 8,
    codebook_weights: Sequence[float] | None = None,
) -> dict[str, float]:
    """Teacher-forcing loss of each whole clip (no cropping), by track id."""
    out: dict[str, float] = {}
    ids = list(ids)
    for i in range(0, len(ids), batch_size):
        chunk = ids[i : i + batch_size]
        frames = max(codes[t].shape[1] for t in chunk)
        batch, lengths = pad_clips([codes[t] for t in chunk], [0] * len(chunk), frames)
        losses = generator.clip_losses(batch, [descriptions[t] for t in chunk], lengths=lengths,
                                       codebook_weights=codebook_weights)
        out.update({t: float(v) for t, v in zip(chunk, losses, strict=True)})
    return out


def loss_by_group(manifest: Manifest, losses: Mapping[str, float], train_ids: Sequence[str]) -> dict[str, float]:
    """Mean loss of the subset's training tracks (`train`), the training tracks left out of it
    (`train_left_out`), the controls and each query kind."""
    inside = set(train_ids)
    groups: dict[str, list[float]] = {}
    for row in manifest.table.itertuples():
        if row.track_id not in losses:
            continue
        if row.split == "train":
            group = "train" if row.track_id in inside else "train_left_out"
        else:
            group = row.query_kind or row.split
        groups.setdefault(group, []).append(losses[row.track_id])
    return {g: round(float(np.mean(v)), 4) for g, v in sorted(groups.items())}


def checkpoint_curve(generator: MusicgenGenerator, manifest: Manifest, codes: Mapping[str, np.ndarray],
                     descriptions: Mapping[str, str], train_ids: Sequence[str]) -> list[dict]:
    """The loss per group (`loss_by_group`) at each checkpoint the recipe saved, in training order: the evidence
    that the recipe has converged on the tracks it left out. codes: every track to evaluate, id → (K, T). The
    generator's own weights are put back afterwards."""
    final = {name: tensor.detach().clone() for name, tensor in generator.model.state_dict().items()}
    rows = []
    try:
        for path, _ in generator.checkpoints():
            state = checkpoint_weights(path)
            unknown = set(state) - set(final)
            if unknown:
                raise ParameterError(f"{path}: holds weights the generator lacks ({sorted(unknown)[:3]})")
            generator.model.load_state_dict(state, strict=False)
            losses = evaluate_losses(generator, codes, descriptions, list(codes))
            rows.append({"checkpoint": Path(path).name, **loss_by_group(manifest, losses, train_ids)})
    finally:
        generator.model.load_state_dict(final)
    return rows
