"""Subset studies for ground truth (docs/ground_truth.md#subset-retraining): M generators, each trained with the
full model's recipe on a random fraction of the training tracks, and every track's teacher-forcing loss under
each of them.

Subset m is drawn from its own generator seeded with (subset_seed, m), so growing M keeps the models already
trained. Each model is trained by the generator loader (`lumina.configure.model_loader`) and cached (shared with
every other experiment that trains on the same subset); each finished model writes `models/mNNN.json` (subset,
seeds, losses, the SHA-256 of every track's audio it measured, seconds) into the study folder. An interrupted
study picks up where it stopped: finished models are read back, a model cut off mid-training resumes from its
last resume point. A record whose audio hashes differ from the corpus's (generated clips decoded otherwise) is
measured again by `experiments.subsets`, and refused by everything that only reads the study. Worker processes
run with one torch thread each by default.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from execution import options as parallel_options
from execution import parallel_map
from execution.files import write_json
from groundtruth.identity import PLAN_FILE
from lumina.data.manifest import Manifest
from lumina.models.builder import model_loader
from lumina.models.codes import encode_tracks
from lumina.models.protocol import Generator, Item
from lumina.models.teacher_forcing import pad_clips
from lumina.runs.device import REFERENCE, Placement
from lumina.runs.errors import ParameterError
from lumina.runs.layout import study_dir
from lumina.runs.provenance import relative, stamp

MODELS_DIR = "models"


@dataclass
class Study:
    """Finished subset models of one study.

    train_ids: (N,) training tracks; track_ids: (n,) every track with a loss; subsets: M lists of track ids;
    membership: (M, N) bool; losses: (M, n) teacher-forcing loss; codebook_losses: (M, n, K); records: the
    per-model JSON records (seeds, seconds, model path).
    """

    folder: Path
    train_ids: list[str]
    track_ids: list[str]
    subsets: list[list[str]]
    membership: np.ndarray
    losses: np.ndarray
    codebook_losses: np.ndarray
    records: list[dict]
    last_losses: np.ndarray | None = None
    """(M, n) loss of each clip's last step (the symbolic benchmark's LDS target, docs/symbolic.md#ground-truth);
    None when a record predates it."""

    @property
    def n_models(self) -> int:
        return len(self.subsets)

    def loss_of(self, ids: Sequence[str], codebook: int | None = None) -> np.ndarray:
        """Losses (M, len(ids)) of the tracks `ids` (one codebook's loss when `codebook` is given)."""
        column = {t: i for i, t in enumerate(self.track_ids)}
        index = [column[t] for t in ids]
        return self.losses[:, index] if codebook is None else self.codebook_losses[:, index, codebook]

    def fraction_in(self, sources: Sequence[str]) -> np.ndarray:
        """Fraction (M,) of the tracks `sources` that each model was trained on."""
        column = {t: i for i, t in enumerate(self.train_ids)}
        return self.membership[:, [column[t] for t in sources]].mean(axis=1)


def draw_subset(train_ids: Sequence[str], fraction: float, seed: int, index: int) -> list[str]:
    """Subset `index`: round(fraction · N) tracks drawn without replacement, in manifest order."""
    if not 0.0 < fraction < 1.0:
        raise ParameterError(f"ground_truth.fraction must lie strictly between 0 and 1, got {fraction}")
    size = max(1, round(fraction * len(train_ids)))
    chosen = np.random.default_rng([seed, index]).choice(len(train_ids), size=size, replace=False)
    return [train_ids[i] for i in sorted(chosen)]


def study_folder(root: str | Path, manifest: Manifest, model_options: Mapping, fraction: float, seed: int) -> Path:
    """`root/<hash>`: one folder per training set (its content), model recipe, subset fraction and subset seed;
    queries added to the corpus share the folder (their losses are measured on the models already trained)."""
    payload = [manifest.content_key(manifest.train_ids), dict(model_options), float(fraction), int(seed)]
    return study_dir(root, hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12])


@torch.no_grad()
def study_losses(
    generator: Generator, codes: Mapping[str, np.ndarray], descriptions: Mapping[str, str], ids: Sequence[str],
    *, batch_size: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
    """Teacher-forcing loss of whole clips (the generator's one loss, docs/generator.md#teacher-forcing-loss):
    total (n,) and per codebook (n, K).

    codes: track id → (K, T) codes; descriptions: track id → text prompt; ids: the n tracks, in output order.
    Every codebook of a clip predicts as many codes, so the total is the mean of the codebooks' losses.
    """
    per_codebook = []
    ids = list(ids)
    for i in range(0, len(ids), batch_size):
        chunk = ids[i : i + batch_size]
        frames = max(codes[t].shape[1] for t in chunk)
        batch, lengths = pad_clips([codes[t] for t in chunk], [0] * len(chunk), frames)
        losses = generator.clip_losses(batch, [descriptions[t] for t in chunk], lengths=lengths, by_stream=True)
        per_codebook.append(losses.double().cpu().numpy())
    stacked = np.concatenate(per_codebook)
    return stacked.mean(axis=1), stacked


@torch.no_grad()
def last_step_losses(generator: Generator, codes: Mapping[str, np.ndarray], descriptions: Mapping[str, str],
                     ids: Sequence[str], *, batch_size: int = 8) -> np.ndarray:
    """Loss (n,) of the last step of each whole clip alone (every stream's prediction of it), through the
    generator's one loss with only that step kept (`Item.keep`)."""
    out = []
    ids = list(ids)
    for i in range(0, len(ids), batch_size):
        items = []
        for t in ids[i : i + batch_size]:
            keep = np.zeros(codes[t].shape[1], dtype=bool)
            keep[-1] = True
            items.append(Item(codes[t], descriptions[t], keep))
        out.append(generator.loss_module()(**generator.collate(items)).double().cpu().numpy())
    return np.concatenate(out)


def train_subset_model(job: dict) -> dict:
    """Train (or load from cache) one subset model, measure every track's loss, write its JSON record.

    `job` holds index, subset, subset_seed, manifest, model (options), cache_root, name, threads and out (the
    record's path); a module-level function of one picklable argument, so that worker processes can run it.
    """
    torch.set_num_threads(int(job["threads"]))
    torch.use_deterministic_algorithms(True)
    manifest: Manifest = job["manifest"]
    started = time.perf_counter()
    generator = model_loader(job["model"], manifest, Path(job["cache_root"]), progress=False,
                             placement=job["placement"])(job["subset"])
    ids = manifest.table["track_id"].tolist()
    codes = encode_tracks(generator.codec, manifest, ids, Path(job["cache_root"]), progress=False)
    descriptions = dict(zip(ids, manifest.table["description"], strict=True))
    total, per_codebook = study_losses(generator, codes, descriptions, ids)
    record = {
        "index": job["index"],
        "subset": job["subset"],
        "subset_seed": [job["subset_seed"], job["index"]],
        "model_seed": generator.record.get("seed"),
        "train_seed": generator.record.get("train_seed"),
        "model_path": relative(generator.source),
        "model_identity": generator.identity(),
        "train_seconds": generator.record.get("train_seconds"),
        "wall_seconds": round(time.perf_counter() - started, 2),
        "threads": torch.get_num_threads(),
        "provenance": stamp(upstream={"model": generator.identity(), "catalogue": manifest.catalogue_key},
                            subset_seed=[job["subset_seed"], job["index"]]).record(),
        "track_ids": ids,
        "audio_sha256": {t: manifest.audio_key(t) for t in ids},
        "losses": total.tolist(),
        "codebook_losses": per_codebook.tolist(),
        "last_losses": last_step_losses(generator, codes, descriptions, ids).tolist(),
    }
    write_json(Path(job["out"]), record)
    return record


def audio_mismatch(record: Mapping, manifest: Manifest) -> str:
    """Why `record`'s losses do not belong to `manifest`'s audio ('' when they do): a track it did not measure, or
    one whose audio hash differs (generated clips decoded otherwise), or a record that names no hashes."""
    hashes = record.get("audio_sha256")
    if not hashes:
        return "it names no audio hashes (made before they were recorded)"
    for track in manifest.table["track_id"]:
        if track not in hashes:
            return f"it has no loss of track {track}"
        if hashes[track] != manifest.audio_key(track):
            return f"the audio of track {track} differs from the corpus's (hash {hashes[track][:12]}, corpus " \
                   f"{manifest.audio_key(track)[:12]})"
    return ""


def _finished(record: Path, manifest: Manifest) -> bool:
    """Whether a model's record exists and holds a loss of every track's current audio (queries added or decoded
    again later — generated ones — are measured on the cached model, or a bit-identical retraining)."""
    return record.exists() and not audio_mismatch(json.loads(record.read_text()), manifest)


def run_subsets(
    manifest: Manifest,
    model_options: Mapping,
    cache_root: str | Path,
    folder: str | Path,
    *,
    n_models: int,
    fraction: float = 0.5,
    seed: int = 0,
    workers: int = 2,
    threads: int = 1,
    progress: bool = True,
    placement: Placement = REFERENCE,
) -> Study:
    """Train the subset models of a study that are not finished yet and return all `n_models` of them, on
    `placement`.

    `workers` > 1 trains in that many spawned processes (`execution.parallel_map`), each with `threads` torch
    threads (on the `ray` backend: a task per model requesting `threads` CPUs); `workers` = 1 trains in this
    process (with `threads` threads, restored afterwards). A model whose `models/mNNN.json` exists is read back,
    not trained again; one whose record lacks tracks added since (generated queries) is loaded from the model
    cache and measured again, not retrained.
    """
    folder = Path(folder)
    (folder / MODELS_DIR).mkdir(parents=True, exist_ok=True)
    train_ids = manifest.train_ids
    planned = json.loads((folder / PLAN_FILE).read_text())["subsets"] if (folder / PLAN_FILE).exists() else []
    subsets = [draw_subset(train_ids, fraction, seed, m) for m in range(max(n_models, len(planned)))]
    plan = {"manifest_sha256": manifest.sha256(), "catalogue_key": manifest.content_key(train_ids),
            "model": dict(model_options), "fraction": fraction, "subset_seed": seed, "train_ids": train_ids,
            "subsets": subsets}
    write_json(folder / PLAN_FILE, plan)
    load = model_loader(model_options, manifest, Path(cache_root), progress=progress, placement=placement)
    load.prepare()  # what every subset model shares (the embedded recipe's codec and codes), made once here
    jobs = [
        {"index": m, "subset": subsets[m], "subset_seed": seed, "manifest": manifest, "model": dict(model_options),
         "cache_root": str(cache_root), "name": model_options.get("name", "embedded"), "threads": threads,
         "out": str(folder / MODELS_DIR / f"m{m:03d}.json"), "placement": placement}
        for m in range(n_models) if not _finished(folder / MODELS_DIR / f"m{m:03d}.json", manifest)
    ]
    bar = tqdm(total=n_models, initial=n_models - len(jobs), desc="subset models", unit="model",
               disable=not progress)
    previous = torch.get_num_threads()  # a job run in this process sets its own thread count
    try:  # an interrupt stops the map; finished models are on disk, so rerunning resumes
        for record in parallel_map(train_subset_model, jobs, workers=workers, cpus=threads,
                                   gpus=parallel_options().gpus_per_task):
            bar.update(1)
            bar.set_postfix(seconds=record["wall_seconds"])
    finally:
        torch.set_num_threads(previous)
        bar.close()
    return load_study(folder, n_models, manifest)


def load_study(folder: str | Path, n_models: int | None = None, manifest: Manifest | None = None) -> Study:
    """The finished models among the first `n_models` of a study (all finished ones when None), in index order;
    with `manifest`, every record must hold the losses of that corpus's audio (ParameterError naming the stage to
    rerun otherwise)."""
    folder = Path(folder)
    if not (folder / PLAN_FILE).is_file():
        raise ParameterError(f"{folder}: no subset study here (run `python -m experiments.subsets` with the same "
                             "overrides first)")
    plan = json.loads((folder / PLAN_FILE).read_text())
    paths = sorted((folder / MODELS_DIR).glob("m*.json"))
    records = [json.loads(p.read_text()) for p in paths]
    records = [r for r in records if n_models is None or r["index"] < n_models]
    if not records:
        raise ParameterError(f"{folder}: no finished subset model (run `python -m experiments.subsets` first)")
    for record in records if manifest is not None else ():
        why = audio_mismatch(record, manifest)
        if why:
            name = f"m{record['index']:03d}.json"
            raise ParameterError(f"{folder / MODELS_DIR / name}: {why}; rerun `python -m experiments.subsets` with "
                                 "the same overrides to measure it again")
    track_ids = records[0]["track_ids"]
    train_ids = plan["train_ids"]
    position = {t: i for i, t in enumerate(train_ids)}
    membership = np.zeros((len(records), len(train_ids)), dtype=bool)
    for row, record in enumerate(records):
        membership[row, [position[t] for t in record["subset"]]] = True
    return Study(
        folder=folder,
        train_ids=train_ids,
        track_ids=track_ids,
        subsets=[r["subset"] for r in records],
        membership=membership,
        losses=np.array([r["losses"] for r in records], dtype=np.float64),
        codebook_losses=np.array([r["codebook_losses"] for r in records], dtype=np.float64),
        records=records,
        last_losses=(np.array([r["last_losses"] for r in records], dtype=np.float64)
                     if all("last_losses" in r for r in records) else None),
    )


def open_study(manifest: Manifest, model_options: Mapping, cache_root: str | Path, options: Mapping, *,
               progress: bool = True, placement: Placement = REFERENCE) -> Study:
    """Train what is missing of the study `options` describes and return it (models trained on `placement`;
    a placement other than CPU float32 has a study folder of its own).

    options: the `ground_truth` settings (conf/ground_truth.yaml): `dir` (root of the study folders),
    `n_models`, `fraction`, `subset_seed`, `workers` and `threads_per_worker`; model_options: the `model` group.
    """
    fraction, seed = float(options["fraction"]), int(options["subset_seed"])
    folder = study_folder(options["dir"], manifest, model_options, fraction, seed)
    folder = folder.with_name(folder.name + placement.tag)
    return run_subsets(
        manifest, model_options, cache_root, folder, n_models=int(options["n_models"]), fraction=fraction,
        seed=seed, workers=int(options["workers"]), threads=int(options["threads_per_worker"]), progress=progress,
        placement=placement,
    )


def judged_study(manifest: Manifest, model_options: Mapping, options: Mapping, *,
                 placement: Placement = REFERENCE) -> Study:
    """The first `options['n_models']` models of the study `options` describes, for judging: nothing is trained;
    ParameterError naming `experiments.subsets` when a model is missing or measured other audio than `manifest`'s."""
    fraction, seed = float(options["fraction"]), int(options["subset_seed"])
    folder = study_folder(options["dir"], manifest, model_options, fraction, seed)
    study = load_study(folder.with_name(folder.name + placement.tag), int(options["n_models"]), manifest)
    if study.n_models < int(options["n_models"]):
        raise ParameterError(f"{study.folder}: {study.n_models} of {options['n_models']} subset models finished; run "
                             "`python -m experiments.subsets` with the same overrides first")
    return study


def timing_summary(study: Study) -> dict[str, float]:
    """Mean training seconds per model (as trained) and the models trained in this study's records."""
    trained = [r for r in study.records if r.get("train_seconds")]
    seconds = [r["train_seconds"] for r in trained]
    return {"models": study.n_models, "mean_train_seconds": float(np.mean(seconds)) if seconds else float("nan"),
            "threads_per_model": trained[0]["threads"] if trained else 0}
