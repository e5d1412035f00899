"""Abstention: the signals and rules by hand, and on the tiny corpus and model a noise and a speech query get no
shares while a near-copy query does."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from experiments.abstention import lumina_options
from groundtruth.abstention import evaluate_setting, gate_rates
from lumina.methods.attributable import (
    AbstentionRule,
    choose_rule,
    column_signals,
    fit_rule,
    reference_z,
    roc,
    split_halves,
)
from lumina.methods.lumina.attribution import attribute_file, to_markdown
from lumina.methods.lumina.checks import catalogue_database
from lumina.methods.lumina.database import Track, build_database
from lumina.methods.lumina.method import database_path, signature_store
from lumina.methods.lumina.scoring import ScoringConfig
from lumina.methods.lumina.signatures import SignatureConfig
from lumina.methods.options import LuminaOptions
from lumina.models.embedded_recipe import EmbeddedModelConfig, train_embedded
from lumina.models.training import TrainConfig
from lumina.runs.errors import ParameterError
from tests.generator_fixtures import TINY_CODEC, TINY_LM

CONF = str(Path(__file__).resolve().parents[1] / "conf")


def test_column_signals_by_hand() -> None:
    tracks = np.array([[3.0, 1.0], [1.0, 2.0], [1.0, 3.0], [1.0, 2.0]])
    signals = column_signals(tracks)
    assert signals["top_score"].tolist() == [3.0, 3.0] and signals["top_track"].tolist() == [0, 2]
    # column 0: mean 1.5, population std sqrt(0.75); column 1: mean 2, std sqrt(0.5)
    np.testing.assert_allclose(signals["top_standout"], [1.5 / math.sqrt(0.75), 1.0 / math.sqrt(0.5)])
    assert ((signals["collapse"] >= 0) & (signals["collapse"] <= 1 + 1e-12)).all()


def test_collapse_is_one_for_a_common_direction_and_shared_for_orthogonal_columns() -> None:
    pattern = np.array([1.0, -2.0, 0.5, 0.5])
    collapsed = column_signals(np.outer(pattern, [1.0, 2.0, -3.0]))
    np.testing.assert_allclose(collapsed["collapse"], 1.0)
    a, b = np.array([1.0, -1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0, -1.0])
    split = column_signals(np.c_[a, 2 * b])  # the first direction is one column's: the other has none of it
    np.testing.assert_allclose(sorted(split["collapse"]), [0.0, 1.0], atol=1e-12)


def test_reference_z_and_its_refusals() -> None:
    np.testing.assert_allclose(reference_z(np.array([4.0]), np.array([1.0, 2.0, 3.0])), [2.0])  # sd 1
    with pytest.raises(ParameterError, match="at least 3"):
        reference_z(np.array([1.0]), np.array([1.0, 2.0]))
    with pytest.raises(ParameterError, match="all equal"):
        reference_z(np.array([1.0]), np.ones(4))


def test_roc_auc_is_mann_whitney_with_ties_halved() -> None:
    values = np.array([0.9, 0.8, 0.5, 0.5, 0.3, 0.1])
    positive = np.array([True, True, True, False, False, False])
    fpr, tpr, auc = roc(values, positive)
    u = stats.mannwhitneyu(values[positive], values[~positive]).statistic
    assert math.isclose(auc, u / 9) and math.isclose(auc, 8.5 / 9)
    assert fpr[-1] == tpr[-1] == 1.0 and fpr[0] == tpr[0] == 0.0
    assert math.isclose(roc(-values, positive, direction=-1)[2], auc)


def test_fit_rule_keeps_the_false_rate_and_maximises_recall() -> None:
    values = np.array([5.0, 6.0, 7.0, 1.0, 2.0, 3.0, 4.0])
    positive = np.array([True] * 3 + [False] * 4)
    rule = fit_rule(values, positive, "top_score", max_false_rate=0.0)
    assert rule.threshold == 4.5 and rule.attributable(np.array([4.4, 4.6])).tolist() == [False, True]
    lenient = fit_rule(values, positive, "top_score", max_false_rate=0.25)  # one of four negatives may pass
    assert lenient.threshold == 3.5
    lower_better = fit_rule(-values, positive, "loss_z", max_false_rate=0.0)  # loss_z: smaller is attributable
    assert lower_better.threshold == -4.5 and lower_better.attributable(np.array([-5.0, -4.0])).tolist() == [True,
                                                                                                            False]
    assert "no training track stands out" in rule.reason(1.0) and rule.reason(9.0).startswith("top_score 9")


def test_choose_rule_picks_the_separating_signal() -> None:
    rng = np.random.default_rng(0)
    positive = np.array([True] * 10 + [False] * 10)
    signals = pd.DataFrame({"top_score": rng.standard_normal(20), "top_standout": positive * 5.0 + rng.random(20)})
    rule, aucs = choose_rule(signals, positive, ["top_score", "top_standout"])
    assert rule.signal == "top_standout" and aucs["top_standout"] == 1.0
    assert rule.attributable(signals["top_standout"].to_numpy()).tolist() == positive.tolist()


def test_halves_are_stratified_by_kind_and_seeded() -> None:
    kinds = ["near_copy"] * 5 + ["held_out"] * 4
    halves = split_halves([f"q{i}" for i in range(9)], kinds, seed=0)
    table = pd.DataFrame({"kind": kinds, "half": halves})
    assert table.groupby(["kind", "half"]).size().to_dict() == {
        ("held_out", "calibration"): 2, ("held_out", "evaluation"): 2,
        ("near_copy", "calibration"): 3, ("near_copy", "evaluation"): 2}
    assert halves.tolist() == split_halves([f"q{i}" for i in range(9)], kinds, seed=0).tolist()


def test_evaluation_is_on_the_held_half_only() -> None:
    """A rule fitted on a calibration half where one signal separates perfectly, measured on an evaluation half
    where it fails for one negative: the rates are the evaluation half's."""
    rows = []
    for half, negative_top in (("calibration", [0.1, 0.2]), ("evaluation", [0.1, 0.95])):
        rows += [{"query_id": f"p-{half}-{i}", "kind": "near_copy", "half": half, "top_score": v}
                 for i, v in enumerate([0.9, 1.0])]
        rows += [{"query_id": f"n-{half}-{i}", "kind": "held_out", "half": half, "top_score": v}
                 for i, v in enumerate(negative_top)]
        rows.append({"query_id": f"c-{half}", "kind": "composition", "half": half, "top_score": 0.5})
    row, flags, _ = evaluate_setting(pd.DataFrame(rows), ["top_score"], max_false_rate=0.0)
    assert row["threshold"] == pytest.approx(0.55)
    assert row["recall_near_copy"] == 1.0 and row["false_share_negatives"] == 0.5
    assert row["attributable_composition"] == 0.0 and len(flags) == 10


def test_gate_rates_before_and_after() -> None:
    shared = pd.DataFrame({"query_id": ["a", "b", "c", "d"], "kind": ["near_copy", "held_out", "out_of_domain",
                                                                       "held_out"],
                           "half": ["evaluation"] * 4, "any_share": [True, True, True, False]})
    rates = gate_rates(shared, pd.Series({"a": True, "b": False, "c": True, "d": True}))
    assert rates == {"false_share_before": 2 / 3, "false_share_after": 1 / 3, "recall_before": 1.0,
                     "recall_after": 1.0}


def test_rule_roundtrip() -> None:
    rule = AbstentionRule("collapse", 0.4, -1, "calibration half")
    assert AbstentionRule(**rule.as_dict()) == rule


PIPELINE_QUERIES = ("q_near_copy_00", "q_near_copy_01", "q_near_copy_02", "q_near_copy_03", "q_held_out_00",
                    "q_held_out_01", "q_out_of_domain_00", "q_out_of_domain_01", "q_composition_00")
"""Queries signed into the tiny database for the study's pipeline test."""


# -- on the tiny corpus and a model trained on it ---------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_attribution(tiny_corpus, tmp_path_factory):
    """A tiny model trained on the tiny corpus and LUMINA's database of its training and control tracks."""
    config = EmbeddedModelConfig(codec=TINY_CODEC, lm=TINY_LM, train=TrainConfig(
        epochs=12, batch_size=4, crop_frames=96, warmup_steps=2, checkpoints=0, resume_every=1000))
    cache = tmp_path_factory.mktemp("abstention")
    generator = train_embedded(tiny_corpus, config, cache, progress=False)
    tracks = [Track(t, s, tiny_corpus.path_of(t), d) for t, s, d in
              tiny_corpus.table[["track_id", "split", "description"]].itertuples(index=False)
              if s in ("train", "control") or t in PIPELINE_QUERIES]
    db = build_database(cache / "signatures.h5", generator, tracks, SignatureConfig(chunk_s=1.0), progress=False)
    return tiny_corpus, generator, db


def test_noise_and_speech_get_no_share_and_a_copy_of_a_training_track_does(tiny_attribution, tmp_path) -> None:
    """The near-copy here is the extreme one, a byte copy of a training track: on a model this small, LUMINA's
    milder near-copies (another soundfont, EQ, reverb) are not distinguishable from held-out music by their top
    cosine (z <= 1.3 against the controls), which the abstention study measures on the real model. With four
    control tracks as references even the copy's cosine of 1 is only 1.3 reference sd above their top cosines, so
    the threshold here is 1 (the default comes from the abstention study on the embedded default)."""
    manifest, generator, db = tiny_attribution
    copy = tmp_path / "copy_of_t0000.wav"
    copy.write_bytes(manifest.path_of("t0000").read_bytes())
    verdicts = {}
    for query, path in (("copy", copy), ("noise", manifest.path_of("q_out_of_domain_00")),
                        ("speech", manifest.path_of("q_out_of_domain_01"))):
        report = attribute_file(path, db, ScoringConfig(abstain_z=1.0), generator=generator,
                                description=manifest.description_of("t0000") if query == "copy" else "")
        channel = report["channels"]["P"]
        verdicts[query] = (channel["attributable"], sum(r["share"] for r in channel["rows"]), channel["rows"][0])
        assert report["abstention"]["references"] == "control tracks" and report["schema_version"] == 2
        assert len(report["hashes"]["audio_sha256"]) == 64
    assert manifest.row("q_out_of_domain_01")["variant"] == "speech"
    assert verdicts["noise"][:2] == (False, 0.0)
    assert verdicts["speech"][:2] == (False, 0.0)
    attributable, total, top = verdicts["copy"]
    assert attributable and math.isclose(total, 1.0) and top["track_id"] == "t0000"


def test_the_old_rule_stays_available_and_the_markdown_says_none(tiny_attribution) -> None:
    manifest, generator, db = tiny_attribution
    noise = manifest.path_of("q_out_of_domain_00")
    old = attribute_file(noise, db, ScoringConfig(abstain=False), generator=generator)
    assert sum(r["share"] for r in old["channels"]["P"]["rows"]) == pytest.approx(1.0)  # shares for noise
    new = attribute_file(noise, db, ScoringConfig(), generator=generator)
    text = to_markdown(new)
    assert "no training song stands out" in text.lower() and "Verdict" in text


def test_description_effect_fits_the_report_rule_on_one_half_and_judges_both_descriptions() -> None:
    """Hand-computed: calibration negatives' reference_z 1.0, 0.5, 0.0 and positives' 3.0, 2.0 put the zero-false
    threshold halfway between 1.0 and 2.0; the evaluation half is judged with both descriptions."""
    from groundtruth.abstention import description_effect

    flags = pd.DataFrame({
        "query_id": [f"q{i}" for i in range(9)],
        "kind": ["near_copy", "near_copy", "held_out", "held_out", "out_of_domain",
                 "near_copy", "near_copy", "held_out", "out_of_domain"],
        "half": ["calibration"] * 5 + ["evaluation"] * 4,
        "reference_z": [3.0, 2.0, 1.0, 0.5, 0.0, 2.5, 0.8, 1.6, -1.0]})
    empty = pd.DataFrame({"query_id": ["q5", "q6", "q7", "q8"], "setting": "lumina-P",
                          "reference_z": [1.0, 2.0, 0.0, -0.5]})
    effect = description_effect(flags, empty, max_false_rate=0.0)
    assert effect["report_threshold"] == pytest.approx(1.5)
    assert (effect["recall_own"], effect["false_share_own"]) == (0.5, 0.5)  # q5 in, q6 out; q7 in, q8 out
    assert (effect["recall_empty"], effect["false_share_empty"]) == (0.5, 0.0)  # q6 in, q5 out; no negative
    assert effect["mean_reference_z_shift"] == pytest.approx((-1.5 + 1.2 - 1.6 + 0.5) / 4)
    assert effect["n_evaluation"] == 4


def test_the_study_pipeline_on_lumina_signatures(tiny_attribution, tmp_path) -> None:
    """What `python -m experiments.abstention` does for a LUMINA setting, on the tiny database: reference tops
    from the controls, signals of a cosine matrix, a rule fitted on one half, gates before and after, the
    description's effect, and the report files."""
    from aria.io import read_scores
    from groundtruth.abstention import (
        description_effect,
        lumina_empty_description_z,
        lumina_gate_shares,
        query_table,
        setting_signals,
        study_provenance,
        write_flags,
    )
    from groundtruth.tables import write_abstention_report
    from lumina.methods.lumina.checks import reference_tops
    from lumina.methods.lumina.method import channel_matrix
    from lumina.methods.lumina.scoring import cosine_scores
    from lumina.runs.provenance import stamp
    from lumina.runs.score_matrix import ScoreMatrix, write_run

    manifest, generator, db = tiny_attribution
    queries = query_table(manifest, list(PIPELINE_QUERIES), seed=0)
    tops = reference_tops(db)
    assert set(tops) == {"lumina-P", "lumina-M", "lumina-PM"} and tops["lumina-P"].shape == (4,)
    train = db.ids("train")
    scores = cosine_scores(channel_matrix(db, "P", train), channel_matrix(db, "P", list(PIPELINE_QUERIES)))
    write_run(tmp_path / "lumina-P", {"method": "lumina", "setting": "lumina-P"}, stamp(),
              ScoreMatrix(scores, train, list(PIPELINE_QUERIES), method="lumina", setting="lumina-P"))
    artefact = read_scores(tmp_path / "lumina-P" / "scores.h5")
    loss_z = dict.fromkeys(PIPELINE_QUERIES, 0.0)
    signals = setting_signals(artefact, queries, loss_z, tops["lumina-P"])
    # the matrix is stored in float32: its top scores, and the z computed from them, agree to float32 precision
    np.testing.assert_allclose(signals["top_score"], scores.max(axis=0), rtol=1e-6)
    np.testing.assert_allclose(signals["reference_z"], reference_z(scores.max(axis=0), tops["lumina-P"]), rtol=1e-5)
    row, flags, curve = evaluate_setting(signals, ["top_score", "reference_z"], max_false_rate=0.0)
    assert 0.0 <= row["evaluation_auc"] <= 1.0 and flags["attributable"].dtype == bool
    assert (tmp_path / "lumina-P" / "abstention.csv") == write_flags(flags, tmp_path / "lumina-P")
    shares = lumina_gate_shares(db, queries, ["sts1", "calibrated"])
    assert set(shares["gate"]) == {"sts1", "calibrated"} and len(shares) == 2 * 2 * len(PIPELINE_QUERIES)
    empty = lumina_empty_description_z(db, generator, manifest, queries.iloc[:2], tops)
    assert len(empty) == 4
    effect = description_effect(flags, empty[empty["setting"] == "lumina-P"], max_false_rate=0.0)
    labelled = flags[flags["kind"].isin(["near_copy", "held_out", "out_of_domain"])]
    evaluated = set(labelled.query("half == 'evaluation'")["query_id"])
    assert effect["n_evaluation"] == len(set(empty["query_id"]) & evaluated)
    gates = pd.DataFrame([{"gate": "sts1", "channel": "P", **gate_rates(shares[shares["gate"] == "sts1"]
                                                                         .query("channel == 'P'"),
                                                                         flags.set_index("query_id")[
                                                                             "attributable"])}])
    provenance = study_provenance("python -m experiments.abstention x=1", {"abstention": {"split_seed": 0}}, manifest,
                                  tmp_path, [(tmp_path / "lumina-P", artefact)], generator, db)
    path = write_abstention_report(pd.DataFrame([{"method": "lumina", "setting": "lumina-P", **row}]), gates,
                                   {"lumina/lumina-P": curve}, queries, [], tmp_path / "results", provenance)
    assert "## LUMINA's gates" in path.read_text() and "Command: `python -m experiments.abstention x=1`" in \
        path.read_text()
    assert (tmp_path / "results" / "figures" / "abstention_roc.png").stat().st_size > 0
    assert set(pd.read_csv(tmp_path / "results" / "abstention.csv")["command"]) == {
        "python -m experiments.abstention x=1"}
    record = json.loads((tmp_path / "results" / "abstention.json").read_text())
    assert record["command"] == "python -m experiments.abstention x=1"
    assert record["config"] == {"abstention": {"split_seed": 0}}
    assert record["upstream"] == {
        "manifest": manifest.sha256(), "catalogue": manifest.catalogue_key, "model": generator.identity(),
        "lumina/lumina-P": hashlib.sha256((tmp_path / "lumina-P" / "scores.h5").read_bytes()).hexdigest()}
    assert record["signature_database"] == str(db.path) and record["created_utc"].endswith("Z")


def test_the_abstention_app_takes_lumina_s_configured_options() -> None:
    """A changed signature option names another database: the app reads `method.*`, not LUMINA's defaults."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        default = compose("abstention")
        changed = compose("abstention", overrides=["method.mode=jl", "method.segments=smart3", "method.gate=conf95"])
    assert lumina_options(default) == LuminaOptions()
    assert (lumina_options(changed).mode, lumina_options(changed).gate) == ("jl", "conf95")
    assert database_path(lumina_options(default), "store").name == "signatures.h5"
    assert database_path(lumina_options(changed), "store").name == "signatures-jl-smart3.h5"


def test_the_catalogue_database_is_the_one_the_options_sign_into(tiny_attribution, tmp_path) -> None:
    """The database of the default options in the model's store is found; options with another signature mode
    look for their own file and find none; an explicit `database` is read wherever it lies."""
    manifest, generator, db = tiny_attribution
    store = signature_store(tmp_path, generator)
    store.mkdir(parents=True)
    (store / "signatures.h5").write_bytes(db.path.read_bytes())
    found = catalogue_database(LuminaOptions(), tmp_path, generator, manifest)
    assert found is not None and found.ids("train") == db.ids("train") and found.ids("control") == db.ids("control")
    np.testing.assert_array_equal(found.signatures["P"], db.signatures["P"])
    assert found.provenance["catalogue_key"] == manifest.catalogue_key
    assert catalogue_database(LuminaOptions(mode="jl"), tmp_path, generator, manifest) is None
    explicit = catalogue_database(LuminaOptions(mode="jl", database=str(db.path)), tmp_path / "empty", generator,
                                  manifest)
    assert explicit is not None and explicit.path == db.path
