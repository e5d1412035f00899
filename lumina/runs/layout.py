"""The layout of `outputs/`, owned here and nowhere else (docs/formats.md#output-layout): every path below the
cache, the runs and the reports is built by one of these functions, so a reader of the code finds each folder's
name in one place.

    <cache>/corpus/<name>-<key>/                        a corpus (`corpus_dir`; key: its settings or content)
    <cache>/corpus/<parsed scores>/                     parsed music21 scores shared by corpus builds
    <cache>/codecs/<kind>-<key>/                        fitted codecs (`codec_dir`)
    <cache>/codes/<codec identity>/<audio sha256>.npy   codes of each audio file (`codes_dir`)
    <cache>/models/<name>-<key>/                        trained generators (`model_dir`)
    <cache>/signatures/<model identity>/                LUMINA's signature store of one model (`signature_store`)
    <cache>/methods/<experiment>/<method>/              a method's resumable intermediate results
    <cache>/numba/                                      numba's compiled functions
    <outputs>/generated/<data>-<model>-seed<N>/         generated queries (`generated_dir`, the default folder)
    <runs>/<experiment>/<method>/<setting>/             score matrices and run records
    <outputs>/reports/<audio stem>/                     one-file attribution reports (`report_dir`)

Inside each folder its writer owns the files (a corpus's `audio/`, a model's checkpoints).

`<experiment>` is `<data.name>-<catalogue key>-<model.name>-seed<N>`, plus `-g<generated key>` when the corpus
includes generated queries (`experiment_name`): two catalogues with different content never share a folder, and
the catalogue key (the training catalogue's content) does not change with the model seed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from lumina.runs.device import REFERENCE, Placement


def corpus_root(cache: str | Path) -> Path:
    """`<cache>/corpus`: every corpus build of this cache."""
    return Path(cache) / "corpus"


def corpus_dir(cache: str | Path, name: str, key: str) -> Path:
    """`<cache>/corpus/<name>-<key>`."""
    return corpus_root(cache) / f"{name}-{key}"


def parsed_scores_dir(corpus_root_dir: str | Path, kind: str) -> Path:
    """`<cache>/corpus/<kind>`: parsed music21 scores shared by the corpus builds of one cache (`kind`:
    `music21-scores-<builder version>-<music21 version>` for the rendered corpus, `music21_notes` for MIDI
    windows)."""
    return Path(corpus_root_dir) / kind


def codec_dir(cache: str | Path, kind: str, key: str) -> Path:
    """`<cache>/codecs/<kind>-<key>`: a codec fitted on a training set."""
    return Path(cache) / "codecs" / f"{kind}-{key}"


def codes_dir(cache: str | Path, codec_identity: str) -> Path:
    """`<cache>/codes/<codec identity>`: one `<audio sha256>.npy` per encoded audio file."""
    return Path(cache) / "codes" / codec_identity


def model_dir(cache: str | Path, name: str, key: str) -> Path:
    """`<cache>/models/<name>-<key>`: a generator trained by a recipe."""
    return Path(cache) / "models" / f"{name}-{key}"


def signature_store(cache: str | Path, model_identity: str) -> Path:
    """`<cache>/signatures/<model identity>`: where a model's signature databases live, shared by every version of
    every catalogue it signs (docs/execution.md#incremental-catalogues)."""
    return Path(cache) / "signatures" / model_identity


def numba_dir(cache: str | Path) -> Path:
    """`<cache>/numba`: numba's cache of compiled functions."""
    return Path(cache) / "numba"


def generated_dir(outputs: str | Path, data_name: str, model_name: str, seed: int) -> Path:
    """`<outputs>/generated/<data>-<model>-seed<N>`: the default folder of the generated-queries stage."""
    return Path(outputs) / "generated" / f"{data_name}-{model_name}-seed{int(seed)}"


def report_dir(outputs: str | Path, audio: str | Path) -> Path:
    """`<outputs>/reports/<audio stem>`: the attribution report of one file."""
    return Path(outputs) / "reports" / Path(audio).stem


def study_dir(root: str | Path, key: str) -> Path:
    """`<ground_truth.dir>/<key>`: one subset study (plan.json, models/)."""
    return Path(root) / key


def experiment_name(data_name: str, catalogue_key: str, model_name: str, seed: int, generated_key: str = "") -> str:
    """`<data>-<catalogue key[:8]>-<model>-seed<N>[-g<generated key[:8]>]`."""
    name = f"{data_name}-{catalogue_key[:8]}-{model_name}-seed{int(seed)}"
    return f"{name}-g{generated_key[:8]}" if generated_key else name


SEED_PART = re.compile(r"-seed\d+(-g[0-9a-f]+)?$")


def experiment_group(experiment: str) -> str:
    """`experiment_name` without its seed (and generated key): what the runs of one corpus and recipe share across
    model seeds."""
    return SEED_PART.sub("", experiment)


@dataclass(frozen=True)
class Layout:
    """Where one experiment (a corpus and a generator recipe) keeps its caches and runs."""

    cache: Path
    runs_root: Path
    experiment: str
    placement: Placement = REFERENCE

    @property
    def runs(self) -> Path:
        """`<runs>/<experiment>`: one folder per method and setting below it."""
        return self.runs_root / self.experiment

    def method_cache(self, method: str) -> Path:
        """`<cache>/methods/<experiment>/<method>`, the method's name tagged off CPU float32 (`Placement.tag`)."""
        return self.cache / "methods" / self.experiment / f"{method}{self.placement.tag}"

    def run_folder(self, method: str, setting: str) -> Path:
        """`<runs>/<experiment>/<method>/<setting>`."""
        return self.runs / method / setting


def ablation_database(method_cache: str | Path, model_identity: str) -> Path:
    """`<method cache>/causal/signatures-<model identity>.h5`: the signatures of one ablated model in LUMINA's causal
    check (`method_cache`: `Layout.method_cache("lumina")`)."""
    return Path(method_cache) / "causal" / f"signatures-{model_identity}.h5"
