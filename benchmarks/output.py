"""Where a benchmark's figures go: `<out>/<name>.json` (everything) and `<name>.md` (the tables), printed too."""

from __future__ import annotations

import json
from pathlib import Path


def write(out: str | Path, name: str, result: dict, markdown: str) -> None:
    """Write `result` as JSON and `markdown` beside it under `out`, and print the Markdown."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=1))
    (out / f"{name}.md").write_text(markdown)
    print(markdown)
