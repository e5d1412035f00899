"""The report in a real browser (docs/report.md#browser-checks): headless Chromium opens one page of each kind
built from the synthetic study; no console error, every link resolves, every audio element loads with a
positive duration, players start at their segment, sorting reorders rows, and a screenshot per page kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from aria.channels import AUDIO
from lumina.site import SiteOptions, build_site
from lumina.site.browser import check_pages, play_from_segment
from tests.site_fixtures import write_study


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    study = write_study(tmp_path_factory.mktemp("site-browser"))
    out = study["outputs"] / "report"
    build_site(study["runs"], out, truth_roots=[study["outputs"]], attributions=study["reports"], channel_set=AUDIO,
               options=SiteOptions(channel_similarity=False, headline_k=3, progress=False),
               command="python -m experiments.report (test)")
    return out


def test_one_page_of_each_kind_passes_in_headless_chromium(site: Path, tmp_path: Path) -> None:
    pages = {"leaderboard": site / "index.html",
             "setting": site / "settings" / "tiny-cafe0123-embedded--graddot--raw.html",
             "query": site / "queries" / "tiny-cafe0123-embedded--q_near_copy_00.html",
             "attribution": next((site / "attribution").glob("*.html"))}
    checks = dict(zip(pages, check_pages(list(pages.values()), tmp_path / "screenshots"), strict=True))
    for kind, check in checks.items():
        assert check.problems == [], kind
        assert check.screenshot is not None and check.screenshot.stat().st_size > 10_000, kind
    query = checks["query"]
    # the query, then top 5 of each of the three settings; every one decoded with its 2 s duration
    assert len(query.audio) == 16 and all(a["duration"] == pytest.approx(2.0, abs=0.05) for a in query.audio)
    assert any(a["start"] == pytest.approx(1.0) and a["currentTime"] == pytest.approx(1.0) for a in query.audio)
    assert len(checks["attribution"].audio) == 1 + 2 * 5
    for kind in ("leaderboard", "setting", "query", "attribution"):
        before, ascending, descending = checks[kind].sorted_column
        numbers = [float(v) if v else float("inf") for v in ascending]
        assert numbers == sorted(numbers), kind
        assert [v for v in descending if v] == sorted((v for v in before if v), key=float, reverse=True), kind


def test_a_player_plays_from_its_segment(site: Path) -> None:
    start, played_from, paused_at = play_from_segment(site / "queries" / "tiny-cafe0123-embedded--q_near_copy_00.html")
    assert start == pytest.approx(1.0) and played_from == pytest.approx(1.0)
    assert 1.0 < paused_at < 2.0  # it played on from the segment
