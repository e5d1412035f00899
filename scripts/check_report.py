"""Check a built report in headless Chromium (docs/report.md#browser-checks) and keep the screenshots.

    python scripts/check_report.py                      # outputs/report -> outputs/report_screenshots/
    python scripts/check_report.py --report outputs/report --pages 3

Opens the leaderboard and the first `--pages` pages of each other kind (settings, queries, attribution
reports), prints what it finds on each, writes a full-page screenshot of each and exits 1 on any problem.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lumina.site.browser import check_pages  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", default="outputs/report", help="the report folder (holding index.html)")
    parser.add_argument("--screenshots", default="outputs/report_screenshots", help="where screenshots go")
    parser.add_argument("--pages", type=int, default=2, help="pages of each kind to open")
    parser.add_argument("--browser", default=None, help="Chromium executable (default: found on PATH)")
    args = parser.parse_args()
    report = Path(args.report)
    if not (report / "index.html").is_file():
        sys.exit(f"{report}/index.html not found: build the report with `python -m experiments.report` first")
    pages = [report / "index.html"]
    for kind in ("settings", "queries", "attribution"):
        pages += sorted((report / kind).glob("*.html"))[: args.pages]
    failed = False
    for check in check_pages(pages, Path(args.screenshots), browser=args.browser):
        problems = check.problems
        failed |= bool(problems) or (check.sorted_column is not None and check.sorted_column[0] ==
                                     check.sorted_column[1] == check.sorted_column[2])
        playing = sum(a["duration"] > 0 for a in check.audio)
        print(f"{check.path.relative_to(report.resolve())}: {playing}/{len(check.audio)} audio decoded, "
              f"{'sorting reorders rows' if check.sorted_column else 'no sortable column'}, "
              f"{len(problems)} problem(s); screenshot {check.screenshot}")
        for problem in problems:
            print(f"  {problem}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
