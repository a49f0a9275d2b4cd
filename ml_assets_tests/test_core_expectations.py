"""Pure core: statistical expectations, leakage, integrity and the serving path."""

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from ml_assets.data.batches import join_labels
from ml_assets.data.expectations import (
    NumericProfile,
    Profile,
    StatisticalPolicy,
    build_profile,
    category_shift_test,
    check_against_profile,
    mean_shift_test,
    positive_rate_expectation,
    rate_excess_test,
)
from ml_assets.data.leakage import auc_lower_bound, single_feature_aucs
from ml_assets.data.validation import (
    check_label_join,
    check_label_leakage,
    check_positive_rate,
    check_statistics,
    check_timestamps,
    validate_batch,
)
from ml_assets.demo import simulate
from ml_assets.features.examples import assign_split, build_features
from ml_assets.features.integrity import split_integrity
from ml_assets.settings import load_settings
from ml_assets.training.serving import feature_differences, features_for_records, to_records

CONTRACT = load_settings().dataset
POLICY = StatisticalPolicy()
START = dt.date(2026, 1, 1)


def _day(i, scenario="stable", rows=2000):
    return simulate.generate_day(START + dt.timedelta(days=i), rows, seed=7, scenario=scenario)


@pytest.fixture(scope="module")
def profile():
    frames = [join_labels(*_day(i), CONTRACT, "d") for i in range(30)]
    return build_profile(pd.concat(frames, ignore_index=True), CONTRACT)


def test_stable_data_raises_no_alarm_over_its_whole_span(profile):
    """Days 31..120 of the stable demo pass every per-batch gate against days 1..30."""
    failures = []
    for i in range(30, 120):
        features, labels = _day(i)
        day = (START + dt.timedelta(days=i)).isoformat()
        reports = [
            validate_batch(features, CONTRACT, day=day, max_failing_row_share=0.0, sample_rows=3),
            check_timestamps(features, CONTRACT, day=day, sample_rows=3),
            check_statistics(features, profile, CONTRACT, POLICY, day=day, sample_rows=3),
            check_label_join(
                features, labels, CONTRACT, day=day, min_join_rate=0.99, sample_rows=3
            ),
            check_positive_rate(labels, profile, CONTRACT, POLICY, day=day),
            check_label_leakage(
                join_labels(features, labels, CONTRACT, day), CONTRACT, max_auc=0.98, day=day
            ),
        ]
        failures += [(day, r.check, r.reason) for r in reports if not r.passed]
    assert failures == []


def test_profile_round_trips_through_json(profile, tmp_path):
    profile.save(tmp_path / "p.json")
    assert Profile.load(tmp_path / "p.json") == profile
    assert 0.08 < profile.positive_rate < 0.2
    assert profile.numeric["employment_years"].null_rate > 0


def test_each_shift_fires_its_expectation(profile):
    drift = check_against_profile(_day(100, "covariate_drift")[0], profile, CONTRACT, POLICY)
    failed = {(e.column, e.expectation) for e in drift if not e.passed}
    assert ("credit_score", "mean") in failed and ("channel", "category_proportions") in failed
    unseen = _day(100)[0]
    unseen.loc[:99, "purpose"] = "other"  # allowed by the contract, but ...
    ref = build_profile(_day(1)[0].assign(purpose="car"), CONTRACT)
    results = check_against_profile(unseen, ref, CONTRACT, POLICY)
    assert not next(
        e for e in results if e.expectation == "unseen_categories" and e.column == "purpose"
    ).passed
    nulls = _day(100)[0]
    nulls.loc[:599, "employment_years"] = np.nan
    null_rate = next(
        e
        for e in check_against_profile(nulls, profile, CONTRACT, POLICY)
        if e.column == "employment_years" and e.expectation == "null_rate"
    )
    assert not null_rate.passed and null_rate.value >= 0.3 and null_rate.failing_rows >= 600


def test_label_noise_moves_the_positive_rate(profile):
    noisy = positive_rate_expectation(
        _day(100, "label_noise")[1]["defaulted"], 1, profile.positive_rate, POLICY
    )
    assert not noisy.passed and noisy.value > profile.positive_rate + 0.1


def test_no_reference_profile_passes_and_says_so():
    report = check_statistics(_day(1)[0], None, CONTRACT, POLICY, day="d", sample_rows=3)
    assert report.passed and "no reference profile" in report.reason


# Property-based tests of the arithmetic.

REF = NumericProfile(
    rows=10_000, mean=0.0, std=1.0, q_low=-3.0, q_high=3.0, tail_share=0.002, null_rate=0.0
)


@settings(max_examples=40, deadline=None)
@given(shift=st.floats(0.05, 2.0), n=st.integers(10, 50_000))
def test_mean_shift_p_value_matches_the_z_test(shift, n):
    values = np.full(n, shift)
    effect, p = mean_shift_test(values, REF)
    assert effect == pytest.approx(shift)
    assert p == pytest.approx(2 * stats.norm.sf(shift * math.sqrt(n)), rel=1e-6, abs=1e-300)


@settings(max_examples=40, deadline=None)
@given(shift=st.floats(0.26, 1.0), small=st.integers(10, 200))
def test_the_same_shift_needs_more_rows_to_fire(shift, small):
    """Significance grows with the batch: a shift that fires on 50,000 rows need not on 200."""
    _, p_small = mean_shift_test(np.full(small, shift), REF)
    _, p_large = mean_shift_test(np.full(50_000, shift), REF)
    assert p_large <= p_small
    assert p_large < POLICY.alpha  # and the effect is above the floor: the large batch fires
    if shift * math.sqrt(small) < 4.5:
        assert p_small > POLICY.alpha  # the small batch does not


@settings(max_examples=40, deadline=None)
@given(count=st.integers(0, 500), n=st.integers(500, 5000), expected=st.floats(0.001, 0.5))
def test_rate_excess_is_a_one_sided_binomial_test(count, n, expected):
    excess, p = rate_excess_test(count, n, expected)
    assert excess == pytest.approx(count / n - expected)
    assert p == pytest.approx(stats.binomtest(count, n, expected, alternative="greater").pvalue)
    assert 0.0 <= p <= 1.0


@settings(max_examples=40, deadline=None)
@given(weights=st.lists(st.floats(0.01, 1.0), min_size=2, max_size=6), n=st.integers(100, 5000))
def test_category_distance_is_zero_on_the_reference_mix_and_bounded(weights, n):
    from ml_assets.data.expectations import CategoricalProfile

    p = np.array(weights) / sum(weights)
    names = [f"c{i}" for i in range(len(p))]
    counts = np.floor(p * n).astype(int)
    values = pd.Series(np.repeat(names, counts))
    ref = CategoricalProfile(
        rows=n,
        proportions=dict(zip(names, (counts / counts.sum()).tolist(), strict=True)),
        null_rate=0,
    )
    distance, p_value = category_shift_test(values, ref)
    assert distance == pytest.approx(0.0, abs=1e-3)
    assert p_value > 0.9
    other = pd.Series(["unseen"] * n)
    far, _ = category_shift_test(other, ref)
    assert 0.99 <= far <= 1.0


@settings(max_examples=30, deadline=None)
@given(auc=st.floats(0.5, 1.0), n_pos=st.integers(5, 2000), n_neg=st.integers(5, 2000))
def test_auc_lower_bound_is_below_the_auc_and_tightens_with_data(auc, n_pos, n_neg):
    low = auc_lower_bound(auc, n_pos, n_neg)
    assert low <= auc
    assert auc_lower_bound(auc, n_pos * 10, n_neg * 10) >= low - 1e-12


def test_auc_lower_bound_known_answer():
    # Hanley and McNeil (1982), eq. 2 by hand for A = 0.9 with 50 positives and 50 negatives:
    # Q1 = 0.9 / 1.1, Q2 = 2 * 0.81 / 1.9, var = (0.09 + 49 (Q1 - 0.81) + 49 (Q2 - 0.81)) / 2500.
    se = 0.9 - auc_lower_bound(0.9, 50, 50, z=1.0)
    assert se == pytest.approx(0.032124, abs=1e-5)


def test_leakage_needs_evidence_proportional_to_the_batch():
    features, labels = _day(5, "leakage")
    joined = join_labels(features, labels, CONTRACT, "d")
    report = check_label_leakage(joined, CONTRACT, max_auc=0.98, day="d")
    assert not report.passed and "delinquencies_2y" in report.reason
    small = check_label_leakage(joined.head(20), CONTRACT, max_auc=0.98, day="d")
    assert small.passed  # 20 rows cannot prove a leak beyond 0.98
    aucs = single_feature_aucs(join_labels(*_day(5), CONTRACT, "d"), CONTRACT)
    assert 0.6 < aucs["credit_score"] < 0.95 and aucs["sex"] < 0.56


def test_split_integrity_finds_shared_ids_and_duplicate_rows():
    features, labels = _day(3, rows=500)
    examples = join_labels(features, labels, CONTRACT, "d")
    examples["split"] = assign_split(examples["application_id"], seed=1, validation=0.2, test=0.2)
    clean = split_integrity(examples, CONTRACT)
    assert clean.ids_in_several_splits == [] and clean.duplicate_rows_across_splits == 0
    twin = examples.iloc[[0]].assign(
        split="test" if examples["split"].iloc[0] != "test" else "train"
    )
    broken = split_integrity(pd.concat([examples, twin]), CONTRACT)
    assert broken.ids_in_several_splits == [examples["application_id"].iloc[0]]
    assert broken.duplicate_rows_across_splits == 2


def test_timestamps_after_the_batch_day_fail():
    features = _day(0)[0]
    assert check_timestamps(features, CONTRACT, day="2026-01-01", sample_rows=3).passed
    late = features.copy()
    late.loc[:2, "application_ts"] = pd.Timestamp("2026-01-02 00:00:01")
    report = check_timestamps(late, CONTRACT, day="2026-01-01", sample_rows=3)
    assert not report.passed and report.failing_rows == 3


def test_serving_path_reproduces_training_features_exactly():
    features = _day(2, rows=300)[0]
    batch = build_features(features, CONTRACT)
    served = features_for_records(to_records(features), CONTRACT)
    assert feature_differences(batch, served).empty
    # A client that rounds numbers to 4 significant digits is caught, cell by cell.
    lossy = [
        {k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in r.items()}
        for r in to_records(features)
    ]
    diff = feature_differences(batch, features_for_records(lossy, CONTRACT))
    assert not diff.empty and set(diff["column"]) <= set(CONTRACT.numeric_columns)
    with pytest.raises(KeyError, match="debt_to_income"):
        features_for_records([{"income": 1.0}], CONTRACT)
