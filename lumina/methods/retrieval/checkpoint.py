"""Local checkpoint directories (transformers layout): checks, content hash, remote-code detection, licence."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from lumina.runs.errors import CheckpointError

HASHED_SUFFIXES = (".json", ".safetensors", ".bin", ".py")
"""Files whose content makes a checkpoint: configs, weights and (remote) code; model cards are not hashed."""


def checkpoint_dir(path: str | Path, *, needs: tuple[str, ...] = ("config.json",)) -> Path:
    """The resolved directory `path`, checked to exist and to hold the files `needs`."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: checkpoint directory not found (set method.checkpoint to a local "
                              "directory in transformers layout; nothing is downloaded)")
    missing = [name for name in needs if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(f"{folder}: not a complete checkpoint, missing {missing} (save it with "
                              "`save_pretrained` for both the model and its feature extractor)")
    return folder.resolve()


def read_config(folder: Path) -> dict[str, Any]:
    """The directory's config.json as a dict."""
    return json.loads((folder / "config.json").read_text())


def remote_code(config: dict[str, Any]) -> dict[str, str]:
    """The config's `auto_map` (class → module.Class in the directory): non-empty when loading runs its code."""
    return dict(config.get("auto_map") or {})


def weights_file(folder: Path) -> str:
    """Name of the weights transformers will load: safetensors when present, else a PyTorch file (loaded with
    weights_only=True)."""
    for pattern in ("*.safetensors", "*.bin"):
        found = sorted(p.name for p in folder.glob(pattern))
        if found:
            return found[0] if len(found) == 1 else f"{len(found)} shards ({pattern})"
    raise CheckpointError(f"{folder}: no weights (*.safetensors or *.bin) in the checkpoint directory")


def checkpoint_sha256(folder: Path) -> str:
    """SHA-256 over the names and contents of the directory's configs, weights and code (sorted by name)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in HASHED_SUFFIXES):
        digest.update(file.name.encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def model_card_licence(folder: Path) -> str:
    """The `license:` of the model card (README.md front matter), or 'unknown' when there is none."""
    card = folder / "README.md"
    if card.is_file():
        lines = card.read_text(errors="replace").splitlines()
        if lines and lines[0].strip() == "---":
            for line in lines[1:]:
                if line.strip() == "---":
                    break
                if line.startswith("license:"):
                    return line.split(":", 1)[1].strip()
    return "unknown (no model card licence in the checkpoint directory)"
