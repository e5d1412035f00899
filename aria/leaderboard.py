"""The leaderboard: diagnose every run under a run root and write the table (CSV, Markdown, LaTeX laid out
like the Aria paper's Table 2) and the figures."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from aria import __version__
from aria.diagnose import AriaSettings, build_pool, diagnose, jsonable
from aria.errors import ArtefactError
from aria.extract import extract_features
from aria.features import CHANNELS, FeatureSettings
from aria.figures import TITLES, energy_figure, ksweep_figure, residual_figure
from aria.io import check_tracks, manifest_path, read_manifest, read_run, read_scores

RELIABILITY = ("rho1", "rho2_5", "concentration", "inter_query_corr")
SUMMARY = ("z", "pos", "sig")
COLUMNS = (
    "method", "setting", "status", *RELIABILITY, "collapsed",
    *[f"{c}_{s}" for c in CHANNELS for s in SUMMARY], "rank", "command",
)
DIAGNOSTICS_FILE = "aria.json"
QUERIES_FILE = "aria_queries.csv"


def find_runs(root: str | Path) -> list[Path]:
    """Run folders (those holding a `run.json`) under `root`, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise ArtefactError(f"{root}: run root not found (run `python -m experiments.run +method=NAME` first)")
    runs = sorted(p.parent for p in root.rglob("run.json"))
    if not runs:
        raise ArtefactError(f"{root}: no run.json below it (run `python -m experiments.run +method=NAME` first)")
    return runs


def leaderboard_row(diagnostics: dict, k: int) -> dict:
    """One leaderboard row from the diagnostics of a run, homogeneity at group size `k`."""
    row = {"method": diagnostics["method"], "setting": diagnostics["setting"], "status": "ok",
           **diagnostics["reliability"], "collapsed": diagnostics["collapsed"]}
    at_k = diagnostics["homogeneity"]["original"].get(str(k), {}).get("channels", {})
    for channel in CHANNELS:
        summary = at_k.get(channel, {})
        row[f"{channel}_z"] = summary.get("z_mean", math.nan)
        row[f"{channel}_pos"] = summary.get("pos", math.nan)
        row[f"{channel}_sig"] = summary.get("sig", math.nan)
    return row


def rank_settings(table: pd.DataFrame) -> pd.Series:
    """Rank (1 = best) by the mean over channels of z̄; collapsed and unfinished settings are not ranked."""
    score = table[[f"{c}_z" for c in CHANNELS]].astype(float).mean(axis=1)
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


def _cells(row: pd.Series) -> list[str]:
    return [_fmt(row[c], "rel") for c in RELIABILITY] + [
        _fmt(row[f"{c}_{s}"], s) for c in CHANNELS for s in SUMMARY
    ] + [_fmt(row["rank"], "rank")]


def to_markdown(table: pd.DataFrame, k: int, command: str) -> str:
    """The leaderboard as a Markdown table with the columns of the paper's Table 2, plus the rank."""
    head = ["Method", "Setting", "ρ₁", "ρ₂:₅", "c̄", "ρ̄"]
    for channel in CHANNELS:
        head += [f"{TITLES[channel]} z̄", "Pos", "Sig"]
    head.append("Rank")
    lines = [
        f"Reliability of the raw score matrix and within-group homogeneity at K = {k} "
        "(z̄: mean z over queries; Pos: z > 0; Sig: z > 1.645). † collapsed: excluded from ranking.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|",
    ]
    previous = None
    for _, row in table.iterrows():
        method = row["method"] if row["method"] != previous else ""
        previous = row["method"]
        setting = row["setting"] + (" †" if row["status"] == "ok" and row["collapsed"] else "")
        if row["status"] == "ok":
            cells = _cells(row)
        else:
            cells = [row["status"]] + ["—"] * (len(head) - 3)
        lines.append("| " + " | ".join([method, setting, *cells]) + " |")
    lines += ["", f"Made by: `{command}`", ""]
    return "\n".join(lines)


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "$": r"\$",
        "{": r"\{", "}": r"\}", "—": "--"}


def _tex(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(text))


def to_latex(table: pd.DataFrame, k: int, command: str) -> str:
    """The leaderboard as a booktabs LaTeX table laid out like the paper's Table 2, plus the rank."""
    n = 6 + 3 * len(CHANNELS) + 1
    groups = " & ".join(rf"\multicolumn{{3}}{{c}}{{{TITLES[c]}}}" for c in CHANNELS)
    rules = "".join(rf"\cmidrule(lr){{{7 + 3 * i}-{9 + 3 * i}}}" for i in range(len(CHANNELS)))
    sub = " & ".join([r"$\bar z$ & Pos & Sig"] * len(CHANNELS))
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
            cells = [_tex(c) for c in _cells(row)]
            lines.append(" & ".join([method, setting, *cells]) + r" \\")
        else:
            lines.append(f"{method} & {setting} & \\multicolumn{{{n - 2}}}{{l}}{{{_tex(row['status'])}}} \\\\")
    lines += [
        r"\bottomrule",
        r"\end{tabular}",
        f"% homogeneity at K = {k}; $^\\dagger$ collapsed (excluded from ranking)",
        "",
    ]
    return "\n".join(lines)


def _query_labels(manifest: pd.DataFrame, query_ids: Sequence[str], columns: Sequence[str]) -> dict[str, list[str]]:
    labels = {}
    for column in columns:
        if column in manifest.columns:
            labels[column] = [str(manifest.at[q, column]) if q in manifest.index else "" for q in query_ids]
    return labels


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
) -> pd.DataFrame:
    """Diagnose every run under `runs_root` and write the leaderboard and figures into `results_dir`.

    Per run folder: `aria.json` (all diagnostics) and `aria_queries.csv` (z per query, channel, K and
    stage). In `results_dir`: `leaderboard.csv`, `leaderboard.md`, `leaderboard.tex` and
    `figures/{energy_spectrum,ksweep,residual}.png`. `manifest` overrides the manifest each artefact's
    provenance names. `command` is recorded in every output (default: this process's command line).
    Returns the leaderboard table.
    """
    command = command or " ".join(["python", *sys.argv])
    settings = settings or AriaSettings()
    feature_settings = feature_settings or FeatureSettings()
    results_dir = Path(results_dir)
    records = [read_run(d) for d in find_runs(runs_root)]
    artefacts = {}
    for record in records:
        if record["status"] == "ok":
            artefacts[record["dir"]] = read_scores(record["dir"] / record.get("scores", "scores.h5"))
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
        features = extract_features(table.loc[wanted, "path"].tolist(), wanted, feature_settings, cache_dir,
                                    workers=workers, progress=progress)
        pool = build_pool(features, train or wanted, cache_dir)
        for run_dir in tqdm(run_dirs, desc="aria diagnostics", unit="run", disable=not progress):
            artefact = artefacts[run_dir]
            labels = _query_labels(table, artefact.query_ids, settings.confound_columns)
            result, per_query = diagnose(artefact, pool, settings, labels)
            result = jsonable({"command": command, "version": __version__, "manifest": manifest_file, **result})
            (run_dir / DIAGNOSTICS_FILE).write_text(json.dumps(result, indent=1, allow_nan=False))
            per_query.assign(command=command).to_csv(run_dir / QUERIES_FILE, index=False)
            diagnostics[run_dir] = result

    rows = []
    for record in records:
        if record["dir"] in diagnostics:
            rows.append(leaderboard_row(diagnostics[record["dir"]], settings.headline_k))
        else:
            reason = record.get("reason") or ""
            status = str(record["status"]) + (f": {reason}" if reason else "")
            rows.append({"method": record["method"], "setting": record["setting"], "status": status,
                         "collapsed": False})
    table = pd.DataFrame(rows).reindex(columns=COLUMNS[:-2])
    table = table.sort_values(["method", "setting"], kind="stable").reset_index(drop=True)
    table[list(RELIABILITY) + [f"{c}_{s}" for c in CHANNELS for s in SUMMARY]] = table[
        list(RELIABILITY) + [f"{c}_{s}" for c in CHANNELS for s in SUMMARY]].astype(float)
    table["collapsed"] = table["collapsed"].fillna(False).astype(bool)
    table["rank"] = rank_settings(table)
    table["command"] = command

    results_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(results_dir / "leaderboard.csv", index=False)
    (results_dir / "leaderboard.md").write_text(to_markdown(table, settings.headline_k, command))
    (results_dir / "leaderboard.tex").write_text(to_latex(table, settings.headline_k, command))
    done = [diagnostics[r["dir"]] for r in records if r["dir"] in diagnostics]
    if done:
        figures = results_dir / "figures"
        energy_figure(done, figures / "energy_spectrum.png", command)
        ksweep_figure(done, figures / "ksweep.png", command)
        residual_figure(done, figures / "residual.png", command, settings.headline_k)
    return table

