"""Evaluation core: metrics, comparison statistics, behaviour cases and gate decisions."""

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from ml_assets.data.contract import DataContract
from ml_assets.evaluation import gates
from ml_assets.evaluation.baselines import (
    f1_maximising_threshold,
    logistic_regression_scores,
    prior_scores,
)
from ml_assets.evaluation.behaviour import (
    BehaviourSuite,
    Perturbation,
    load_suite,
    perturb,
    run_suite,
)
from ml_assets.evaluation.comparison import (
    _resample_weights,
    mcnemar_exact,
    paired_bootstrap_auc,
    slice_comparison,
    weighted_aucs,
)
from ml_assets.evaluation.evidence import (
    Baselines,
    BehaviourCase,
    Calibration,
    Evaluation,
    ModelEvidence,
    Operational,
    Reproducibility,
    ScoringCost,
    SliceEvidence,
)
from ml_assets.evaluation.metrics import calibration, classification_metrics, group_fairness
from ml_assets.evaluation.policy import (
    BaselineGate,
    BehaviourGate,
    CalibrationGate,
    ChampionGate,
    FloorGate,
    OperationalGate,
    ReproducibilityGate,
    SignificanceGate,
    SliceGate,
)
from ml_assets.settings import load_settings
from ml_assets_tests.conftest import comparison_with_lower_bound

CONTRACT = load_settings().dataset


def test_ece_known_answer():
    scores = np.array([0.1, 0.1, 0.9, 0.9])
    y = np.array([0, 1, 1, 1])
    # Bin 1: mean 0.1, default rate 0.5 -> 0.4 x half the rows; bin 9: 0.9 vs 1.0 -> 0.1 x half.
    result = calibration(y, scores, bins=10)
    assert result.ece == pytest.approx(0.25)
    assert result.bin_rows == [2, 2]
    assert result.brier == pytest.approx(np.mean((scores - y) ** 2))


def test_ece_is_small_for_calibrated_scores():
    rng = np.random.default_rng(0)
    scores = rng.random(200_000)
    y = (rng.random(200_000) < scores).astype(int)
    assert calibration(y, scores, bins=10).ece < 0.01
    assert calibration(y, np.clip(scores + 0.2, 0, 1), bins=10).ece > 0.1


def test_weighted_aucs_match_sklearn_with_ties():
    rng = np.random.default_rng(1)
    y = (rng.random(500) < 0.3).astype(int)
    scores = np.round(rng.random(500) + 0.3 * y, 1)  # coarse: many ties
    weights = _resample_weights(rng, 5, 500)
    expected = [roc_auc_score(y, scores, sample_weight=w) for w in weights]
    assert weighted_aucs(y, scores, weights) == pytest.approx(expected)
    assert weighted_aucs(y, scores, np.ones((1, 500)))[0] == pytest.approx(roc_auc_score(y, scores))


def test_paired_bootstrap_separates_real_gain_from_noise():
    rng = np.random.default_rng(2)
    y = (rng.random(4000) < 0.2).astype(int)
    noise = rng.normal(size=4000)
    champion = noise + 0.8 * y
    same = paired_bootstrap_auc(y, champion, champion, samples=300, confidence=0.95, seed=0)
    assert same.difference == 0 and same.low == 0 and same.high == 0
    better = paired_bootstrap_auc(
        y, champion + 0.8 * y, champion, samples=300, confidence=0.95, seed=0
    )
    assert better.low > 0 and better.difference > 0
    again = paired_bootstrap_auc(
        y, champion + 0.8 * y, champion, samples=300, confidence=0.95, seed=0
    )
    assert again == better  # seeded


def test_mcnemar_exact_known_answer():
    # 10 rows only the challenger gets right, 2 only the champion: p = 2 * P(X <= 2 | 12, 0.5).
    y = np.ones(12 + 5)
    challenger = np.r_[np.ones(10), np.zeros(2), np.ones(5)]
    champion = np.r_[np.zeros(10), np.ones(2), np.ones(5)]
    result = mcnemar_exact(y, challenger, champion, threshold=0.5)
    assert (result.only_challenger_right, result.only_champion_right) == (10, 2)
    assert result.both_right == 5
    assert result.p_value == pytest.approx(2 * (1 + 12 + 66) / 4096)


def test_slice_comparison_tests_only_slices_beyond_tolerance():
    rng = np.random.default_rng(3)
    n = 6000
    group = np.where(rng.random(n) < 0.5, "a", "b")
    y = (rng.random(n) < 0.3).astype(int)
    champion = rng.normal(size=n) + y
    challenger = champion.copy()
    challenger[group == "b"] = rng.normal(size=(group == "b").sum())  # slice b loses all signal
    rows = slice_comparison(
        {"group": group},
        y,
        challenger,
        champion,
        min_rows=100,
        max_regression=0.03,
        samples=200,
        confidence=0.95,
        seed=0,
    )
    by_value = {r["value"]: r for r in rows}
    assert by_value["a"]["drop_low"] is None  # identical scores: no test needed
    assert by_value["b"]["drop_low"] > 0.1
    decision = gates.slice_regression(
        [SliceEvidence(**r) for r in rows], SliceGate(min_rows=100, min_roc_auc=0.4)
    )
    assert not decision.passed and "group=b" in decision.reason


def test_group_fairness_parity_difference():
    y = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    scores = np.array([0.9, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.9])
    groups = pd.Series(["f"] * 4 + ["m"] * 4)
    result = group_fairness(y, scores, groups, threshold=0.5)
    assert result["demographic_parity_difference"] == pytest.approx(1.0 - 0.25)
    assert {g["group"] for g in result["groups"]} == {"f", "m"}


def _baselines(y, logistic_scores):
    rate = float(np.mean(y))
    return Baselines(
        train_positive_rate=rate,
        prior=classification_metrics(y, prior_scores(rate, len(y)), 0.5),
        logistic_regression=classification_metrics(y, logistic_scores, 0.5),
        logistic_train_rows=len(y),
    )


def test_metric_floors_and_champion_directions():
    y = np.array([0, 1, 0, 1])
    metrics = classification_metrics(y, np.array([0.1, 0.8, 0.3, 0.6]), 0.5)
    base = _baselines(y, np.array([0.4, 0.6, 0.5, 0.5]))
    assert gates.metric_floors(metrics, base, FloorGate(min_roc_auc=0.9)).passed
    failed = gates.metric_floors(metrics, base, FloorGate(max_log_loss=0.1))
    assert not failed.passed and failed.margin < 0 and "log_loss" in failed.reason
    # Log loss 0.299 against the base rate's ln 2 = 0.693: skill 1 - 0.299 / 0.693 = 0.568.
    skill = gates.metric_floors(metrics, base, FloorGate(min_log_loss_skill=0.6))
    assert not skill.passed and "skill" in skill.reason
    (row,) = [c for c in skill.criteria if "skill" in c.name]
    assert row.value == pytest.approx(1 - metrics["log_loss"] / math.log(2))
    assert not gates.metric_floors(metrics, None, FloorGate()).passed  # no baseline evidence
    worse = {**metrics, "log_loss": metrics["log_loss"] + 0.05}
    regression = gates.champion_regression(
        worse, metrics, ChampionGate(max_regression={"log_loss": 0.01})
    )
    assert not regression.passed and regression.reference == pytest.approx(metrics["log_loss"])
    assert gates.champion_regression(worse, None, ChampionGate()).reason.startswith("no champion")


def test_the_candidate_must_beat_the_prior_and_the_logistic_regression():
    y = np.array([0, 1, 0, 1, 0, 1])
    good = classification_metrics(y, np.array([0.1, 0.9, 0.2, 0.8, 0.3, 0.7]), 0.5)
    weaker_lr = _baselines(y, np.array([0.4, 0.6, 0.5, 0.4, 0.3, 0.7]))
    assert gates.beats_baselines(good, weaker_lr, BaselineGate()).passed
    better_lr = _baselines(y, np.array([0.1, 0.9, 0.2, 0.8, 0.3, 0.7]))  # ties the candidate
    assert gates.beats_baselines(good, better_lr, BaselineGate()).passed
    assert not gates.beats_baselines(good, better_lr, BaselineGate(min_roc_auc_gain=0.01)).passed
    hopeless = classification_metrics(y, np.full(6, 0.5), 0.5)  # the prior itself
    decision = gates.beats_baselines(hopeless, weaker_lr, BaselineGate())
    assert not decision.passed and "base-rate" in decision.reason


def test_calibration_is_judged_against_the_base_rate():
    y = np.array([0] * 7 + [1] * 3)  # rarer class rate 0.3
    base = _baselines(y, np.full(10, 0.3))
    curve = Calibration(ece=0.06, brier=0.15, bin_mean_score=[], bin_positive_rate=[], bin_rows=[])
    policy = CalibrationGate(max_relative_ece=0.25, min_brier_skill=0.0)
    assert gates.calibration(curve, None, base, policy).passed  # 0.06 / 0.3 = 0.2 <= 0.25
    off = curve.model_copy(update={"ece": 0.09})
    assert not gates.calibration(off, None, base, policy).passed  # 0.3 > 0.25
    # The base rate's Brier is 0.21: 0.15 is skill 1 - 0.15 / 0.21 = 0.286.
    assert not gates.calibration(
        curve, None, base, policy.model_copy(update={"min_brier_skill": 0.3})
    ).passed


def test_the_f1_maximising_threshold_and_the_logistic_baseline():
    y = np.array([0, 0, 0, 1, 1, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.35, 0.6, 0.65, 0.7, 0.9])
    # At 0.35: 4 positives flagged of 5 flagged, recall 1: F1 = 2 * 0.8 * 1 / 1.8 = 0.889.
    assert f1_maximising_threshold(y, scores) == pytest.approx(0.35)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=400), "c": rng.choice(["a", "b"], 400)})
    target = ((frame["x"] > 0) ^ (frame["c"] == "b")).astype(int).to_numpy()
    contract = DataContract(
        name="toy",
        id_column="id",
        timestamp_column="ts",
        target_column="y",
        positive_label=1,
        label_values=[0, 1],
        numeric_columns={"x": {"min": None, "max": None}},
        categorical_columns={"c": ["a", "b"]},
    )
    scores = logistic_regression_scores(frame, target, frame, contract, seed=0)
    assert scores.shape == (400,) and scores.min() >= 0 and scores.max() <= 1
    # An interaction a linear model cannot represent: no better than chance.
    assert roc_auc_score(target, scores) < 0.6
    linear = frame["x"].gt(0).astype(int).to_numpy()  # a threshold on x: a linear model's
    fitted = logistic_regression_scores(frame, linear, frame, contract, seed=0)
    assert roc_auc_score(linear, fitted) > 0.99


def _scoring(p50_ms: float, rows_per_second: float) -> ScoringCost:
    return ScoringCost(
        p50_ms=p50_ms,
        p99_ms=2 * p50_ms,
        rows_per_second=rows_per_second,
        wall_p50_ms=3 * p50_ms,
        model_mb=1.0,
    )


def _profile(candidate: ScoringCost, champion: ScoringCost | None) -> Operational:
    return Operational(
        **candidate.model_dump(),
        champion=champion,
        peak_rss_mb=200.0,
        baseline_rss_mb=150.0,
        single_row_requests=100,
        batch_rows=1000,
        rounds=5,
    )


def test_operational_budgets_are_absolute_and_relative_to_the_champion():
    policy = OperationalGate(max_p50_ms=5, min_rows_per_second=10_000, max_slowdown=2.0)
    fast = _scoring(p50_ms=0.1, rows_per_second=100_000)
    alone = gates.operational(_profile(fast, None), policy)
    assert alone.passed
    assert {c.name for c in alone.criteria} == {
        "p50_ms",
        "p99_ms",
        "rows_per_second",
        "model_mb",
        "peak_rss_mb",
    }
    # Well inside every absolute budget, but three times the champion's single-row cost.
    slower = gates.operational(_profile(_scoring(0.3, 100_000), fast), policy)
    assert not slower.passed
    failed = {c.name: c for c in slower.criteria if not c.passed}
    assert set(failed) == {"p50 slowdown vs champion"}
    assert failed["p50 slowdown vs champion"].value == pytest.approx(3.0)
    # A batch 2.5 times as costly per row fails the same relative budget.
    heavier = gates.operational(_profile(_scoring(0.1, 40_000), fast), policy)
    assert [c.name for c in heavier.criteria if not c.passed] == ["batch slowdown vs champion"]
    # 1.5 times slower is within the relative budget; over the absolute p50 is not.
    assert gates.operational(_profile(_scoring(0.15, 70_000), fast), policy).passed
    over = gates.operational(_profile(_scoring(6.0, 100_000), None), policy)
    assert [c.name for c in over.criteria if not c.passed] == ["p50_ms"]


def test_significance_rules():
    non_inferior = SignificanceGate(rule="non_inferior", non_inferiority_margin=0.005)
    superior = SignificanceGate(rule="superior", non_inferiority_margin=0.005)
    assert gates.significance(comparison_with_lower_bound(-0.002), non_inferior).passed
    assert not gates.significance(comparison_with_lower_bound(-0.002), superior).passed
    assert gates.significance(comparison_with_lower_bound(0.001), superior).passed
    assert not gates.significance(comparison_with_lower_bound(-0.02), non_inferior).passed
    assert gates.significance(None, superior).passed


def test_reproducibility_decisions():
    same = Reproducibility(
        data_version="d1",
        candidate_data_version="d1",
        candidate_sha256="a" * 64,
        retrained_sha256="a" * 64,
        max_score_difference=0.0,
        seed=42,
    )
    policy = ReproducibilityGate()
    assert gates.reproducibility(same, policy).passed
    drifted = same.model_copy(update={"retrained_sha256": "b" * 64, "max_score_difference": 0.01})
    assert not gates.reproducibility(drifted, policy).passed
    moved = same.model_copy(update={"data_version": "d2"})
    decision = gates.reproducibility(moved, policy)
    assert not decision.passed and "d2" in decision.reason


def _rows(n=50):
    return pd.DataFrame(
        {
            "debt_to_income": np.linspace(0.1, 1.0, n),
            "credit_score": np.linspace(500, 800, n).round(),
            "sex": ["female", "male"] * (n // 2),
            "loan_amount": np.full(n, 10_000.0),
        }
    )


def test_perturbations_stay_in_the_contract():
    rows = _rows()
    up = perturb(rows, Perturbation(column="debt_to_income", add=10), CONTRACT)
    assert up["debt_to_income"].max() == CONTRACT.numeric_columns["debt_to_income"].max
    swapped = perturb(rows, Perturbation(column="sex", swap=("female", "male")), CONTRACT)
    assert (swapped["sex"] != rows["sex"]).all()
    reversed_ = perturb(rows, Perturbation(reverse_columns=True), CONTRACT)
    assert list(reversed_.columns) == list(rows.columns)[::-1]
    with pytest.raises(ValueError, match="exactly one"):
        Perturbation(column="sex", add=1, swap=("a", "b"))


def test_run_suite_catches_a_backwards_feature():
    suite = BehaviourSuite.model_validate(
        {
            "directional": [
                {"name": "more debt", "perturb": {"column": "debt_to_income", "add": 0.3}}
            ],
            "invariance": [
                {"name": "sex", "perturb": {"column": "sex", "swap": ["female", "male"]}}
            ],
        }
    )

    def sensible(rows):
        return rows["debt_to_income"].to_numpy() / 5

    def backwards(rows):
        return 1 - rows["debt_to_income"].to_numpy() / 5

    def uses_sex(rows):
        return (rows["sex"] == "female").to_numpy() * 0.5

    ok = run_suite(suite, sensible, _rows(), CONTRACT, tolerance=0.01, max_failure_rate=0.0)
    assert all(r.passed for r in ok)
    bad = run_suite(suite, backwards, _rows(), CONTRACT, tolerance=0.01, max_failure_rate=0.0)
    directional = next(r for r in bad if r.kind == "directional")
    assert not directional.passed and directional.failures == 50 and directional.failing_sample
    biased = run_suite(suite, uses_sex, _rows(), CONTRACT, tolerance=0.01, max_failure_rate=0.0)
    assert not next(r for r in biased if r.kind == "invariance").passed
    assert directional.failure_rate == directional.failures / directional.rows
    decision = gates.behaviour(bad, BehaviourGate(max_failure_rate=0.0))
    assert not decision.passed and "more debt" in decision.reason


def test_the_repository_cases_load_and_bad_cases_name_file_and_case(tmp_path):
    suite = load_suite(load_settings().dataset.behaviour_cases, CONTRACT)
    assert suite.minimum_functionality and suite.invariance and suite.directional
    bad = tmp_path / "cases.yaml"
    bad.write_text(
        "minimum_functionality:\n  - name: half an applicant\n    applicant: {income: 1}\n"
        "    expect: {max_score: 0.1}\n"
    )
    with pytest.raises(ValueError, match=r"cases.yaml.*half an applicant.*missing"):
        load_suite(bad, CONTRACT)


def test_decide_reports_the_binding_criterion():
    decision = gates.decide(
        "g",
        [
            gates.Criterion("far", 0.9, 0.5, ">="),
            gates.Criterion("near", 0.52, 0.5, ">="),
        ],
    )
    assert decision.passed and decision.value == 0.52 and decision.margin == pytest.approx(0.04)
    failing = gates.decide(
        "g",
        [
            gates.Criterion("auc", 0.4, 0.5, ">="),
            gates.Criterion("f1", 0.1, 0.3, ">="),
            gates.Criterion("brier", 0.3, 0.2, "<="),
        ],
    )
    assert not failing.passed
    assert failing.reason.startswith("auc = 0.4 breaks >= 0.5")
    assert failing.reason.endswith("; also failing: f1, brier")  # named, not counted
    empty = gates.decide("g", [], empty_reason="nothing configured")
    assert empty.passed and math.isinf(empty.margin) and empty.reason == "nothing configured"


def test_fairness_leaves_out_tiny_and_one_class_groups():
    y = np.array([1, 1, 0, 0, 0, 0, 1, 0])
    scores = np.array([0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.9, 0.1])
    groups = pd.Series(["a", "a", "a", "a", "b", "b", "c", "c"])
    # b has no positives (fairlearn would count its true-positive rate as 0).
    result = group_fairness(y, scores, groups, threshold=0.5, min_group_rows=2)
    assert result["excluded_groups"] == ["b"]
    assert result["equalized_odds_difference"] == pytest.approx(0.0)
    alone = group_fairness(y, scores, groups, threshold=0.5, min_group_rows=4)
    assert alone["excluded_groups"] == ["b", "c"] and alone["groups"] == []


def test_gate_verdicts_follow_the_current_policy():
    rows = [
        SliceEvidence(
            column="region",
            value="north",
            rows=600,
            positives=80,
            candidate_roc_auc=0.70,
            champion_roc_auc=0.72,
        )
    ]
    # Evaluated under a 0.03 tolerance (no interval needed); tightened to 0.01 it fails.
    assert gates.slice_regression(rows, SliceGate(max_regression=0.03, min_rows=500)).passed
    tight = gates.slice_regression(rows, SliceGate(max_regression=0.01, min_rows=500))
    assert not tight.passed and "rematerialise" in tight.reason
    assert gates.slice_regression(rows, SliceGate(min_rows=1000)).reason == (
        "no slice reaches min_rows"
    )
    case = BehaviourCase(
        kind="directional",
        name="more debt",
        rows=1000,
        failures=50,
        passed=True,
        detail="",
        failure_rate=0.05,
    )
    assert gates.behaviour([case], BehaviourGate(max_failure_rate=0.1)).passed
    assert not gates.behaviour([case], BehaviourGate(max_failure_rate=0.01)).passed


def test_a_failing_gate_never_reports_a_positive_margin():
    decision = gates.decide(
        "g",
        [gates.Criterion("ok", 0.9, 0.7, ">="), gates.Criterion("broken", math.nan, 0.7, ">=")],
    )
    assert not decision.passed and decision.margin < 0
    held = gates.decide("g", [gates.Criterion("same file", 0.0, 0.0, "<=", binary=True)])
    assert held.passed and math.isinf(held.margin)


def _tiny_evaluation() -> Evaluation:
    """A small evaluation with a NaN and an infinite figure, and no champion."""
    side = ModelEvidence(
        version="3",
        metrics={"roc_auc": 0.8, "log_loss": math.nan},
        calibration=Calibration(
            ece=0.01, brier=0.1, bin_mean_score=[0.1], bin_positive_rate=[0.1], bin_rows=[5]
        ),
        fairness={},
    )
    return Evaluation(
        model="m",
        data_version="d1",
        test_rows=5,
        decision_threshold=0.5,
        candidate=side,
        champion=None,
        slices=[],
        comparison=None,
        operational=Operational(
            p50_ms=1.0,
            p99_ms=math.inf,
            rows_per_second=1e5,
            wall_p50_ms=1.2,
            model_mb=0.1,
            peak_rss_mb=100.0,
            baseline_rss_mb=90.0,
            single_row_requests=10,
            batch_rows=100,
        ),
        behaviour=None,
        reproducibility=Reproducibility(
            data_version="d1",
            candidate_data_version="d1",
            candidate_sha256="a",
            retrained_sha256="a",
            max_score_difference=0.0,
            seed=1,
        ),
    )


def test_evaluation_file_round_trips_and_a_broken_one_names_the_field(tmp_path):
    evaluation = _tiny_evaluation()
    path = tmp_path / "evaluation.json"
    evaluation.save(path)
    back = Evaluation.load(path)
    assert math.isnan(back.candidate.metrics["log_loss"]) and math.isinf(back.operational.p99_ms)
    assert back.model_dump_json() == evaluation.model_dump_json()
    path.write_text(path.read_text().replace('"test_rows": 5', '"test_rows": "many"'))
    with pytest.raises(ValueError, match=r"evaluation.json.*test_rows"):
        Evaluation.load(path)


def test_the_report_reads_at_a_glance():
    from ml_assets.evaluation.report import cell, render_html, render_markdown
    from ml_assets.training.registry import mlflow_run_url

    assert [cell(v) for v in (None, math.nan, True, 12345, 0.123456, "x")] == [
        "–",
        "–",
        "pass",
        "12,345",
        "0.1235",
        "x",
    ]
    from ml_assets.metadata import significant

    assert [significant(v) for v in (0.8431472732961399, 263.12345, 0.0, 12345.6)] == [
        0.8431,
        263.1,
        0.0,
        12350.0,
    ]
    assert mlflow_run_url("sqlite:///m.db", "1", "abc") is None
    url = mlflow_run_url("http://127.0.0.1:5000/", "1", "abc")
    assert url == "http://127.0.0.1:5000/#/experiments/1/runs/abc"
    evaluation = _tiny_evaluation()
    decisions = {
        "kept": gates.decide("kept", [gates.Criterion("roc_auc", 0.8, 0.7, ">=")]),
        "broken": gates.decide("broken", [gates.Criterion("roc_auc", 0.6, 0.7, ">=")]),
    }
    severities = {"kept": "ERROR", "broken": "ERROR"}
    page = render_html(
        evaluation, decisions, severities, {}, generated_at="2026-12-02 20:00 UTC", run_url=url
    )
    assert "generated 2026-12-02 20:00 UTC" in page and f"href='{url}'" in page
    assert "<td class='pass'>pass</td>" in page and "<td class='block'>block</td>" in page
    assert "<td class='missing'>–</td>" in page  # no champion: a dash, not "None"
    assert "<td class='num'>" in page
    markdown = render_markdown(
        evaluation, decisions, severities, generated_at="2026-12-02 20:00 UTC"
    )
    assert "None" not in markdown and "nan" not in markdown
