"""The HTML report of a study (docs/report.md): leaderboard, method settings, queries with audio players, and
LUMINA attribution reports, as a static site that opens from disk."""

from lumina.site.build import SiteOptions, build_site

__all__ = ["SiteOptions", "build_site"]
