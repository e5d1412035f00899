"""What the report reads (docs/report.md#inputs): method runs with their manifests, Aria's diagnoses and per-query
verdicts, ground-truth tables with the identity of what they were measured on (`truth.json`), and attribution
reports. Everything comes from written files; nothing is recomputed.

Every reader takes whatever is present: a run without `aria.json` has no diagnostics, a query without an
`attributable` column is "not assessed", a ground-truth table without `truth.json` is not joined.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from aria.errors import ArtefactError
from aria.io import ScoreArtefact, read_manifest, read_run, read_scores
from groundtruth.identity import read_truth_identity
from lumina.runs.errors import ParameterError
from lumina.runs.layout import experiment_group
from lumina.runs.provenance import PROJECT, relative

VERDICT_COLUMNS = ("attributable", "abstain_reason")
"""Per-query verdict columns a run's CSV outputs (or datasets of its `scores.h5`) may carry."""
TRUTH_FILE = "ground_truth.csv"


@dataclass
class Run:
    """One method setting of one experiment: its record, matrix, Aria diagnoses and per-query verdicts.

    verdicts: query id → (attributable, reason); empty when the run's outputs carry no verdict.
    """

    experiment: str
    folder: Path
    method: str
    setting: str
    status: str
    reason: str
    matrix: ScoreArtefact | None = None
    diagnostics: dict | None = None
    per_query: pd.DataFrame | None = None
    verdicts: dict[str, tuple[bool, str]] = field(default_factory=dict)
    record_provenance: dict = field(default_factory=dict)

    @property
    def provenance(self) -> dict:
        """The matrix's provenance, or the run record's for a run without one (not configured)."""
        return self.matrix.provenance if self.matrix is not None else self.record_provenance

    @property
    def seed(self) -> object:
        return self.provenance.get("seed")

    @property
    def model_hash(self) -> str:
        """The identity of the model the scores came from: the method's record of it, the upstream model, or (a run
        written before provenance had sections) the record's own field; '?' when none names it."""
        prov = self.provenance
        return str((prov.get("method") or {}).get("model_hash") or (prov.get("upstream") or {}).get("model")
                   or prov.get("model_hash") or "?")

    @property
    def model_id(self) -> str:
        """Where that model was loaded from, when the method records it ('?' when not)."""
        prov = self.provenance
        return str((prov.get("method") or {}).get("model_id") or prov.get("model_id") or "?")

    @property
    def identity(self) -> dict | None:
        """What a ground truth must have been measured on to judge this run: catalogue and model recipe."""
        prov = self.provenance
        if not prov.get("catalogue_key") or "model" not in prov:
            return None
        return {"catalogue_key": prov["catalogue_key"], "model": prov["model"]}

    @property
    def study(self) -> str:
        """The study key the run records (its experiment folder's name), or for a run written before runs
        recorded it, the experiment folder it lies in."""
        return str(self.provenance.get("study") or self.experiment)

    @property
    def group(self) -> str:
        """The runs that differ only by seed share this: the study key without its seed part."""
        return experiment_group(self.study)


def project_path(recorded: str | Path) -> Path:
    """A path as provenance records it: relative to the project (where the apps run) unless absolute."""
    path = Path(recorded)
    return path if path.is_absolute() or path.exists() else PROJECT / path


class Manifests:
    """Every manifest the runs name, each read once: a run's own (its provenance's `manifest`), or `explicit`
    for every run."""

    def __init__(self, explicit: str | Path | None = None):
        self.explicit = Path(explicit) if explicit else None
        self.tables: dict[Path, pd.DataFrame] = {}

    def path(self, run: Run) -> Path:
        """The resolved manifest file of `run`."""
        if self.explicit is not None:
            return self.explicit.resolve()
        named = run.provenance.get("manifest")
        if not named:
            raise ArtefactError(f"{run.folder}: its provenance names no manifest; give one with report.manifest=PATH")
        return project_path(named).resolve()

    def read(self, path: Path) -> pd.DataFrame:
        """The manifest at `path` (`aria.io.read_manifest`: index track_id, absolute audio paths)."""
        if path not in self.tables:
            self.tables[path] = read_manifest(path)
        return self.tables[path]

    def __call__(self, run: Run) -> pd.DataFrame:
        return self.read(self.path(run))


def identity_key(identity: dict | None) -> str:
    """A short readable hash of an identity (corpus key and model recipe); `unknown` for None."""
    if identity is None:
        return "unknown"
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _as_bool(value: object) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes")


def read_verdicts(folder: Path, matrix: ScoreArtefact | None) -> dict[str, tuple[bool, str]]:
    """Per-query `attributable` and `abstain_reason` from the run folder's CSVs, else from datasets of the
    same names in its `scores.h5`; {} when neither carries them."""
    for table_path in sorted(folder.glob("*.csv")):
        table = pd.read_csv(table_path, dtype=str, keep_default_na=False)
        if {"query_id", VERDICT_COLUMNS[0]} <= set(table.columns):
            first = table.drop_duplicates("query_id")
            reasons = first[VERDICT_COLUMNS[1]] if VERDICT_COLUMNS[1] in first else [""] * len(first)
            return {q: (_as_bool(a), str(r)) for q, a, r in zip(first["query_id"], first[VERDICT_COLUMNS[0]],
                                                                  reasons, strict=True)}
    if matrix is not None:
        with h5py.File(matrix.path, "r") as f:
            if VERDICT_COLUMNS[0] in f:
                flags = np.asarray(f[VERDICT_COLUMNS[0]][()]).astype(bool)
                reasons = ([r.decode() if isinstance(r, bytes) else str(r) for r in f[VERDICT_COLUMNS[1]][()]]
                           if VERDICT_COLUMNS[1] in f else [""] * len(flags))
                return {q: (bool(a), r) for q, a, r in zip(matrix.query_ids, flags, reasons, strict=True)}
    return {}


def find_runs(root: str | Path) -> list[Run]:
    """Every run folder (holding a `run.json`) under `root`, sorted by experiment, method and setting.

    `root` is a runs root (`outputs/runs`, experiments below it) or one experiment's folder. A run whose
    files Aria's readers refuse is kept with status `unreadable: <reason>`.
    """
    root = Path(root)
    runs = []
    for record_path in sorted(root.rglob("run.json")) if root.is_dir() else []:
        folder = record_path.parent
        parts = folder.relative_to(root).parts
        experiment = "/".join(parts[:-2]) or root.name
        try:
            record = read_run(folder)
            matrix = read_scores(folder / record.get("scores", "scores.h5")) if record["status"] == "ok" else None
        except ArtefactError as err:
            runs.append(Run(experiment, folder, folder.parent.name, folder.name, "unreadable", str(err)))
            continue
        diagnostics = json.loads((folder / "aria.json").read_text()) if (folder / "aria.json").is_file() else None
        queries = folder / "aria_queries.csv"
        runs.append(Run(
            experiment, folder, str(record["method"]), str(record["setting"]), str(record["status"]),
            str(record.get("reason") or ""), matrix, diagnostics,
            pd.read_csv(queries) if queries.is_file() else None, read_verdicts(folder, matrix),
            record.get("provenance") or {},
        ))
    return runs


@dataclass
class Truth:
    """A ground-truth table (`ground_truth.csv`), what it was measured on (its `truth.json`: catalogue key, manifest
    SHA-256, model recipe, subset models, command; None when absent), and per-query LDS (columns method, setting,
    query_id, lds) when written."""

    folder: Path
    table: pd.DataFrame
    identity: dict | None
    per_query: pd.DataFrame | None

    @property
    def command(self) -> str:
        """The command that made the table, as `truth.json` (else its `command` column) records it."""
        if self.identity and self.identity.get("command"):
            return str(self.identity["command"])
        return str(self.table["command"].iloc[0]) if "command" in self.table.columns and len(self.table) else ""


def _files_named(root: Path, name: str, skip: set[Path]) -> list[Path]:
    """Files called `name` below `root`, sorted, without descending into the folders of `skip`."""
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if (Path(folder) / d).resolve() not in skip)
        found += [Path(folder) / name] if name in files else []
    return sorted(found)


def find_truths(roots: list[str | Path], skip: list[Path]) -> list[Truth]:
    """Every `ground_truth.csv` under `roots` (folders under `skip` are not searched), with its identity and
    any per-query LDS table beside it."""
    truths, seen = [], set()
    skipped = {s.resolve() for s in skip}
    for path in (p for root in roots for p in _files_named(Path(root), TRUTH_FILE, skipped)):
        folder = path.parent.resolve()
        if folder not in seen:
            seen.add(folder)
            table = pd.read_csv(path)
            if not {"method", "setting", "lds"} <= set(table.columns):
                raise ParameterError(f"{path}: a ground-truth table needs the columns method, setting and lds")
            per_query = None
            for other in sorted(folder.glob("*.csv")):
                candidate = pd.read_csv(other) if other != path else None
                if candidate is not None and {"method", "setting", "query_id", "lds"} <= set(candidate.columns):
                    per_query = candidate
                    break
            truths.append(Truth(folder, table, read_truth_identity(folder), per_query))
    return truths


def judged_here(truth: Truth, run: Run) -> tuple[bool, str]:
    """Whether `truth` was measured for `run`'s model: the same catalogue (key; for a truth.json without one, the
    same manifest SHA-256) and model recipe, the same model hash when the table records one, and the same score
    matrix (its ρ₁ equals the run's, when both are known); with the reason when not."""
    if truth.identity is None:
        return False, "it names no identity (no truth.json beside it; rerun the ground truth that made it)"
    if run.identity is None:
        return False, "this run's provenance names no catalogue key or model recipe"
    corpus = "catalogue_key" if truth.identity.get("catalogue_key") else "manifest_sha256"
    if str(truth.identity.get(corpus)) != str(run.provenance.get(corpus)):
        return False, (f"corpus {corpus} {str(truth.identity.get(corpus))[:12]}, this run's is "
                       f"{str(run.provenance.get(corpus))[:12]}")
    if truth.identity.get("model") != run.identity["model"]:
        return False, (f"model recipe {identity_key(truth.identity.get('model'))}, this run's is "
                       f"{identity_key(run.identity['model'])}")
    row = truth_row(truth, run)
    if "model_hash" in row and str(row["model_hash"]) != run.model_hash:
        return False, f"model hash {row['model_hash']}, this run's is {run.model_hash}"
    mine = (run.diagnostics or {}).get("reliability", {}).get("rho1")
    if mine is not None and "rho1" in row and not np.isclose(float(row["rho1"]), float(mine), rtol=0, atol=1e-9):
        return False, (f"it judged another score matrix of this setting (ρ₁ {float(row['rho1']):.4f}, this run's "
                       f"{float(mine):.4f}): a model of the same recipe trained otherwise")
    return True, ""


def truth_for(run: Run, truths: list[Truth]) -> tuple[Truth | None, str]:
    """The ground truth that judges `run` (`judged_here`; the one with most subset models), and a sentence
    saying what was joined or why nothing was (folders relative to the project)."""
    holding = [t for t in truths if ((t.table["method"] == run.method) & (t.table["setting"] == run.setting)).any()]
    if not holding:
        return None, "No ground truth present judges this setting."
    verdicts = [(t, *judged_here(t, run)) for t in holding]
    matching = [t for t, ok, _ in verdicts if ok]
    if matching:
        best = max(matching, key=lambda t: int(t.table.get("n_models", pd.Series([0])).max()))
        return best, (f"Ground truth from {relative(best.folder)} (model {identity_key(run.identity)}, this run's "
                      "model).")
    others = "; ".join(f"{relative(t.folder)}: {why}" for t, _, why in verdicts)
    return None, f"The ground truth present belongs to another model ({others}). Not joined."


def truth_row(truth: Truth | None, run: Run) -> dict:
    """The ground-truth row of `run`'s setting ({} without a truth)."""
    if truth is None:
        return {}
    rows = truth.table[(truth.table["method"] == run.method) & (truth.table["setting"] == run.setting)]
    return rows.iloc[0].to_dict() if len(rows) else {}


def query_lds(truth: Truth | None, run: Run) -> dict[str, float]:
    """Per-query LDS of `run`'s setting from the truth's per-query table ({} when not written)."""
    if truth is None or truth.per_query is None:
        return {}
    rows = truth.per_query[(truth.per_query["method"] == run.method) & (truth.per_query["setting"] == run.setting)]
    return dict(zip(rows["query_id"].astype(str), rows["lds"].astype(float), strict=True))


def find_attributions(root: str | Path) -> list[tuple[Path, dict]]:
    """Every `report.json` of `experiments.attribute` under `root`, with its content, sorted by path."""
    root = Path(root)
    found = []
    for path in sorted(root.rglob("report.json")) if root.is_dir() else []:
        report = json.loads(path.read_text())
        if isinstance(report, dict) and "channels" in report and "audio" in report:
            found.append((path, report))
    return found
