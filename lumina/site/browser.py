"""Checks of a built report in a real browser (docs/report.md#browser-checks): headless Chromium driven by
Playwright through the system browser (`executable_path`), as the tests and `scripts/check_report.py` run them.

For each page: no console error, every link and image resolves, every audio element loads with a positive
duration, a player with a segment starts there, and sorting a sortable column reorders its rows; then a
full-page screenshot.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from lumina.runs.errors import ParameterError

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
AUDIO_TIMEOUT_MS = 15000

_AUDIO_STATE = """() => Array.from(document.querySelectorAll('audio')).map(a => ({
    src: a.currentSrc || a.src, duration: a.duration, currentTime: a.currentTime,
    start: parseFloat(a.dataset.start || '0'), error: a.error ? a.error.code : null}))"""
_ALL_LOADED = """() => Array.from(document.querySelectorAll('audio')).every(
    a => a.error !== null || (a.readyState >= 1 && a.duration > 0))"""
_SORT_KEYS = """(args) => { const [table, col] = args;
    return Array.from(document.querySelectorAll('table.sortable')[table].tBodies[0].rows).map(
        r => r.cells[col].getAttribute('data-sort') ?? r.cells[col].textContent.trim()); }"""


@dataclass
class PageCheck:
    """What the browser found on one page."""

    path: Path
    console_errors: list[str] = field(default_factory=list)
    broken_links: list[str] = field(default_factory=list)
    audio: list[dict] = field(default_factory=list)
    sorted_column: tuple[list[str], list[str], list[str]] | None = None
    screenshot: Path | None = None

    @property
    def problems(self) -> list[str]:
        """Everything wrong with the page, one line each (empty when the page passes)."""
        out = [f"console: {e}" for e in self.console_errors] + [f"broken link: {b}" for b in self.broken_links]
        for a in self.audio:
            if a["error"] is not None or not a["duration"] > 0:
                out.append(f"audio does not load: {a['src']} (error {a['error']}, duration {a['duration']})")
            elif abs(a["currentTime"] - a["start"]) > 0.05:
                out.append(f"audio starts at {a['currentTime']:.2f} s, not its segment {a['start']:.2f} s: {a['src']}")
        return out


def find_browser(explicit: str | None = None) -> str:
    """The Chromium executable to drive (explicit path, else the first of `BROWSERS` on PATH)."""
    found = explicit or next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if not found:
        raise ParameterError("no Chromium on PATH for the browser checks; install it with `make system` "
                             "(Debian: apt-get install chromium)")
    return found


def _resolves(url: str, page_path: Path, page) -> bool:
    """Whether a link of a page points at an existing file (and, with a fragment on the same page, element)."""
    parsed = urlparse(url)
    if parsed.scheme not in ("file", ""):
        return True  # the report links to no outside address; one would not be checked here
    target = Path(unquote(parsed.path))
    if target == page_path and parsed.fragment:
        return page.locator(f"[id='{parsed.fragment}']").count() > 0
    return target.is_file()


def _check_sort(page, check: PageCheck) -> None:
    """Press the header of the first sortable table's first numeric column; record the order before, after
    one press (ascending) and after two (descending)."""
    tables = page.locator("table.sortable")
    if tables.count() == 0:
        return
    headers = tables.nth(0).locator("thead th")
    for col in range(headers.count()):
        before = page.evaluate(_SORT_KEYS, [0, col])
        if len(set(before)) > 1 and all(_number(v) is not None for v in before if v != ""):
            headers.nth(col).locator("button").click()
            ascending = page.evaluate(_SORT_KEYS, [0, col])
            headers.nth(col).locator("button").click()
            check.sorted_column = (before, ascending, page.evaluate(_SORT_KEYS, [0, col]))
            return


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def check_pages(pages: Sequence[Path], screenshots: Path | None = None, *, browser: str | None = None
                ) -> list[PageCheck]:
    """Open each page in headless Chromium and check it (see the module docstring); a screenshot of each
    page goes to `screenshots/<page stem>.png` when a folder is given."""
    from playwright.sync_api import sync_playwright

    results = []
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=find_browser(browser), headless=True,
                                     args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        try:
            context = chromium.new_context(viewport={"width": 1280, "height": 900})
            for path in pages:
                path = Path(path).resolve()
                check = PageCheck(path)
                page = context.new_page()
                page.on("console", lambda m, c=check: c.console_errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e, c=check: c.console_errors.append(str(e)))
                page.goto(path.as_uri(), wait_until="load")
                urls = page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.href)"
                                     ".concat([...document.querySelectorAll('img[src], audio[src]')].map(e => e.src))")
                check.broken_links = sorted({u for u in urls if not _resolves(u, path, page)})
                if page.locator("audio").count():
                    page.wait_for_function(_ALL_LOADED, timeout=AUDIO_TIMEOUT_MS)
                check.audio = page.evaluate(_AUDIO_STATE)
                _check_sort(page, check)
                if screenshots is not None:
                    screenshots.mkdir(parents=True, exist_ok=True)
                    check.screenshot = screenshots / f"{path.parent.name}-{path.stem}.png"
                    page.screenshot(path=str(check.screenshot), full_page=True)
                page.close()
                results.append(check)
        finally:
            chromium.close()
    return results


def play_from_segment(page_path: Path, *, browser: str | None = None) -> tuple[float, float, float]:
    """Play the first audio element of a page whose segment starts after 0 for 0.3 s: (its segment start, the
    time it played from, the time it paused at). Raises when no such player is on the page."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=find_browser(browser), headless=True,
                                     args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        try:
            page = chromium.new_page()
            page.goto(Path(page_path).resolve().as_uri(), wait_until="load")
            page.wait_for_function(_ALL_LOADED, timeout=AUDIO_TIMEOUT_MS)
            found = page.evaluate("""async () => {
                const a = Array.from(document.querySelectorAll('audio')).find(e => parseFloat(e.dataset.start) > 0);
                if (!a) return null;
                const from = a.currentTime;
                await a.play();
                await new Promise(r => setTimeout(r, 300));
                a.pause();
                return [parseFloat(a.dataset.start), from, a.currentTime]; }""")
        finally:
            chromium.close()
    if found is None:
        raise ParameterError(f"{page_path}: no player with a segment start after 0")
    return float(found[0]), float(found[1]), float(found[2])
