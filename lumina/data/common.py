"""Helpers shared by the corpus builders: plain configs, cache keys, atomic JSON files."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from omegaconf import DictConfig, OmegaConf


def plain_config(cfg: Mapping) -> dict:
    """A resolved plain-dict copy of a Hydra/OmegaConf or ordinary mapping (`???` values stay as they are)."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    return json.loads(json.dumps(dict(cfg), default=str))


def settings_key(settings: Mapping) -> str:
    """Short SHA-256 of the settings as canonical JSON (12 hex digits)."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def read_json(path: Path) -> dict:
    """The JSON object in `path`, or {} when the file is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
