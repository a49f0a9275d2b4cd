"""Pure core: statistical expectations, leakage, integrity and the serving path."""

import datetime as dt
import math

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.metrics import roc_auc_score

from ml_assets.data.batches import join_labels
from ml_assets.data.expectations import (
    CategoricalProfile,
    NumericProfile,
    Profile,
    StatisticalPolicy,
    auc_lower_bounds,
    build_profile,
    category_shift,
    fires,
    mean_shift,
    rate_excess,
    rate_shift,
    std_ratio,
)
from ml_assets.data.rules import judge_frames, single_feature_aucs
from ml_assets.data.validation import as_pandas
from ml_assets.demo import simulate
from ml_assets.features.examples import assign_split, build_features
from ml_assets.features.integrity import split_integrity
from ml_assets.settings import load_settings
from ml_assets.training.serving import (
    ContractViolation,
    RecordEncoder,
    feature_differences,
    model_matrix,
    to_records,
)
from ml_assets_tests.conftest import rule_settings

CONTRACT = load_settings().dataset
POLICY = StatisticalPolicy()
START = dt.date(2026, 1, 1)


def _day(i, scenario="stable", rows=2000):
    return simulate.generate_day(START + dt.timedelta(days=i), rows, seed=7, scenario=scenario)


def _rules(profile, **overrides):
    return rule_settings(CONTRACT, policy=POLICY, profile=profile, **overrides)


def _judge(features, labels, profile, day="2026-01-01", **overrides):
    """Every rule's report on one batch, by gate name."""
    judged = judge_frames({day: features}, {day: labels}, _rules(profile, **overrides))
    return {gate: reports[day] for gate, reports in judged.items()}


def _failed(report):
    return {
        (c, e)
        for c, e in zip(
            report.failure_cases["column"], report.failure_cases["expectation"], strict=True
        )
    }


@pytest.fixture(scope="module")
def profile():
    frames = [join_labels(*_day(i), CONTRACT, "d") for i in range(30)]
    return build_profile(pd.concat(frames, ignore_index=True), CONTRACT)


def test_stable_data_raises_no_alarm_over_its_whole_span(profile):
    """Days 31..120 of the stable demo pass every per-batch gate against days 1..30."""
    features, labels = {}, {}
    for i in range(30, 120):
        day = (START + dt.timedelta(days=i)).isoformat()
        features[day], labels[day] = _day(i)
    judged = judge_frames(features, labels, _rules(profile))
    failures = [
        (day, gate, r.reason)
        for gate, reports in judged.items()
        for day, r in reports.items()
        if not r.passed
    ]
    assert failures == []
    assert all(len(reports) == 90 for reports in judged.values())


def test_profile_round_trips_through_json(profile, tmp_path):
    profile.save(tmp_path / "p.json")
    assert Profile.load(tmp_path / "p.json") == profile
    assert 0.08 < profile.positive_rate < 0.2
    assert profile.numeric["employment_years"].null_rate > 0


STATISTICS = "raw_batches_match_reference_profile"


def test_each_shift_fires_its_expectation(profile):
    drift = _judge(*_day(100, "covariate_drift"), profile)[STATISTICS]
    assert not drift.passed
    failed = _failed(drift)
    assert ("credit_score", "mean") in failed and ("channel", "category_proportions") in failed
    assert drift.value == len(failed)
    unseen = _day(100)[0]
    unseen.loc[:99, "purpose"] = "other"  # allowed by the contract, but ...
    ref = build_profile(_day(1)[0].assign(purpose="car"), CONTRACT)
    report = _judge(unseen, _day(100)[1], ref)[STATISTICS]
    assert ("purpose", "unseen_categories") in _failed(report)
    cases = report.failure_cases.set_index(["column", "expectation"])
    assert "other" in cases.loc[("purpose", "unseen_categories"), "detail"].split(", ")
    nulls = _day(100)[0]
    nulls.loc[:599, "employment_years"] = np.nan
    report = _judge(nulls, _day(100)[1], profile)[STATISTICS]
    row = report.failure_cases.set_index(["column", "expectation"]).loc[
        ("employment_years", "null_rate")
    ]
    assert row["value"] >= 0.3 and row["failing_rows"] >= 600
    assert report.failing_rows >= 600 and len(report.failing_rows_sample) == 3
    assert report.failing_rows_sample["employment_years"].isna().all()


def test_label_noise_moves_the_positive_rate(profile):
    report = _judge(*_day(100, "label_noise"), profile)[
        "raw_labels_positive_rate_matches_reference"
    ]
    assert not report.passed
    (value,) = report.failure_cases["value"]
    assert value > profile.positive_rate + 0.1
    (p_value,) = report.failure_cases["p_value"]
    counts = _day(100, "label_noise")[1]["defaulted"]
    expected = stats.binomtest(int(counts.sum()), len(counts), profile.positive_rate).pvalue
    assert p_value == pytest.approx(expected)


def test_no_reference_profile_passes_and_says_so():
    report = _judge(*_day(1), None)[STATISTICS]
    assert report.passed and "no reference profile" in report.reason


# Property-based tests of the arithmetic.

REF = NumericProfile(
    rows=10_000, mean=0.0, std=1.0, q_low=-3.0, q_high=3.0, tail_share=0.002, null_rate=0.0
)


@settings(max_examples=40, deadline=None)
@given(shift=st.floats(0.05, 2.0), n=st.integers(10, 50_000))
def test_mean_shift_p_value_matches_the_z_test(shift, n):
    effect, p = mean_shift(np.array([shift]), np.array([n]), REF, 0.0)
    assert effect[0] == pytest.approx(shift)
    assert p[0] == pytest.approx(2 * stats.norm.sf(shift * math.sqrt(n)), rel=1e-6, abs=1e-300)


@settings(max_examples=40, deadline=None)
@given(shift=st.floats(0.26, 1.0), small=st.integers(10, 200))
def test_the_same_shift_needs_more_rows_to_fire(shift, small):
    """Significance grows with the batch: a shift that fires on 50,000 rows need not on 200."""
    _, (p_small, p_large) = mean_shift(np.full(2, shift), np.array([small, 50_000]), REF, 0.0)
    assert p_large <= p_small
    assert p_large < POLICY.alpha  # and the effect is above the floor: the large batch fires
    if shift * math.sqrt(small) < 4.5:
        assert p_small > POLICY.alpha  # the small batch does not


@settings(max_examples=40, deadline=None)
@given(std=st.floats(0.2, 5.0), n=st.integers(3, 20_000))
def test_std_ratio_is_a_two_sided_chi_square_test(std, n):
    ratio, p = std_ratio(np.array([std, 0.0]), np.array([n, n]), REF, 0.0)
    assert ratio[0] == pytest.approx(max(std, 1 / std))
    cdf = stats.chi2.cdf((n - 1) * std**2, n - 1)
    assert p[0] == pytest.approx(2 * min(cdf, 1 - cdf), abs=1e-300)
    assert ratio[1] == math.inf and p[1] == 0.0  # a constant batch


@settings(max_examples=40, deadline=None)
@given(count=st.integers(0, 500), n=st.integers(500, 5000), expected=st.floats(0.001, 0.5))
def test_rate_excess_is_a_one_sided_binomial_test(count, n, expected):
    excess, p = rate_excess(np.array([count]), np.array([n]), expected, -1.0)
    assert excess[0] == pytest.approx(count / n - expected)
    binomial = stats.binomtest(count, n, expected, alternative="greater").pvalue
    assert p[0] == pytest.approx(binomial)
    assert 0.0 <= p[0] <= 1.0


@settings(max_examples=40, deadline=None)
@given(count=st.integers(0, 900), n=st.integers(1000, 3000), expected=st.floats(0.01, 0.5))
def test_rate_shift_is_a_two_sided_binomial_test_where_the_shift_matters(count, n, expected):
    shift, p = rate_shift(np.array([count]), np.array([n]), expected, 0.05)
    assert shift[0] == pytest.approx(abs(count / n - expected))
    if shift[0] > 0.05:
        assert p[0] == stats.binomtest(count, n, expected).pvalue
    else:  # below the floor the expectation holds whatever the p-value: not computed
        assert math.isnan(p[0])


@settings(max_examples=40, deadline=None)
@given(weights=st.lists(st.floats(0.01, 1.0), min_size=2, max_size=6), n=st.integers(100, 5000))
def test_category_distance_is_zero_on_the_reference_mix_and_bounded(weights, n):
    p = np.array(weights) / sum(weights)
    names = [f"c{i}" for i in range(len(p))]
    counts = np.floor(p * n).astype(int)
    ref = CategoricalProfile(
        rows=n,
        proportions=dict(zip(names, (counts / counts.sum()).tolist(), strict=True)),
        null_rate=0,
    )
    same = dict(zip(names, counts.tolist(), strict=True))
    distance, p_value = category_shift([same, {"unseen": n}], ref, 0.1)
    assert distance[0] == pytest.approx(0.0, abs=1e-3)
    assert math.isnan(p_value[0])  # within the floor: no test needed
    assert 0.99 <= distance[1] <= 1.0
    observed = np.array([0] * len(names) + [n], dtype=float)
    expected = np.array([*ref.proportions.values(), 0.0]) + 1e-4
    expected = expected / expected.sum() * n
    assert (
        p_value[1]
        == stats.chisquare(
            observed[np.argsort([*names, "unseen"])], expected[np.argsort([*names, "unseen"])]
        ).pvalue
    )


@settings(max_examples=30, deadline=None)
@given(auc=st.floats(0.5, 1.0), n_pos=st.integers(5, 2000), n_neg=st.integers(5, 2000))
def test_auc_lower_bound_is_below_the_auc_and_tightens_with_data(auc, n_pos, n_neg):
    low = auc_lower_bounds(auc, n_pos, n_neg)
    assert low <= auc
    assert auc_lower_bounds(auc, n_pos * 10, n_neg * 10) >= low - 1e-12


def test_an_expectation_fires_only_when_significant_and_large():
    p = np.array([1e-7, 1e-7, 0.5, np.nan])
    effect = np.array([0.3, 0.1, 0.9, 0.9])
    assert fires(p, effect, 1e-6, 0.25).tolist() == [True, False, False, False]


def test_auc_lower_bound_known_answer():
    # Hanley and McNeil (1982), eq. 2 by hand for A = 0.9 with 50 positives and 50 negatives:
    # Q1 = 0.9 / 1.1, Q2 = 2 * 0.81 / 1.9, var = (0.09 + 49 (Q1 - 0.81) + 49 (Q2 - 0.81)) / 2500.
    se = 0.9 - auc_lower_bounds(0.9, 50, 50, z=1.0)
    assert se == pytest.approx(0.032124, abs=1e-5)


def test_single_feature_aucs_per_group_equal_sklearn():
    """Exact AUCs with ties, numeric (missing at the group's median) and categorical (scored by
    the category's positive rate in its group), folded to [0.5, 1]."""
    rng = np.random.default_rng(3)
    n = 3000
    group = np.repeat([0, 1, 2], n // 3)
    y = rng.random(n) < 0.3
    income = np.round(rng.normal(size=n) + y, 1)  # rounded: many ties
    income[rng.random(n) < 0.1] = np.nan
    purpose = rng.choice(["car", "home", "debt"], size=n)
    frame = pl.DataFrame(
        {"g": group, "y": y, "income": income, "purpose": purpose}, nan_to_null=True
    )
    contract = CONTRACT.model_copy(
        update={
            "numeric_columns": {"income": CONTRACT.numeric_columns["income"]},
            "categorical_columns": {"purpose": ["car", "home", "debt"]},
        }
    )
    aucs, names = single_feature_aucs(frame, contract, "g", "y")
    assert names == ["income", "purpose"]
    for g in range(3):
        part = frame.filter(pl.col("g") == g).to_pandas()
        score = part["income"].fillna(part["income"].median())
        rate = part.groupby("purpose")["y"].transform("mean")
        for name, s in (("income", score), ("purpose", rate)):
            auc = roc_auc_score(part["y"], s)
            assert aucs[name][g] == pytest.approx(max(auc, 1 - auc), abs=1e-12)
    assert aucs["P"].to_list() == [int(y[group == g].sum()) for g in range(3)]


@given(
    st.lists(
        st.sampled_from([0.0, -0.0, 1.0, 1.5, -2.0, math.inf, -math.inf, math.nan]), max_size=40
    ),
    st.integers(0, 2**32 - 1),
)
@settings(max_examples=200, deadline=None)
def test_mann_whitney_u_is_the_positives_rank_sum_by_polars_average_ranks(values, seed):
    """The numeric AUCs' U statistic is the positives' rank sum, less its least value, with
    polars' average ranks: ties (-0.0 with 0.0, NaN with NaN, NaN above infinity) share their
    rank, and the sums are exact."""
    from ml_assets.data.rules import _mann_whitney_u

    values = np.array(values, dtype=float)
    positive = np.random.default_rng(seed).random(len(values)) < 0.5
    ranks = pl.Series(values, nan_to_null=False).rank("average").to_numpy()
    n_pos = int(positive.sum())
    assert _mann_whitney_u(values, positive) == ranks[positive].sum() - n_pos * (n_pos + 1) / 2


def test_single_feature_aucs_of_a_group_without_values():
    """A group in which a numeric feature has no value at all: the feature ranks nothing, AUC
    0.5. (It used to leave the positives unranked, a folded AUC of 1.75, and a batch whose
    nullable feature was entirely missing failed the leakage gate as a leak.)
    """
    frame = pl.DataFrame(
        {
            "g": [0, 0, 0, 0, 1, 1, 1, 1],
            "y": [True, False, True, False, True, False, False, False],
            "income": [None, None, None, None, 1.0, 2.0, 3.0, None],
        },
        schema_overrides={"income": pl.Float64},
    )
    contract = CONTRACT.model_copy(
        update={
            "numeric_columns": {"income": CONTRACT.numeric_columns["income"]},
            "categorical_columns": {},
        }
    )
    aucs, _ = single_feature_aucs(frame, contract, "g", "y")
    # Group 0: no income, 0.5. Group 1: income 1.0 (the positive) against 2.0, 3.0 and the
    # median 2.0: no pair ranked right, folded to 1.
    assert aucs["income"].to_list() == [0.5, 1.0]


def test_leakage_needs_evidence_proportional_to_the_batch():
    LEAKAGE = "raw_labels_not_leaked_into_features"
    features, labels = _day(5, "leakage")
    report = _judge(features, labels, None)[LEAKAGE]
    assert not report.passed and "delinquencies_2y" in report.reason
    small = _judge(features.head(20), labels.head(20), None)[LEAKAGE]
    assert small.passed  # 20 rows cannot prove a leak beyond 0.98
    joined = pl.from_pandas(join_labels(*_day(5), CONTRACT, "d")).with_columns(
        g=pl.lit(0), y=pl.col("defaulted") == 1
    )
    aucs, _ = single_feature_aucs(joined, CONTRACT, "g", "y")
    assert 0.6 < aucs["credit_score"][0] < 0.95 and aucs["sex"][0] < 0.56


def test_leakage_scores_a_class_balanced_sample_of_a_large_batch():
    LEAKAGE = "raw_labels_not_leaked_into_features"
    features, labels = _day(5, "leakage", rows=6000)
    sampled = _judge(features, labels, None, leakage_sample_rows=1000)[LEAKAGE]
    assert not sampled.passed and "delinquencies_2y" in sampled.reason
    assert "seeded sample" in sampled.reason and sampled.rows < 1200  # ~500 of each class
    clean_features, clean_labels = _day(6, rows=6000)
    whole = _judge(clean_features, clean_labels, None, leakage_sample_rows=20000)[LEAKAGE]
    thinned = _judge(clean_features, clean_labels, None, leakage_sample_rows=1000)[LEAKAGE]
    assert whole.passed and thinned.passed and whole.rows == 6000 and "sample" not in whole.reason
    # A rare class keeps every row: the sample thins the common class only.
    rare = clean_labels.assign(defaulted=(np.arange(6000) % 100 == 0).astype(int))
    kept = _judge(clean_features, rare, None, leakage_sample_rows=1000)[LEAKAGE]
    assert "60 positive" in kept.reason and kept.rows < 700
    # The same rows whichever batches share the run: judged alone or beside another batch.
    both = judge_frames(
        {"2026-01-01": features, "2026-01-02": clean_features},
        {"2026-01-01": labels, "2026-01-02": clean_labels},
        _rules(None, leakage_sample_rows=1000),
    )[LEAKAGE]
    assert both["2026-01-01"].value == sampled.value and both["2026-01-01"].rows == sampled.rows


def test_split_integrity_finds_shared_ids_and_duplicate_rows():
    features, labels = _day(3, rows=500)
    examples = join_labels(features, labels, CONTRACT, "d")
    examples["split"] = assign_split(examples["application_id"], seed=1, validation=0.2, test=0.2)
    clean = split_integrity(pl.from_pandas(examples), CONTRACT)
    assert clean.ids_in_several_splits == [] and clean.duplicate_rows_across_splits == 0
    twin = examples.iloc[[0]].assign(
        split="test" if examples["split"].iloc[0] != "test" else "train"
    )
    broken = split_integrity(pl.from_pandas(pd.concat([examples, twin])), CONTRACT)
    assert broken.ids_in_several_splits == [examples["application_id"].iloc[0]]
    assert broken.duplicate_rows_across_splits == 2


def test_timestamps_after_the_batch_day_fail():
    TIMESTAMPS = "raw_batches_timestamps_not_in_future"
    features, labels = _day(0)
    assert _judge(features, labels, None)[TIMESTAMPS].passed
    late = features.copy()
    late.loc[:2, "application_ts"] = pd.Timestamp("2026-01-02 00:00:01")
    report = _judge(late, labels, None)[TIMESTAMPS]
    assert not report.passed and report.failing_rows == 3
    assert list(report.failure_cases.index) == [0, 1, 2]  # rows named as in the batch file


def test_serving_path_reproduces_training_features_exactly():
    features = _day(2, rows=300)[0]
    encoder = RecordEncoder(CONTRACT)
    batch = model_matrix(build_features(features, CONTRACT))
    served = encoder.matrix(to_records(features))
    assert feature_differences(batch, served, encoder.columns).empty
    # A client that rounds numbers to 4 significant digits is caught, cell by cell.
    lossy = [
        {k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in r.items()}
        for r in to_records(features)
    ]
    diff = feature_differences(batch, encoder.matrix(lossy), encoder.columns)
    assert not diff.empty and set(diff["column"]) <= set(CONTRACT.numeric_columns)
    with pytest.raises(KeyError, match="debt_to_income"):
        encoder.row({"income": 1.0})
    record = to_records(features.head(1))[0]
    with pytest.raises(ValueError, match="'income': 'n/a' is not a number"):
        encoder.row({**record, "income": "n/a"})
    # Unchecked (the parity reference), a category outside the contract and a null are
    # missing, as pd.Categorical has them.
    odd = {**record, "region": "atlantis", "income": None}
    row = RecordEncoder(CONTRACT, check=False).row(odd)
    assert math.isnan(row[encoder.columns.index("region")])
    assert math.isnan(row[encoder.columns.index("income")])
    framed = model_matrix(build_features(pd.DataFrame([odd]), CONTRACT))
    unchecked = RecordEncoder(CONTRACT, check=False)
    assert feature_differences(framed, unchecked.matrix([odd]), encoder.columns).empty


def test_served_records_are_refused_exactly_where_the_schema_gate_fails_rows():
    features, labels = _day(1, rows=9)
    broken = features.copy()
    broken.loc[1, "credit_score"] = 900.0  # above the maximum
    broken.loc[2, "region"] = "mars"  # outside the categories
    broken.loc[3, "income"] = np.nan  # null where the contract allows none
    broken.loc[4, "employment_years"] = np.nan  # null where it allows them: fine
    broken.loc[5, "purpose"] = None  # a null category
    broken.loc[6, "utilization"] = -0.5  # below the minimum
    broken.loc[7, "loan_amount"] = 500.0  # on the minimum: fine
    schema = _judge(broken, labels, None)["raw_batches_match_schema"]
    failed_by_gate = set(as_pandas(schema.failure_cases)["index"].astype(int))
    encoder = RecordEncoder(CONTRACT)
    refused = {}
    for i, record in enumerate(to_records(broken)):
        try:
            encoder.row(record)
        except ContractViolation as error:
            refused[i] = str(error)
    assert set(refused) == failed_by_gate == {1, 2, 3, 5, 6}
    assert refused[1] == "request field 'credit_score': 900 is above the maximum 850"
    assert refused[2] == "request field 'region': 'mars' is outside the contract's categories"
    assert "'income': missing value" in refused[3] and "'purpose': missing value" in refused[5]
    assert refused[6] == "request field 'utilization': -0.5 is below the minimum 0"
