"""The generated-queries stage: clips the generator under attribution samples itself, the user's case
(docs/corpus.md#queries), written into a folder that a corpus includes through `data.generated_dir`.

    folder = generate_queries(generator, manifest, out, GenerationSettings(count=16, seconds=12.0))

Audio generators: each clip is sampled under the description of a training track (drawn without replacement
from a seeded permutation), batch by batch with the seed `seed · 100003 + first index of the batch`, decoded by
the generator's codec and levelled like every other track; WAVs and their codes are written. Batches are sampled
and decoded in parallel worker processes (`execution.parallel_map`), each on one thread. MIDI generators
(untimed codecs, docs/symbolic.md#the-corpus): each window is sampled after the first `primer` tokens of a
held-out query, with seed `seed + i`, and written as MIDI.

The folder's `generated.json` holds the key of everything that shapes the clips (`generation_key`: model
identity, settings, the codec's decoder), its parts, one manifest row per clip and the stage's provenance. A
folder whose key matches is reused; one made with anything else is replaced, never reused silently.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from execution import parallel_map
from execution.files import write_json
from lumina.data.audio import save_audio
from lumina.data.common import read_json
from lumina.data.generated import RECORD
from lumina.data.manifest import Manifest
from lumina.data.render import normalise
from lumina.models.protocol import Generator
from lumina.models.remote import generator_handle, use, worker_generator
from lumina.runs.errors import ParameterError
from lumina.runs.provenance import relative, stamp

BATCH = 8
"""Clips sampled together (audio)."""


@dataclass(frozen=True)
class GenerationSettings:
    """What shapes the clips besides the model (conf/data/*.yaml `generated`)."""

    count: int = 16
    seconds: float = 12.0
    """Audio: clip length (frames at the codec's rate)."""
    seed: int = 0
    temperature: float = 1.0
    top_k: int = 0
    """Audio: sample among the `top_k` likeliest codes (0: all)."""
    primer: int = 16
    """MIDI: tokens of a held-out query each window starts from."""
    length: int = 256
    """MIDI: tokens per window, primer included."""
    target_rms_dbfs: float = -20.0
    """Audio: the level every clip is scaled to (the corpus's `target_rms_dbfs`)."""

    @classmethod
    def from_mapping(cls, values: dict) -> GenerationSettings:
        known = {k: values[k] for k in cls.__dataclass_fields__ if k in values}
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ParameterError(f"data.generated: unknown settings {unknown}; known: "
                                 f"{sorted(cls.__dataclass_fields__)}")
        return cls(**known)


def is_symbolic(generator: Generator) -> bool:
    """Whether the generator's codec is untimed (MIDI events: frame rate 0)."""
    return float(generator.codec.frame_rate) == 0.0


def generation_key(generator: Generator, settings: GenerationSettings) -> tuple[str, dict]:
    """(12 hex digits, its parts): the model's identity, the settings that apply to its kind, the codec's
    decoder (`Codec.decoder`: the inversion method and its parameters)."""
    fields = ("count", "primer", "length", "seed", "temperature") if is_symbolic(generator) else (
        "count", "seconds", "seed", "temperature", "top_k", "target_rms_dbfs")
    parts = {"model_identity": generator.identity(), "settings": {k: getattr(settings, k) for k in fields},
             "decoder": generator.codec.decoder}
    key = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return key, parts


def generate_queries(generator: Generator, manifest: Manifest, out: str | Path, settings: GenerationSettings, *,
                     workers: int = 1, progress: bool = True) -> Path:
    """Write the generated queries of `generator` into `out` (reused when its key matches); returns `out`.

    manifest: the catalogue the generator was trained on (prompts: training descriptions for audio, held-out
    queries for MIDI). workers: processes that decode audio clips (the result does not depend on it).
    """
    if settings.count <= 0:
        raise ParameterError(f"data.generated.count must be positive, got {settings.count}")
    out = Path(out)
    key, parts = generation_key(generator, settings)
    if read_json(out / RECORD).get("key") == key:
        return out
    if out.exists():
        shutil.rmtree(out)  # clips of another model or other settings: replaced, never reused
    out.mkdir(parents=True)
    rows = (_midi_windows if is_symbolic(generator) else _audio_clips)(generator, manifest, out, settings, workers,
                                                                       progress)
    provenance = stamp(config=asdict(settings), upstream={"model": generator.identity(),
                                                          "catalogue": manifest.catalogue_key},
                       model_source=relative(generator.source))
    write_json(out / RECORD, {"key": key, **parts, "rows": rows, "provenance": provenance.record()})
    return out


def _audio_clips(generator: Generator, manifest: Manifest, out: Path, s: GenerationSettings, workers: int,
                 progress: bool) -> list[dict]:
    train = manifest.train_ids
    order = np.random.default_rng([s.seed, 7]).permutation(len(train))
    prompts = [manifest.description_of(train[int(order[j % len(train)])]) for j in range(s.count)]
    frames = int(round(s.seconds * generator.codec.frame_rate))
    jobs = [(prompts[start:start + BATCH], frames, s.seed * 100_003 + start, s) for start in range(0, s.count, BATCH)]
    _decode(generator.codec, np.zeros((generator.num_codebooks, 4), dtype=np.int64), s.target_rms_dbfs)  # warm-up
    results = []
    batches = (parallel_map(_sample_and_decode, jobs, workers=workers, initializer=use,
                            initargs=(generator_handle(generator),)) if workers > 1 and len(jobs) > 1
               else (_sample_and_decode(job, generator) for job in jobs))
    with tqdm(total=s.count, desc="sampling and decoding generated queries", unit="clip", disable=not progress) as bar:
        for batch in batches:
            results += batch
            bar.update(len(batch))
    rate = generator.codec.sample_rate
    rows = []
    for index, (text, (clip, audio)) in enumerate(zip(prompts, results, strict=True)):
        track_id = f"q_generated_{index:02d}"
        save_audio(out / f"{track_id}.wav", audio, rate)
        np.save(out / f"{track_id}.codes.npy", clip)
        rows.append({"track_id": track_id, "split": "query", "path": f"{track_id}.wav",
                     "duration_s": audio.shape[0] / rate, "sample_rate": rate, "description": text,
                     "query_kind": "generated",
                     "variant": f"sampled seed {s.seed}, temperature {s.temperature:g}, top_k {s.top_k}"})
    return rows


def _sample_and_decode(job: tuple, generator: Generator | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """One batch (prompts, frames, seed, settings) → its clips' codes (K, frames) and levelled audio (n,), sampled
    on one torch thread by `generator` (None: the worker's, `lumina.models.remote.use`): a module-level function
    for the parallel map, whose result depends neither on the process nor on the caller's thread count."""
    prompts, frames, seed, s = job
    generator = generator or worker_generator()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        codes = generator.sample(prompts, frames, seed=seed, temperature=s.temperature, top_k=s.top_k)
    finally:
        torch.set_num_threads(threads)
    return [(clip, _decode(generator.codec, clip, s.target_rms_dbfs)) for clip in codes]


def _decode(codec: Any, clip: np.ndarray, target_rms_dbfs: float) -> np.ndarray:
    """One clip's codes (K, T) → levelled audio (n,) by an audio codec's `decode`, on one BLAS thread (the
    embedded codec's products give other last bits on two). Called once on four frames (one FFT window) before
    the workers start: librosa's inverse STFT is compiled by numba on first use, and numba's on-disk cache is
    not safe when two processes compile at once (`execution.parallel_map`'s `first_here`), so this process
    compiles it and the workers read the cache."""
    with threadpool_limits(limits=1, user_api="blas"):
        return normalise(np.asarray(codec.decode(clip), dtype=np.float64), target_rms_dbfs)


def _midi_windows(generator: Generator, manifest: Manifest, out: Path, s: GenerationSettings, workers: int,
                  progress: bool) -> list[dict]:
    from lumina.data.midi import decode_events, write_midi
    from lumina.models.music_transformer import sample

    held = manifest.table.loc[manifest.table["query_kind"] == "held_out", "track_id"].tolist()
    if not held:
        raise ParameterError("generated windows are primed with held-out queries; the corpus has none "
                             "(data.queries.held_out > 0)")
    rows = []
    for i in tqdm(range(s.count), desc="sampling generated windows", disable=not progress):
        primer = held[i % len(held)]
        events = generator.codec.read(manifest.path_of(primer))[:s.primer]
        sampled = sample(generator, events, s.length, seed=s.seed + i, temperature=s.temperature)
        path = write_midi(decode_events(sampled), out / f"generated_{i:02d}.mid")
        rows.append({"track_id": f"q_generated_{i:02d}", "split": "query", "path": path.name,
                     "query_kind": "generated", "variant": f"primed with {primer}"})
    return rows
