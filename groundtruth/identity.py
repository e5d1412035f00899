"""What a ground truth was measured on, machine-readable (`truth.json` beside `ground_truth.csv`): the subset
study (its folder and key), the corpus (the catalogue key of the runs judged when known, the training tracks' key
and the manifest SHA-256 the study's plan records), the model recipe, the number of subset models and the
command. The HTML report joins a truth to a run by it (docs/report.md#inputs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

from execution.files import write_json
from lumina.runs.provenance import relative

TRUTH_IDENTITY = "truth.json"
PLAN_FILE = "plan.json"
"""A subset study's plan (written by `groundtruth.study`, read here and by the site)."""


class SubsetStudy(Protocol):
    """What the identity needs of a subset study (`groundtruth.study.Study`)."""

    folder: Path

    @property
    def n_models(self) -> int: ...


def write_truth_identity(results: str | Path, study: SubsetStudy, command: str, *, catalogue_key: str = "") -> Path:
    """Write `truth.json` into `results` from the study's `plan.json`; `catalogue_key`: the catalogue key of the
    corpus judged, as its runs record it ('' when unknown; the plan's own key covers the training tracks only and
    is kept as `training_key`). Returns the file."""
    plan = json.loads((Path(study.folder) / PLAN_FILE).read_text())
    identity = {
        "study": relative(study.folder),
        "study_key": Path(study.folder).name,
        "catalogue_key": catalogue_key,
        "training_key": plan.get("catalogue_key", ""),
        "manifest_sha256": plan.get("manifest_sha256", ""),
        "model": plan.get("model", {}),
        "n_models": study.n_models,
        "command": command,
    }
    return write_json(Path(results) / TRUTH_IDENTITY, identity)


def read_truth_identity(folder: str | Path) -> dict | None:
    """The `truth.json` of a ground-truth folder, or None when there is none."""
    path = Path(folder) / TRUTH_IDENTITY
    return json.loads(path.read_text()) if path.is_file() else None
