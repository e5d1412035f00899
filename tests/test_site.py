"""The HTML report (docs/report.md), without a browser: rankings by hand, ground truth joined only to its own
model (by truth.json), verdicts, spread across seeds, each run's own manifest, LUMINA's written evidence, the
attribution report's recorded command, no method code imported, channel similarities of an exact copy, audio and
symbolic media."""

from __future__ import annotations

import ast
import html as htmllib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from aria.channels import AUDIO
from aria.io import read_scores
from groundtruth.identity import PLAN_FILE, read_truth_identity, write_truth_identity
from groundtruth.study import PLAN_FILE as STUDY_PLAN_FILE
from groundtruth.study import Study
from lumina.runs.provenance import PROJECT
from lumina.runs.score_matrix import ScoreMatrix
from lumina.site import SiteOptions, build_site
from lumina.site.evidence import ranking
from lumina.site.inputs import Manifests, Run, find_runs, find_truths, truth_for
from lumina.site.media import piano_roll, transcode
from tests.site_fixtures import ATTRIBUTE_COMMAND, CATALOGUE, MODEL, QUERIES, TRAIN, write_study

SITE = Path(__file__).resolve().parents[1] / "lumina" / "site"


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return write_study(tmp_path_factory.mktemp("site-study"))


@pytest.fixture(scope="module")
def site(study: dict) -> Path:
    """The report of the synthetic study (no channel similarities: those are tested on their own)."""
    out = study["outputs"] / "report"
    build_site(study["runs"], out, truth_roots=[study["outputs"]], attributions=study["reports"], channel_set=AUDIO,
               options=SiteOptions(channel_similarity=False, headline_k=3, progress=False),
               command="python -m experiments.report (test)")
    return out


def test_ranking_aggregates_segments_and_keeps_the_best_segment_start(tmp_path: Path) -> None:
    # two tracks of two segments, two queries; track scores are the mean of the segments (Aria's aggregation)
    scores = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 5.0], [2.5, -1.0]])
    matrix = ScoreMatrix(scores, ["a", "a", "b", "b"], ["q1", "q2"], "m", "s",
                         segment_start_s=np.array([0.0, 4.0, 0.0, 4.0]))
    matrix.save(tmp_path / "scores.h5")
    r = ranking(read_scores(tmp_path / "scores.h5"))
    # q1: a = (1 + 3) / 2 = 2.0, best segment at 4 s; b = (0 + 2.5) / 2 = 1.25, best at 4 s
    assert r.top("q1", 2) == [("a", 2.0, 4.0), ("b", 1.25, 4.0)]
    # q2: b = 2.0 (best at 0 s), a = 0.0 (a tie of its segments keeps the first, 0 s)
    assert r.top("q2", 2) == [("b", 2.0, 0.0), ("a", 0.0, 0.0)]
    assert r.rank_of("q2", ["a"]) == 2 and r.rank_of("q2", ["x"]) is None


def test_ground_truth_joins_only_the_runs_of_its_own_model(study: dict) -> None:
    runs = {(r.method, r.seed): r for r in find_runs(study["runs"])}
    truths = find_truths([study["outputs"]], [])
    assert {t.folder.name for t in truths} == {"gt_same", "gt_other", "gt_legacy"}
    # joined by catalogue key and recipe, though the study's manifest SHA-256 is not the run's
    truth, note = truth_for(runs[("graddot", 0)], truths)
    assert truth is not None and truth.folder.name == "gt_same" and "this run's model" in note
    assert truth.command == "python -m experiments.ground_truth"
    # the seed-1 run is the same recipe trained with another seed: no truth of its own
    truth, note = truth_for(runs[("graddot", 1)], truths)
    assert truth is None and "belongs to another model" in note
    # a truth without truth.json is not joined, though the Markdown beside it names its study
    assert "gt_legacy: it names no identity (no truth.json beside it" in note
    truth, note = truth_for(runs[("embedding", 0)], truths)
    assert truth is None and "judges this setting" in note


def test_leaderboard_shows_spread_across_seeds_collapse_and_joined_lds(site: Path) -> None:
    html = (site / "index.html").read_text()
    row = re.search(r"<tr>\s*<td data-sort=\"graddot/raw\">.*?</tr>", html, re.S).group(0)
    # rho1 of the two seeds: 0.40 and 0.50 -> mean 0.450, sd 0.071; LDS only from the seed-0 run's own truth
    assert "0.450 ± 0.071" in row and ">0.250<" in row and "-0.500" not in row
    embedding = re.search(r"<tr>\s*<td data-sort=\"embedding/chroma\">.*?</tr>", html, re.S).group(0)
    assert "collapsed" in embedding  # rho1 0.9 >= 0.78
    assert "not configured: no checkpoint" in html
    assert "python -m experiments.report (test)" in html and "hash0" in html


def test_query_page_shows_verdicts_planted_sources_and_players_at_segments(site: Path) -> None:
    html = (site / "queries" / "tiny-cafe0123-embedded--q_near_copy_00.html").read_text()
    assert "t0001 (planted)" in html
    assert 'src="../audio/t0001-' in html and '.ogg#t=1.00"' in html  # the near-copy's best segment starts at 1 s
    assert "attributable" in html and "top score above the reference queries" in html
    assert "not assessed" in html  # the embedding run carries no verdict
    held_out = (site / "queries" / "tiny-cafe0123-embedded--q_held_out_00.html").read_text()
    assert "not attributable" in held_out and "no training song stands out" in held_out
    assert "0.600" in html and "-0.100" in held_out  # per-query LDS of the joined truth


def test_every_page_kind_is_written_with_alt_text_and_header_cells(site: Path) -> None:
    pages = [site / "index.html", *sorted((site / "settings").glob("*.html")), *sorted((site / "queries").glob(
        "*.html")), *sorted((site / "attribution").glob("*.html"))]
    assert len(pages) == 1 + 3 + len(QUERIES) + 1
    for page in pages:
        html = page.read_text()
        assert all(' alt="' in img for img in re.findall(r"<img[^>]*>", html)), page
        assert html.count("<table") == html.count("<thead>"), page
        assert "Made by <code>python -m experiments.report (test)</code>" in html


def test_attribution_page_gives_each_channels_verdict_and_why(site: Path) -> None:
    """The report's per-channel abstention: P attributable, M not, with the report's reason and its rule."""
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", (site / "attribution" / "q_near_copy_00.html").read_text()))
    assert "Verdict: attributable (Channel P attributable; Channel M not attributable; rule reference_z ≥ 2.02" in text
    assert "Not attributable: no training song stands out: the top cosine is 0.40 reference sd above" in text
    assert "Attributable (reference z 2.50)" in text and "not assessed" not in text
    # the attributed audio is the study's near-copy query: its planted source t0001 (rank 2 of each channel) is
    # marked in both channels' tables, and no other track is
    assert "its planted source(s): t0001" in text
    assert text.count("t0001 (planted)") == 2 and text.count("(planted)") == 2


def test_the_attribution_page_shows_the_command_the_report_recorded(study: dict, site: Path) -> None:
    page = (site / "attribution" / "q_near_copy_00.html").read_text()
    assert f"Made by <code>{ATTRIBUTE_COMMAND}</code>" in page
    assert f"runs made by <code>{ATTRIBUTE_COMMAND}</code>" in page  # the footer's source
    recorded = json.loads((study["reports"] / "q_near_copy_00" / "report.json").read_text())["provenance"]
    assert recorded["command"] == ATTRIBUTE_COMMAND and recorded["created_utc"] in page


def section(page: str, anchor: str) -> str:
    """The HTML of one setting's section of a query page."""
    return re.search(rf'<section id="{anchor}">.*?</section>', page, re.S).group(0)


def test_lumina_evidence_on_the_query_page_is_the_runs_evidence_table(study: dict, site: Path) -> None:
    """Each top track's LUMINA cell is the run's `lumina_evidence.csv` row of each channel, formatted."""
    folder = study["runs"] / "tiny-cafe0123-embedded-seed0" / "lumina" / "lumina-PM"
    written = pd.read_csv(folder / "lumina_evidence.csv", dtype={"query_id": str, "track_id": str})
    assert json.loads((folder / "run.json").read_text())["tables"] == ["lumina_evidence.csv"]
    for query in QUERIES:
        page = (site / "queries" / f"tiny-cafe0123-embedded--{query}.html").read_text()
        rows = re.findall(r"<tr>\s*<td class=\"num\">\d+</td>\s*<th scope=\"row\"[^>]*>(\w+).*?</th>.*?</tr>",
                          section(page, "lumina--lumina-PM"), re.S)
        cells = re.findall(r"<td>(P: .*?)</td>", section(page, "lumina--lumina-PM"), re.S)
        # scores rise with the track's index: the top five are t0005 … t0001
        assert rows == TRAIN[::-1][:5] and len(cells) == 5
        for track, shown in zip(rows, cells, strict=True):
            mine = written[(written["query_id"] == query) & (written["track_id"] == track)]
            expected = "<br>".join(f"{r.channel}: {r.tier}, {r.confidence:.3f}, {100 * r.share:.1f} %"
                                   for r in mine.itertuples())
            assert list(mine["channel"]) == ["P", "M"] and shown == expected
        assert "P: " not in section(page, "graddot--raw")  # only LUMINA's run wrote evidence


def test_each_setting_shows_tracks_from_its_own_runs_manifest(site: Path) -> None:
    """The embedding run names `manifest_b.csv` (descriptions "… (b)"), the others `manifest.csv`."""
    page = (site / "queries" / "tiny-cafe0123-embedded--q_near_copy_00.html").read_text()
    embedding, graddot = section(page, "embedding--chroma"), section(page, "graddot--raw")
    assert embedding.count(" Hz (b)</small>") == 5 and "(b)" not in graddot and graddot.count(" Hz</small>") == 5


def test_old_runs_fall_back_to_their_folder_and_project_relative_manifests(tmp_path: Path) -> None:
    old = Run("tiny-cafe0123-embedded-seed3", tmp_path, "m", "s", "ok", "", record_provenance={})
    new = Run("elsewhere", tmp_path, "m", "s", "ok", "",
              record_provenance={"study": "music21-1a2b3c4d-embedded-seed0-g5e6f7a8b", "manifest": "x/manifest.csv"})
    assert (old.study, old.group) == ("tiny-cafe0123-embedded-seed3", "tiny-cafe0123-embedded")
    assert (new.study, new.group) == ("music21-1a2b3c4d-embedded-seed0-g5e6f7a8b", "music21-1a2b3c4d-embedded")
    assert Manifests().path(new) == (PROJECT / "x" / "manifest.csv").resolve()  # recorded relative to the project
    assert Manifests(tmp_path / "m.csv").path(new) == (tmp_path / "m.csv").resolve()


def test_truth_identity_round_trips_from_the_studys_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "studies" / "de9ba4de977a"
    folder.mkdir(parents=True)
    (folder / "plan.json").write_text(json.dumps({"manifest_sha256": "ef" * 32, "catalogue_key": "beef",
                                                  "model": MODEL, "fraction": 0.5}))
    study = Study(folder, TRAIN, TRAIN, [TRAIN[:3]] * 3, np.zeros((3, 6), bool), np.zeros((3, 6)),
                  np.zeros((3, 6, 1)), [{}] * 3)
    assert read_truth_identity(tmp_path / "gt") is None
    write_truth_identity(tmp_path / "gt", study, "python -m experiments.ground_truth", catalogue_key=CATALOGUE)
    assert read_truth_identity(tmp_path / "gt") == {
        "study": "studies/de9ba4de977a", "study_key": "de9ba4de977a", "catalogue_key": CATALOGUE,
        "training_key": "beef", "manifest_sha256": "ef" * 32, "model": MODEL, "n_models": 3,
        "command": "python -m experiments.ground_truth"}
    # the plan's key covers the training tracks only: never taken for the runs' catalogue key
    write_truth_identity(tmp_path / "gt", study, "c")
    assert read_truth_identity(tmp_path / "gt")["catalogue_key"] == ""
    assert PLAN_FILE == STUDY_PLAN_FILE  # the plan the study writes is the one read


def test_the_site_imports_no_method_code() -> None:
    """No module of lumina/site imports the methods or the generators, even lazily."""
    for path in sorted(SITE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not [n for n in names if n.startswith(("lumina.methods", "lumina.models"))], path


BUILD = """
import sys
from pathlib import Path
from aria.channels import AUDIO
from lumina.site import SiteOptions, build_site
build_site("outputs/runs", "site", truth_roots=["outputs"], attributions="outputs/reports", channel_set=AUDIO,
           options=SiteOptions(channel_similarity=False, headline_k=3, progress=False), command="test")
print(sorted(m for m in sys.modules if m.startswith(("lumina.methods", "lumina.models", "lumina.configure"))))
"""


def test_a_site_is_built_without_loading_method_code_and_names_project_relative_paths(study: dict) -> None:
    """Built in a fresh interpreter from the study's folder (its project): no method, generator or configuration
    module is loaded, and the index names the runs and the joined truth relative to the folder."""
    root = study["outputs"].parent
    done = subprocess.run([sys.executable, "-c", BUILD], cwd=root, capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(PROJECT)})
    assert done.stdout.strip().splitlines()[-1] == "[]"
    index = htmllib.unescape((root / "site" / "index.html").read_text())
    assert "<code>outputs/runs</code>" in index and "Ground truth from outputs/gt_same (model" in index


def test_audio_is_transcoded_to_ogg_vorbis_of_the_same_length(study: dict, tmp_path: Path) -> None:
    source = study["manifest"].parent / "audio" / "t0000.wav"
    out = transcode(source, tmp_path, 22050, 0.6)
    info = sf.info(str(out))
    assert info.format == "OGG" and info.subtype == "VORBIS" and info.samplerate == 22050
    assert info.duration == pytest.approx(2.0, abs=0.01)
    assert transcode(source, tmp_path, 22050, 0.6) == out  # reused, keyed by the source's content


def test_symbolic_track_is_rendered_with_fluidsynth_and_drawn_as_a_piano_roll(tmp_path: Path) -> None:
    import pretty_midi

    midi = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    piano.notes = [pretty_midi.Note(velocity=90, pitch=60 + i, start=0.5 * i, end=0.5 * i + 0.4) for i in range(4)]
    midi.instruments.append(piano)
    path = tmp_path / "query.mid"
    midi.write(str(path))
    audio, sr = sf.read(str(transcode(path, tmp_path / "site", 22050, 0.6)))
    assert sr == 22050 and len(audio) / sr >= 2.0 and np.abs(audio).max() > 0.01  # 2 s of notes, audible
    assert piano_roll(path, tmp_path / "site").stat().st_size > 1000


def test_channel_similarity_of_an_exact_copy_is_one_and_tops_the_pool(study: dict) -> None:
    from aria.features import FeatureSettings
    from aria.io import read_manifest
    from lumina.site.evidence import channel_similarities

    table = read_manifest(study["manifest"])
    sims = channel_similarities(table, QUERIES, AUDIO, FeatureSettings(), study["outputs"] / "aria-cache",
                                workers=1, progress=False)
    defined = 0
    for channel in AUDIO.names:
        row = sims[channel].loc["q_near_copy_00"]  # the same audio as t0001
        if np.isnan(row["t0001"]):  # test tones: no beat, no chord change — undefined (docs/aria.md), never 1
            assert channel in ("rhythm", "harmony")
            continue
        defined += 1
        assert row["t0001"] == pytest.approx(1.0)
        assert (row.drop("t0001").dropna() < 1.0).all()
    assert defined >= 1  # timbre is always defined
