"""Generated queries: clips the generator under attribution samples itself, the user's case (docs/corpus.md#queries).

Each clip is sampled under the description of a training track (drawn without replacement from a seeded
permutation), decoded to audio by the generator's codec and levelled like every other track; it has no planted
source (its truth is LDS). Clips are cached in the corpus folder under the generator's identity, so every run of
one model sees the same clips and a retrained model gets its own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from lumina.data.audio import file_sha256, save_audio
from lumina.data.manifest import AUDIO_SHA256, Manifest
from lumina.data.render import normalise
from lumina.models.protocol import Generator

BATCH = 8
"""Clips sampled together."""


def generated_folder(manifest: Manifest, generator: Generator, count: int, seconds: float, seed: int) -> Path:
    return manifest.root / f"generated-{generator.identity()}-n{count}-{seconds:g}s-seed{seed}"


def add_generated_queries(manifest: Manifest, generator: Generator, *, count: int, seconds: float, seed: int,
                          temperature: float = 1.0, top_k: int = 0, target_rms_dbfs: float = -20.0,
                          progress: bool = True) -> Manifest:
    """The manifest with `count` generated queries `q_generated_NN` appended (made once, then reused).

    Clips last `seconds` (frames at the codec's rate); sampling seed `seed`; `temperature`/`top_k` as in
    `MusicgenGenerator.sample`.
    """
    if count <= 0:
        return manifest
    folder = generated_folder(manifest, generator, count, seconds, seed)
    rows_file = folder / "rows.json"
    if not rows_file.exists():
        folder.mkdir(parents=True, exist_ok=True)
        train = manifest.train_ids
        order = np.random.default_rng([seed, 7]).permutation(len(train))
        prompts = [manifest.description_of(train[int(order[j % len(train)])]) for j in range(count)]
        frames = int(round(seconds * generator.codec.frame_rate))
        rows = []
        for start in tqdm(range(0, count, BATCH), desc="generated queries", disable=not progress):
            texts = prompts[start:start + BATCH]
            codes = generator.sample(texts, frames, seed=seed * 100_003 + start, temperature=temperature,
                                     top_k=top_k)
            for offset, (text, clip) in enumerate(zip(texts, codes, strict=True)):
                track_id = f"q_generated_{start + offset:02d}"
                audio = normalise(np.asarray(generator.codec.decode(clip), dtype=np.float64), target_rms_dbfs)
                path = folder / f"{track_id}.wav"
                save_audio(path, audio, generator.codec.sample_rate)
                np.save(folder / f"{track_id}.codes.npy", clip)
                rows.append({
                    "track_id": track_id, "split": "query", "path": str(path.relative_to(manifest.root)),
                    "duration_s": audio.shape[0] / generator.codec.sample_rate,
                    "sample_rate": generator.codec.sample_rate, "description": text, "query_kind": "generated",
                    "variant": f"sampled seed {seed}, temperature {temperature:g}, top_k {top_k}",
                })
        tmp = rows_file.with_name(f"rows.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"model_identity": generator.identity(), "rows": rows}, indent=1))
        tmp.replace(rows_file)
    rows = pd.DataFrame(json.loads(rows_file.read_text())["rows"])
    if AUDIO_SHA256 in manifest.table:  # a catalogue that records its files' hashes records these too
        rows[AUDIO_SHA256] = [file_sha256(manifest.root / p) for p in rows["path"]]
    combined = Manifest(pd.concat([manifest.table, rows.astype(str)], ignore_index=True), manifest.root,
                        f"manifest-{folder.name}.csv")
    tmp = combined.path.with_name(f"{combined.file}.{os.getpid()}.tmp")  # the file run provenance names
    combined.save(tmp)
    tmp.replace(combined.path)
    return combined
