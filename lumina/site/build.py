"""Build the static report (docs/report.md): a leaderboard page per study, a page per method setting, a page per
query with every method side by side, and a page per attribution report, rendered with the Jinja2 templates of
`lumina/site/templates/`.

A study is the runs of one study key (recorded by each run: corpus, catalogue and model) without its seed part;
runs that differ only by seed are one setting with its spread across seeds. Everything shown is read from what
the runs, the ground truth and the attribution reports wrote (docs/report.md#inputs).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from aria.channels import ChannelSet
from aria.errors import ArtefactError
from aria.features import FeatureSettings
from aria.figures import energy_figure, ksweep_figure, residual_figure
from aria.leaderboard import RELIABILITY, leaderboard_row, rank_settings
from execution.files import write_text
from lumina.runs.provenance import relative
from lumina.site import media
from lumina.site.evidence import Ranking, channel_similarities, lumina_evidence, ranking
from lumina.site.inputs import (
    Manifests,
    Run,
    Truth,
    find_attributions,
    find_runs,
    find_truths,
    query_lds,
    truth_for,
    truth_row,
)

PLANTED_KINDS = ("near_copy", "composition", "production")
MEANING = {
    "rho1": ("ρ₁", "The share of the matrix's energy on its first singular axis: near 1, every query gets "
                   "nearly the same ranking of the training set."),
    "rho2_5": ("ρ₂:₅", "The energy on axes 2 to 5: query-specific structure beyond the dominant axis."),
    "concentration": ("c̄", "The fraction of each query's scores carried by their mean: near 1, a query's scores "
                            "are one constant offset."),
    "inter_query_corr": ("ρ̄", "The mean absolute correlation between two queries' score columns: near 1, the "
                               "query barely changes the scores."),
    "collapsed": ("collapsed", "Whether ρ₁ or c̄ passes Aria's collapse threshold: a collapsed setting retrieves "
                               "one fixed group whatever the query, so it is not ranked."),
    "z": ("z̄", "How much more alike in this channel a query's top-K tracks are than random groups of K, in "
               "standard deviations of the random groups, averaged over queries."),
    "rank": ("rank", "Aria's rank among the settings that are not collapsed, by the mean of the channels' z̄."),
    "lds": ("LDS", "The mean over queries of the rank correlation between the scores and the measured effect of "
                   "training subsets on the query's loss: 0 is chance, 1 is perfect."),
    "hit": ("hit@10", "The share of planted queries of this kind with a planted source among the top 10 tracks."),
}


@dataclass(frozen=True)
class SiteOptions:
    """Options of the report (conf/report.yaml)."""

    top: int = 5
    """training tracks shown per method on a query page"""
    sample_rate: int = 22050
    """sample rate (Hz) of the report's Ogg Vorbis audio"""
    quality: float = 0.6
    """Vorbis compression level, 0 (largest, best) to 1 (smallest)"""
    channel_similarity: bool = True
    """compute Aria's channel similarity of each query to its top tracks"""
    headline_k: int = 10
    """group size K of the homogeneity z shown (Aria's headline K)"""
    workers: int = 2
    """worker processes for Aria's feature extraction"""
    progress: bool = True
    """progress bars"""


@dataclass
class Entry:
    """One method setting of a study: its runs (one per seed, sorted), the page it gets and its ground truth."""

    study: str
    method: str
    setting: str
    runs: list[Run]
    status: str
    page: str = ""
    truths: list[tuple[Truth | None, str]] = field(default_factory=list)
    rankings: dict[int, Ranking] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.method}/{self.setting}"

    @property
    def run(self) -> Run | None:
        """The first seed's run: the one its per-query tables and query pages show."""
        return self.runs[0] if self.runs else None


def slug(*parts: str) -> str:
    """A file-name-safe name of `parts`."""
    return "--".join(re.sub(r"[^A-Za-z0-9._-]+", "_", p) for p in parts)


def fmt(value: object, digits: int = 3) -> str:
    """A cell's text: floats with `digits` decimals, NaN and None as —."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    return str(value)


def cell(values: Sequence[object], digits: int = 3) -> dict:
    """A table cell of one value per seed: text (mean ± sd across seeds when more than one) and a sort key."""
    numbers = [float(v) for v in values if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
               and math.isfinite(float(v))]
    if not numbers:
        text = fmt(values[0]) if values else "—"
        return {"text": text, "sort": "" if text == "—" else text}
    mean = float(np.mean(numbers))
    text = fmt(mean, digits)
    if len(numbers) > 1:
        text += f" ± {np.std(numbers, ddof=1):.{digits}f}"
    return {"text": text, "sort": f"{mean:.6g}"}


class Site:
    """The report being written into `out`: the Jinja2 environment, the media, and what made it."""

    def __init__(self, out: Path, options: SiteOptions, command: str):
        self.out = out
        self.options = options
        self.command = command
        self.made_utc = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.env = jinja2.Environment(loader=jinja2.PackageLoader("lumina.site", "templates"),
                                      autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                                      lstrip_blocks=True)
        self.env.filters["fmt"] = fmt
        self.audio_urls: dict[str, str] = {}
        self.pages: list[Path] = []

    def audio(self, path: str | Path) -> str:
        """URL (from the site's root) of the track at `path`, transcoded on first use."""
        key = str(path)
        if key not in self.audio_urls:
            target = media.transcode(path, self.out / "audio", self.options.sample_rate, self.options.quality)
            self.audio_urls[key] = target.relative_to(self.out).as_posix()
        return self.audio_urls[key]

    def write(self, page: str, template: str, sources: Sequence[dict], **context: object) -> None:
        """Render `template` to `page` (a path from the site's root) with the footer naming what made it."""
        root = "../" * page.count("/")
        html = self.env.get_template(template).render(
            root=root, made={"command": self.command, "utc": self.made_utc, "sources": sources}, **context)
        path = write_text(self.out / page, html)
        self.pages.append(path)


def run_source(run: Run) -> dict:
    """The model and corpus that made a run, as the footer names them (from its recorded provenance)."""
    prov = run.provenance
    data, model = prov.get("data") or {}, prov.get("model") or {}
    return {"model": f"{model.get('name', '?')} (hash {run.model_hash}, {run.model_id})",
            "corpus": f"{data.get('name', '?')} (catalogue {str(prov.get('catalogue_key', '?'))[:12]}, manifest "
                      f"{prov.get('manifest', '?')})",
            "command": prov.get("command", "?")}


def unique_sources(runs: Sequence[Run]) -> list[dict]:
    seen: dict[str, dict] = {}
    for run in runs:
        source = run_source(run)
        seen.setdefault(source["model"] + source["corpus"], source)
    return list(seen.values())


def group_entries(runs: Sequence[Run]) -> dict[str, list[Entry]]:
    """Study → its settings, runs of a setting that differ only by seed (`Run.group`) grouped into one entry."""
    grouped: dict[tuple[str, str, str], list[Run]] = {}
    for run in runs:
        grouped.setdefault((run.group, run.method, run.setting), []).append(run)
    studies: dict[str, list[Entry]] = {}
    for (study, method, setting), members in sorted(grouped.items()):
        ok = sorted((r for r in members if r.matrix is not None), key=lambda r: str(r.seed))
        status = "ok" if ok else "; ".join(sorted({f"{r.status}: {r.reason}".rstrip(": ") for r in members}))
        studies.setdefault(study, []).append(Entry(study, method, setting, ok, status,
                                                   page=f"settings/{slug(study, method, setting)}.html"))
    return studies


def entry_values(entry: Entry, channel_set: ChannelSet, k: int) -> list[dict]:
    """Per seed: Aria's leaderboard numbers and the joined ground truth of the entry's runs."""
    values = []
    for run, (truth, _) in zip(entry.runs, entry.truths, strict=True):
        row = leaderboard_row(run.diagnostics, k, channel_set) if run.diagnostics else {}
        values.append({**row, **{f"truth_{key}": v for key, v in truth_row(truth, run).items()}})
    return values


def leaderboard(entries: Sequence[Entry], channel_set: ChannelSet, k: int) -> tuple[list[dict], list[dict]]:
    """The leaderboard's columns and rows (cells with text and sort keys) of a study's settings."""
    columns = [{"key": "setting", "label": "method / setting", "title": "the method and its setting"},
               {"key": "seeds", "label": "seeds", "title": "runs of this setting that differ only by seed"},
               {"key": "collapsed", "label": "collapsed", "title": MEANING["collapsed"][1]}]
    columns += [{"key": name, "label": MEANING[name][0], "title": MEANING[name][1]} for name in RELIABILITY]
    columns += [{"key": f"{c}_z", "label": f"{channel_set.titles[c]} z̄", "title": MEANING["z"][1]}
                for c in channel_set.names]
    columns += [{"key": "rank", "label": "Aria rank", "title": MEANING["rank"][1]},
                {"key": "truth_lds", "label": "LDS", "title": MEANING["lds"][1]}]
    columns += [{"key": f"truth_{kind}_hit_at_10", "label": f"{kind} hit@10", "title": MEANING["hit"][1]}
                for kind in PLANTED_KINDS]
    per_entry = [entry_values(e, channel_set, k) for e in entries]
    means = pd.DataFrame([{key: np.nanmean([float(v.get(key, math.nan)) for v in vs]) if vs else math.nan
                           for key in [*RELIABILITY, *channel_set.columns(["z"])]} for vs in per_entry])
    means["status"] = ["ok" if e.runs and any(v for v in vs) else e.status for e, vs in zip(entries, per_entry,
                                                                                           strict=True)]
    means["collapsed"] = [any(bool(v.get("collapsed")) for v in vs) for vs in per_entry]
    ranks = rank_settings(means, channel_set) if len(means) else []
    rows = []
    for i, (entry, vs) in enumerate(zip(entries, per_entry, strict=True)):
        name = {"text": entry.label, "sort": entry.label}
        cells = {"setting": {**name, "href": entry.page} if entry.runs else name,
                 "seeds": {"text": str(len(entry.runs)) if entry.runs else entry.status, "sort": len(entry.runs)},
                 "collapsed": {"text": "collapsed" if means["collapsed"][i] else "—",
                               "sort": int(bool(means["collapsed"][i])), "flag": bool(means["collapsed"][i])},
                 "rank": {"text": fmt(None if pd.isna(ranks[i]) else int(ranks[i])),
                          "sort": "" if pd.isna(ranks[i]) else int(ranks[i])}}
        for column in columns:
            if column["key"] not in cells:
                cells[column["key"]] = cell([v.get(column["key"], math.nan) for v in vs], 2
                                            if column["key"].endswith("_z") else 3)
        rows.append({"cells": [cells[c["key"]] for c in columns]})
    return columns, rows


def study_figures(site: Site, study: str, entries: Sequence[Entry], channel_set: ChannelSet, k: int) -> list[dict]:
    """The leaderboard's figures of a study: energy spectrum, K-sweep, residual, channel z per setting and, when
    ground truth is joined, Aria's diagnostics against LDS."""
    diagnostics = [e.run.diagnostics for e in entries if e.run is not None and e.run.diagnostics]
    if not diagnostics:
        return []
    folder = site.out / "figures"
    name = slug(study)
    figures = [
        (energy_figure(diagnostics, folder / f"{name}-energy.png", site.command),
         "Energy spectrum: the share of each score matrix's energy on its first singular axes, one line per "
         "setting (dashed: collapsed)."),
        (ksweep_figure(diagnostics, folder / f"{name}-ksweep.png", site.command, channel_set=channel_set),
         "K-sweep: each channel's mean homogeneity z against the group size K, one line per setting."),
        (residual_figure(diagnostics, folder / f"{name}-residual.png", site.command, k, channel_set=channel_set),
         f"Each channel's mean z at K = {k} before and after removing the rank-1 component."),
    ]
    labels = [f"{d['method']}/{d['setting']}" for d in diagnostics]
    z = {c: [leaderboard_row(d, k, channel_set)[f"{c}_z"] for d in diagnostics] for c in channel_set.names}
    figures.append((media.channel_z_figure(labels, z, channel_set.titles, folder / f"{name}-channel-z.png"),
                    f"Each channel's mean homogeneity z at K = {k} per setting."))
    joined = [(e, truth_row(t, e.run)) for e in entries if e.run is not None and e.run.diagnostics
              for t, _ in e.truths[:1] if t is not None]
    if joined:
        panels = {MEANING[n][0]: [e.run.diagnostics["reliability"][n] for e, _ in joined] for n in RELIABILITY}
        figures.append((media.panels_figure(panels, [r["lds"] for _, r in joined], [e.label for e, _ in joined],
                                            "LDS", folder / f"{name}-aria-vs-lds.png"),
                        "Aria's reliability diagnostics (x) against LDS (y), one point per setting with ground "
                        "truth of its own model."))
    return [{"src": f"figures/{p.name}", "alt": alt} for p, alt in figures]


def verdict(run: Run, query: str) -> dict:
    """The per-query verdict of a run: attributable or not and why, or not assessed."""
    if query not in run.verdicts:
        return {"text": "not assessed", "reason": "this run's outputs carry no attributable flag", "state": "none"}
    attributable, reason = run.verdicts[query]
    return {"text": "attributable" if attributable else "not attributable", "reason": reason or "—",
            "state": "yes" if attributable else "no"}


def query_rows(entry: Entry, manifest: pd.DataFrame, k: int, channel_set: ChannelSet) -> list[dict]:
    """The per-query table of a setting page (its first seed's run)."""
    run = entry.run
    rank = entry.rankings[0]
    lds = query_lds(entry.truths[0][0], run)
    z = pd.DataFrame()
    if run.per_query is not None:
        z = run.per_query[(run.per_query["stage"] == "original") & (run.per_query["k"] == k)].set_index("query_id")
    rows = []
    for query in run.matrix.query_ids:
        info = manifest.loc[query] if query in manifest.index else pd.Series(dtype=str)
        sources = [s for s in str(info.get("source_ids", "")).split(";") if s]
        top_track = rank.top(query, 1)[0][0]
        rows.append({
            "query": query, "href": f"../queries/{slug(entry.study, query)}.html",
            "kind": str(info.get("query_kind", "")), "verdict": verdict(run, query),
            "top": top_track, "top_planted": top_track in sources,
            "source_rank": rank.rank_of(query, sources) if sources else None,
            "z": [float(z.at[query, c]) if query in z.index and c in z.columns else math.nan
                  for c in channel_set.names],
            "lds": lds.get(query, math.nan),
        })
    return rows


def setting_page(site: Site, entry: Entry, manifest: pd.DataFrame, channel_set: ChannelSet, k: int) -> None:
    """The page of one method setting: reliability numbers with their meaning, per-query table, figures."""
    run = entry.run
    values = entry_values(entry, channel_set, k)
    numbers = [{"label": MEANING[n][0], "value": cell([v.get(n, math.nan) for v in values])["text"],
                "meaning": MEANING[n][1]} for n in (*RELIABILITY, "collapsed")]
    numbers += [{"label": f"{channel_set.titles[c]} z̄ (K = {k})",
                 "value": cell([v.get(f"{c}_z", math.nan) for v in values], 2)["text"], "meaning": MEANING["z"][1]}
                for c in channel_set.names]
    numbers += [{"label": "LDS", "value": cell([v.get("truth_lds", math.nan) for v in values])["text"],
                 "meaning": MEANING["lds"][1]}]
    figures = []
    name = slug(entry.study, entry.method, entry.setting)
    if run.diagnostics:
        folder = site.out / "figures"
        figures = [
            (energy_figure([run.diagnostics], folder / f"{name}-energy.png", site.command),
             f"Energy spectrum of {entry.label}'s score matrix."),
            (ksweep_figure([run.diagnostics], folder / f"{name}-ksweep.png", site.command, channel_set=channel_set),
             f"K-sweep of {entry.label}: each channel's mean z against the group size K."),
        ]
    rows = query_rows(entry, manifest, k, channel_set)
    z_values = {channel_set.titles[c]: [r["z"][i] for r in rows if math.isfinite(r["z"][i])]
                for i, c in enumerate(channel_set.names)}
    if any(z_values.values()):
        figures.append((media.histogram_figure(z_values, f"homogeneity z at K = {k}", f"{entry.label}: per query",
                                               site.out / "figures" / f"{name}-query-z.png"),
                        f"Distribution over queries of each channel's homogeneity z at K = {k}."))
    site.write(entry.page, "setting.html", unique_sources(entry.runs), title=f"{entry.label} ({entry.study})",
               entry=entry, numbers=numbers, rows=rows, channels=[channel_set.titles[c] for c in channel_set.names],
               truth_notes=sorted({note for _, note in entry.truths}),
               seeds=[str(r.seed) for r in entry.runs],
               figures=[{"src": f"../figures/{p.name}", "alt": alt} for p, alt in figures])


def track_media(site: Site, manifest: pd.DataFrame, track: str, start: float = 0.0) -> dict:
    """Player (and piano roll for a symbolic track) of a manifest track, starting at `start` seconds."""
    path = manifest.at[track, "path"]
    out = {"src": f"../{site.audio(path)}#t={start:.2f}", "start": start, "roll": None}
    if media.is_symbolic(path):
        out["roll"] = "../" + media.piano_roll(path, site.out / "figures").relative_to(site.out).as_posix()
    return out


def query_page(site: Site, study: str, query: str, entries: Sequence[Entry], manifests: Manifests,
               similarity: dict[Path, dict[str, pd.DataFrame]], lumina: dict[int, dict | None],
               channel_set: ChannelSet) -> str:
    """The page of one query with every setting side by side, each setting's tracks from its run's own manifest
    (`similarity`: manifest → channel → (queries × training tracks)); returns its path from the site's root."""
    shown = [e for e in entries if e.run is not None and query in e.run.matrix.query_ids]
    holder = next((manifests(e.run) for e in shown if query in manifests(e.run).index), None)
    if holder is None:
        raise ArtefactError(f"query {query} of study {study} is in none of its runs' manifests")
    info = holder.loc[query]
    sources = [s for s in str(info.get("source_ids", "")).split(";") if s]
    methods = []
    for entry in shown:
        run = entry.run
        manifest = manifests(run)
        sims_of = similarity.get(manifests.path(run), {})
        evidence = lumina.get(id(entry)) or {}
        top = []
        for rank, (track, score, start) in enumerate(entry.rankings[0].top(query, site.options.top), start=1):
            sims = []
            for c in channel_set.names:
                table = sims_of.get(c)
                if table is not None and query in table.index and track in table.columns:
                    row = table.loc[query]
                    sims.append({"value": float(row[track]), "percentile": 100.0 * float((row < row[track]).mean())})
                else:
                    sims.append(None)
            top.append({"rank": rank, "track": track, "score": score, "planted": track in sources,
                        "description": str(manifest.at[track, "description"]) if track in manifest.index else "",
                        "media": track_media(site, manifest, track, start) if track in manifest.index else None,
                        "lumina": evidence.get(query, {}).get(track), "sims": sims})
        lds = query_lds(entry.truths[0][0], run)
        methods.append({"entry": entry, "anchor": slug(entry.method, entry.setting), "verdict": verdict(run, query),
                        "top": top, "lds": lds.get(query, math.nan),
                        "source_rank": entry.rankings[0].rank_of(query, sources) if sources else None})
    page = f"queries/{slug(study, query)}.html"
    site.write(page, "query.html", unique_sources([e.run for e in entries if e.run is not None]),
               title=f"Query {query} ({study})", query=query, info={k: str(v) for k, v in info.items()},
               query_media=track_media(site, holder, query), planted=sources, methods=methods,
               channels=[channel_set.titles[c] for c in channel_set.names],
               similarity_note="" if similarity else "Channel similarities were not computed for this study.")
    return page


def planted_sources(manifest: pd.DataFrame) -> dict[Path, tuple[str, list[str]]]:
    """Resolved audio path → (query id, its planted source ids), for every manifest row with planted sources."""
    out = {}
    for track, row in manifest.iterrows():
        sources = [s for s in str(row.get("source_ids", "")).split(";") if s]
        if sources:
            out[Path(row["path"]).resolve()] = (str(track), sources)
    return out


def attribution_page(site: Site, path: Path, report: dict, tracks: dict[str, str],
                     planted: dict[Path, tuple[str, list[str]]], top: int) -> str:
    """The page of one attribution report of `experiments.attribute`; `tracks`: track id → audio path; `planted`:
    `planted_sources` of the studies' manifests (when the attributed audio is a planted query, its sources are
    marked)."""
    audio = Path(report["audio"])
    query, sources = planted.get(audio.resolve(), (None, []))
    channels = []
    for name, channel in report["channels"].items():
        rows = [{**r, "planted": r["track_id"] in sources,
                 "media": ({"src": f"../{site.audio(tracks[r['track_id']])}#t=0.00", "start": 0.0, "roll": None}
                           if r["track_id"] in tracks else None)} for r in channel["rows"][:top]]
        channels.append({"name": name, **{k: v for k, v in channel.items() if k != "rows"}, "rows": rows})
    page = f"attribution/{slug(path.parent.name)}.html"
    player = {"src": f"../{site.audio(audio)}#t=0.00", "start": 0.0, "roll": None} if audio.is_file() else None
    recorded = report.get("provenance") or {}
    made = {"command": recorded.get("command", ""), "utc": recorded.get("created_utc", "")}
    database = recorded.get("database") or relative(report.get("database", "?"))
    model_id = recorded.get("model_id") or report.get("model_id", "?")
    provenance = [{"model": f"hash {report.get('model_hash', '?')} ({model_id})",
                   "corpus": f"signature database {database} (catalogue "
                             f"{str(report.get('catalogue_key') or 'unknown')[:12]})",
                   "command": made["command"] or "not recorded (the report predates recorded provenance)"}]
    verdicts = [{"name": c["name"], "attributable": bool(c["attributable"])} for c in channels if "attributable" in c]
    site.write(page, "attribution.html", provenance, title=f"LUMINA attribution of {audio.name}", report=report,
               source=relative(path), database=database, made_by=made, query_media=player, channels=channels,
               verdicts=verdicts, query=query, planted=sources)
    return page


def build_site(
    runs_root: str | Path, out: str | Path, *, truth_roots: Sequence[str | Path] = (),
    attributions: str | Path | None = None, manifest: str | Path | None = None, channel_set: ChannelSet,
    feature_settings: FeatureSettings | None = None, aria_cache: str | Path = "outputs/cache/aria",
    skip: Sequence[str | Path] = (), options: SiteOptions = SiteOptions(), command: str = "",
) -> Path:
    """Write the report of every run under `runs_root` into `out`; returns `out/index.html`.

    truth_roots: folders searched for `ground_truth.csv` (`skip`: folders not searched); attributions: a
    folder searched for `report.json`; manifest: the manifest of every run (None: each run's own, the one its
    provenance names); aria_cache: Aria's feature cache (the channel similarities reuse the leaderboard's features).
    """
    out = Path(out)
    site = Site(out, options, command)
    runs = find_runs(runs_root)
    truths = find_truths(list(truth_roots), [out, *map(Path, skip)])
    manifests = Manifests(manifest)
    studies = group_entries(runs)
    k = options.headline_k
    tracks: dict[str, str] = {}
    planted: dict[Path, tuple[str, list[str]]] = {}
    sections, query_links = [], []
    for study, entries in studies.items():
        shown = [e for e in entries if e.run is not None]
        for entry in shown:
            entry.truths = [truth_for(r, truths) for r in entry.runs]
            entry.rankings = {0: ranking(entry.run.matrix)}
        queries_of: dict[Path, list[str]] = {}  # each manifest of the study → the queries of the runs naming it
        for entry in shown:
            queries_of.setdefault(manifests.path(entry.run), []).extend(entry.run.matrix.query_ids)
        for path in queries_of:
            table = manifests.read(path)
            tracks.update({t: p for t, p in table["path"].items() if t not in tracks})
            planted.update({p: v for p, v in planted_sources(table).items() if p not in planted})
        similarity = {}
        if options.channel_similarity:
            for path, wanted in queries_of.items():
                table = manifests.read(path)
                if not any(media.is_symbolic(p) for p in table["path"]):  # symbolic: its own features
                    similarity[path] = channel_similarities(
                        table, list(dict.fromkeys(wanted)), channel_set, feature_settings or FeatureSettings(),
                        aria_cache, workers=options.workers, progress=options.progress)
        lumina = {id(e): lumina_evidence(e.run.folder) for e in shown}
        columns, rows = leaderboard(entries, channel_set, k)
        for entry in tqdm(shown, desc=f"setting pages ({study})", disable=not options.progress):
            setting_page(site, entry, manifests(entry.run), channel_set, k)
        queries = list(dict.fromkeys(q for e in shown for q in e.run.matrix.query_ids))
        pages = [query_page(site, study, q, entries, manifests, similarity, lumina, channel_set)
                 for q in tqdm(queries, desc=f"query pages ({study})", disable=not options.progress)]
        kinds = {}  # a query's kind in the first manifest that holds it
        for table in map(manifests.read, queries_of):
            kinds.update({q: str(table.at[q, "query_kind"]) for q in queries if q in table.index and q not in kinds})
        query_links.append({"study": study, "queries": [
            {"query": q, "href": p, "kind": kinds.get(q, "")} for q, p in zip(queries, pages, strict=True)]})
        sections.append({"study": study, "columns": columns, "rows": rows,
                         "figures": study_figures(site, study, entries, channel_set, k),
                         "truth_notes": sorted({note for e in entries for _, note in e.truths})})
    reports = [{"title": Path(r["audio"]).name, "href": attribution_page(site, p, r, tracks, planted, options.top)}
               for p, r in (find_attributions(attributions) if attributions else [])]
    site.write("index.html", "index.html", unique_sources([r for r in runs if r.matrix is not None]),
               title="Attribution study report", sections=sections, query_links=query_links, reports=reports,
               k=k, runs_root=relative(runs_root))
    return out / "index.html"
