"""The leaderboard: diagnose every run under a run root and write the table (CSV, Markdown, LaTeX laid out
like the Aria paper's Table 2) and the figures, with one group of columns per channel of a `ChannelSet`
(default `AUDIO`; docs/aria.md#channel-sets)."""

from __future__ import annotations

import functools
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from aria import __version__
from aria.channels import AUDIO, SYMBOLIC, ChannelSet
from aria.diagnose import AriaSettings, Pool, build_pool, diagnose, jsonable
from aria.errors import ArtefactError, ParameterError
from aria.extract import extract_features
from aria.features import FeatureSettings
from aria.figures import energy_figure, ksweep_figure, residual_figure
from aria.io import ScoreArtefact, check_tracks, manifest_path, read_manifest, read_run, read_scores
from aria.symbolic import symbolic_pool
from execution.files import markdown_table

RELIABILITY = ("rho1", "rho2_5", "concentration", "inter_query_corr")
SUMMARY = {"z": "z_mean", "pos": "pos", "sig": "sig"}
"""Leaderboard column suffix → the key of `aria.homogeneity.summarize` it shows."""
DIAGNOSTICS_FILE = "aria.json"
QUERIES_FILE = "aria_queries.csv"
ABSTENTION_FILE = "abstention.csv"
"""Per-query abstention verdicts a run folder may hold (query_id, attributable, abstain_reason; written by
`python -m experiments.abstention`), joined into `QUERIES_FILE` (docs/aria.md#abstention-verdicts)."""
NOT_ASSESSED = "not assessed"

PoolFor = Callable[[pd.DataFrame, list[str], list[str]], Pool]
"""Builds the pool of one manifest: (manifest table, track ids to cover, training track ids) → `Pool`."""


def leaderboard_columns(channel_set: ChannelSet = AUDIO) -> tuple[str, ...]:
    """The columns of `leaderboard.csv`: run, reliability, `{channel}_{z,pos,sig}` per channel, rank, note (why
    a cell is empty), command."""
    return ("method", "setting", "status", *RELIABILITY, "collapsed", *channel_set.columns(SUMMARY), "rank",
            "note", "command")


def find_runs(root: str | Path) -> list[Path]:
    """Run folders (those holding a `run.json`) under `root`, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise ArtefactError(f"{root}: run root not found (run `python -m experiments.run +method=NAME` first)")
    runs = sorted(p.parent for p in root.rglob("run.json"))
    if not runs:
        raise ArtefactError(f"{root}: no run.json below it (run `python -m experiments.run +method=NAME` first)")
    return runs


def leaderboard_row(diagnostics: dict, k: int, channel_set: ChannelSet = AUDIO) -> dict:
    """One leaderboard row from the diagnostics of a run, homogeneity at group size `k`."""
    row = {"method": diagnostics["method"], "setting": diagnostics["setting"], "status": "ok",
           **diagnostics["reliability"], "collapsed": diagnostics["collapsed"],
           "note": "; ".join(diagnostics.get("notes", []))}
    at_k = diagnostics["homogeneity"]["original"].get(str(k), {}).get("channels", {})
    for channel in channel_set.names:
        summary = at_k.get(channel, {})
        row.update({f"{channel}_{suffix}": summary.get(key, math.nan) for suffix, key in SUMMARY.items()})
    return row


def rank_settings(table: pd.DataFrame, channel_set: ChannelSet = AUDIO) -> pd.Series:
    """Rank (1 = best) by the mean over channels of z̄; collapsed and unfinished settings are not ranked."""
    score = table[channel_set.columns(["z"])].astype(float).mean(axis=1)
    eligible = (table["status"] == "ok") & ~table["collapsed"].astype(bool) & score.notna()
    ranks = pd.Series(pd.NA, index=table.index, dtype="Int64")
    ranks[eligible] = score[eligible].rank(ascending=False, method="min").astype(int)
    return ranks


def _fmt(value: object, kind: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or value is pd.NA:
        return "—"
    if kind == "z":
        return f"{value:+.2f}"
    if kind in ("pos", "sig"):
        return f"{100 * value:.1f}%"
    if kind == "rank":
        return str(int(value))
    return f"{value:.3f}"


def _cells(row: pd.Series, channel_set: ChannelSet) -> list[str]:
    return [_fmt(row[c], "rel") for c in RELIABILITY] + [
        _fmt(row[f"{c}_{s}"], s) for c in channel_set.names for s in SUMMARY
    ] + [_fmt(row["rank"], "rank")]


def to_markdown(table: pd.DataFrame, k: int, command: str, channel_set: ChannelSet = AUDIO) -> str:
    """The leaderboard as a Markdown table with the columns of the paper's Table 2, plus the rank."""
    head = ["Method", "Setting", "ρ₁", "ρ₂:₅", "c̄", "ρ̄"]
    for channel in channel_set.names:
        head += [f"{channel_set.titles[channel]} z̄", "Pos", "Sig"]
    head.append("Rank")
    rows, previous = [], None
    for _, row in table.iterrows():
        method = row["method"] if row["method"] != previous else ""
        previous = row["method"]
        setting = row["setting"] + (" †" if row["status"] == "ok" and row["collapsed"] else "")
        cells = _cells(row, channel_set) if row["status"] == "ok" else [row["status"]] + ["—"] * (len(head) - 3)
        rows.append([method, setting, *cells])
    lines = [
        f"Reliability of the raw score matrix and within-group homogeneity at K = {k} "
        "(z̄: mean z over queries; Pos: z > 0; Sig: z > 1.645). † collapsed: excluded from ranking.",
        "",
        markdown_table(pd.DataFrame(rows, columns=head), right=head[2:]),
        "",
    ]
    notes = _notes(table)
    if notes:
        lines += ["Empty cells (—):", "", *[f"- {where}: {note}" for where, note in notes], ""]
    lines += [f"Made by: `{command}`", ""]
    return "\n".join(lines)


def _notes(table: pd.DataFrame) -> list[tuple[str, str]]:
    """(method/setting, note) of the rows whose `note` says why a cell is undefined."""
    return [(f"{row['method']}/{row['setting']}", row["note"]) for _, row in table.iterrows()
            if isinstance(row["note"], str) and row["note"]]


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "$": r"\$",
        "{": r"\{", "}": r"\}", "—": "--"}


def _tex(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(text))


def to_latex(table: pd.DataFrame, k: int, command: str, channel_set: ChannelSet = AUDIO) -> str:
    """The leaderboard as a booktabs LaTeX table laid out like the paper's Table 2, plus the rank."""
    channels = channel_set.names
    n = 6 + 3 * len(channels) + 1
    groups = " & ".join(rf"\multicolumn{{3}}{{c}}{{{_tex(channel_set.titles[c])}}}" for c in channels)
    rules = "".join(rf"\cmidrule(lr){{{7 + 3 * i}-{9 + 3 * i}}}" for i in range(len(channels)))
    sub = " & ".join([r"$\bar z$ & Pos & Sig"] * len(channels))
    lines = [
        f"% made by: {command}",
        r"\begin{tabular}{ll" + "r" * (n - 2) + "}",
        r"\toprule",
        rf" & & \multicolumn{{4}}{{c}}{{Reliability}} & {groups} & \\",
        r"\cmidrule(lr){3-6}" + rules,
        rf"Method & Setting & $\rho_1$ & $\rho_{{2:5}}$ & $\bar c$ & $\bar\rho$ & {sub} & Rank \\",
        r"\midrule",
    ]
    previous = None
    for _, row in table.iterrows():
        method = _tex(row["method"]) if row["method"] != previous else ""
        if previous is not None and row["method"] != previous:
            lines.append(r"\midrule")
        previous = row["method"]
        setting = _tex(row["setting"]) + (r"$^\dagger$" if row["status"] == "ok" and row["collapsed"] else "")
        if row["status"] == "ok":
            cells = [_tex(c) for c in _cells(row, channel_set)]
            lines.append(" & ".join([method, setting, *cells]) + r" \\")
        else:
            lines.append(f"{method} & {setting} & \\multicolumn{{{n - 2}}}{{l}}{{{_tex(row['status'])}}} \\\\")
    lines += [
        r"\bottomrule",
        r"\end{tabular}",
        f"% homogeneity at K = {k}; $^\\dagger$ collapsed (excluded from ranking)",
        *[f"% {where}: {note}" for where, note in _notes(table)],
        "",
    ]
    return "\n".join(lines)


def _query_labels(manifest: pd.DataFrame, query_ids: Sequence[str], columns: Sequence[str]) -> dict[str, list[str]]:
    labels = {}
    for column in columns:
        if column in manifest.columns:
            labels[column] = [str(manifest.at[q, column]) if q in manifest.index else "" for q in query_ids]
    return labels


def audio_pool(
    manifest: pd.DataFrame,
    track_ids: list[str],
    train: list[str],
    *,
    feature_settings: FeatureSettings | None = None,
    cache_dir: str | Path = "outputs/cache/aria",
    workers: int = 2,
    progress: bool = True,
    channel_set: ChannelSet = AUDIO,
) -> Pool:
    """The default `PoolFor`: audio features (`aria.features`, cached) of the manifest's files for
    `track_ids`, the std over `train` (all tracks when there is no training split)."""
    features = extract_features(manifest.loc[track_ids, "path"].tolist(), track_ids,
                                feature_settings or FeatureSettings(), cache_dir, workers=workers, progress=progress)
    return build_pool(features, train or track_ids, cache_dir, channel_set=channel_set)


def with_abstention(per_query: pd.DataFrame, run_dir: Path) -> pd.DataFrame:
    """`per_query` with the `attributable` and `abstain_reason` of each query from the run folder's
    `ABSTENTION_FILE`; `NOT_ASSESSED` and an empty reason without that file or for a query it lacks."""
    path = Path(run_dir) / ABSTENTION_FILE
    if not path.is_file():
        return per_query.assign(attributable=NOT_ASSESSED, abstain_reason="")
    verdicts = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"query_id", "attributable", "abstain_reason"} - set(verdicts.columns)
    if missing:
        raise ArtefactError(f"{path}: no column(s) {sorted(missing)}; rewrite it with `python -m "
                            "experiments.abstention`")
    verdicts = verdicts.drop_duplicates("query_id").set_index("query_id")
    ids = per_query["query_id"].astype(str)
    return per_query.assign(attributable=ids.map(verdicts["attributable"]).fillna(NOT_ASSESSED).tolist(),
                            abstain_reason=ids.map(verdicts["abstain_reason"]).fillna("").tolist())


def diagnose_runs(
    artefacts: dict[Path, ScoreArtefact],
    *,
    settings: AriaSettings,
    pool_for: PoolFor,
    channel_set: ChannelSet,
    manifest: str | Path | None,
    progress: bool,
    command: str,
) -> dict[Path, dict]:
    """Diagnose every artefact (run folder → `ScoreArtefact`) against the pool of its manifest, writing
    `aria.json` and `aria_queries.csv` into its run folder; → run folder → diagnostics."""
    by_manifest: dict[Path, list[Path]] = {}
    for run_dir, artefact in artefacts.items():
        by_manifest.setdefault(manifest_path(artefact, manifest).resolve(), []).append(run_dir)
    diagnostics: dict[Path, dict] = {}
    for manifest_file, run_dirs in by_manifest.items():
        table = read_manifest(manifest_file)
        for run_dir in run_dirs:
            check_tracks(artefacts[run_dir], table, manifest_file)
        train = table.index[table["split"] == "train"].tolist()
        wanted = list(dict.fromkeys(train + [t for d in run_dirs for t in artefacts[d].track_ids]))
        pool = pool_for(table, wanted, train)
        if pool.channel_set != channel_set:
            raise ParameterError(f"the pool of {manifest_file} groups its features by the channel set "
                                 f"{pool.channel_set.name!r}, the leaderboard reports {channel_set.name!r}")
        for run_dir in tqdm(run_dirs, desc="aria diagnostics", unit="run", disable=not progress):
            artefact = artefacts[run_dir]
            labels = _query_labels(table, artefact.query_ids, settings.confound_columns)
            result, per_query = diagnose(artefact, pool, settings, labels)
            result = jsonable({"command": command, "version": __version__, "manifest": manifest_file, **result})
            (run_dir / DIAGNOSTICS_FILE).write_text(json.dumps(result, indent=1, allow_nan=False))
            with_abstention(per_query, run_dir).assign(command=command).to_csv(run_dir / QUERIES_FILE, index=False)
            diagnostics[run_dir] = result
    return diagnostics


def leaderboard_table(
    records: Sequence[dict], diagnostics: dict[Path, dict], k: int, command: str, channel_set: ChannelSet = AUDIO
) -> pd.DataFrame:
    """One row per run record (`aria.io.read_run`), sorted by method and setting: the diagnostics at K = `k`
    of a diagnosed run, the status (and reason) of any other, then the rank and the command."""
    rows = []
    for record in records:
        if record["dir"] in diagnostics:
            rows.append(leaderboard_row(diagnostics[record["dir"]], k, channel_set))
        else:
            reason = record.get("reason") or ""
            status = str(record["status"]) + (f": {reason}" if reason else "")
            rows.append({"method": record["method"], "setting": record["setting"], "status": status,
                         "collapsed": False})
    columns = leaderboard_columns(channel_set)
    table = pd.DataFrame(rows).reindex(columns=[c for c in columns if c not in ("rank", "command")])
    table = table.sort_values(["method", "setting"], kind="stable").reset_index(drop=True)
    numbers = [*RELIABILITY, *channel_set.columns(SUMMARY)]
    table[numbers] = table[numbers].astype(float)
    table["collapsed"] = table["collapsed"].fillna(False).astype(bool)
    table["note"] = table["note"].fillna("")
    table["rank"] = rank_settings(table, channel_set)
    table["command"] = command
    table = table[list(columns)]
    return table


def write_leaderboard(
    table: pd.DataFrame,
    diagnostics: Sequence[dict],
    results_dir: str | Path,
    k: int,
    command: str,
    channel_set: ChannelSet = AUDIO,
) -> None:
    """`leaderboard.{csv,md,tex}` of `table` into `results_dir`, and the figures of the diagnosed runs'
    `diagnostics` into `results_dir/figures` (none when no run was diagnosed)."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(results_dir / "leaderboard.csv", index=False)
    (results_dir / "leaderboard.md").write_text(to_markdown(table, k, command, channel_set))
    (results_dir / "leaderboard.tex").write_text(to_latex(table, k, command, channel_set))
    if diagnostics:
        figures = results_dir / "figures"
        energy_figure(diagnostics, figures / "energy_spectrum.png", command)
        ksweep_figure(diagnostics, figures / "ksweep.png", command, channel_set=channel_set)
        residual_figure(diagnostics, figures / "residual.png", command, k, channel_set=channel_set)


def run_leaderboard(
    runs_root: str | Path,
    results_dir: str | Path,
    *,
    settings: AriaSettings | None = None,
    feature_settings: FeatureSettings | None = None,
    cache_dir: str | Path = "outputs/cache/aria",
    manifest: str | Path | None = None,
    workers: int = 2,
    progress: bool = True,
    command: str | None = None,
    channel_set: ChannelSet = AUDIO,
    pool_for: PoolFor | None = None,
) -> pd.DataFrame:
    """Diagnose every run under `runs_root` and write the leaderboard and figures into `results_dir`.

    Per run folder: `aria.json` (all diagnostics) and `aria_queries.csv` (z per query, channel, K and
    stage). In `results_dir`: `leaderboard.csv`, `leaderboard.md`, `leaderboard.tex` and
    `figures/{energy_spectrum,ksweep,residual}.png`. `manifest` overrides the manifest each artefact's
    provenance names. `command` is recorded in every output (default: this process's command line).
    The channels are those of `channel_set`; `pool_for` builds each manifest's pool (default: `audio_pool`
    with `feature_settings`, `cache_dir`, `workers` and `progress`; `aria.symbolic.symbolic_pool` for
    `SYMBOLIC`), and its pools must use `channel_set`.
    Returns the leaderboard table.
    """
    command = command or " ".join(["python", *sys.argv])
    settings = settings or AriaSettings()
    if pool_for is None and channel_set == SYMBOLIC:
        pool_for = functools.partial(symbolic_pool, cache_dir=cache_dir, workers=workers, progress=progress)
    if pool_for is None:
        pool_for = functools.partial(audio_pool, feature_settings=feature_settings, cache_dir=cache_dir,
                                     workers=workers, progress=progress, channel_set=channel_set)
    records = [read_run(d) for d in find_runs(runs_root)]
    artefacts = {r["dir"]: read_scores(r["dir"] / r.get("scores", "scores.h5")) for r in records
                 if r["status"] == "ok"}
    diagnostics = diagnose_runs(artefacts, settings=settings, pool_for=pool_for, channel_set=channel_set,
                                manifest=manifest, progress=progress, command=command)
    table = leaderboard_table(records, diagnostics, settings.headline_k, command, channel_set)
    done = [diagnostics[r["dir"]] for r in records if r["dir"] in diagnostics]
    write_leaderboard(table, done, results_dir, settings.headline_k, command, channel_set)
    return table
