"""Pure core: the polars engine a gate's queries run on (data/engine) changes its speed only."""

import datetime as dt
import math
import os

import pandas as pd
import polars as pl
import pytest

from ml_assets.data.batches import join_labels, locate_batches, read_batch
from ml_assets.data.engine import AFFINITY, IN_MEMORY_BELOW_ROWS, engine_for
from ml_assets.data.expectations import build_profile
from ml_assets.data.reading import read_run
from ml_assets.data.rules import RULES
from ml_assets.data.validation import as_pandas
from ml_assets.demo import simulate
from ml_assets.settings import load_settings
from ml_assets_tests.conftest import rule_settings

CONTRACT = load_settings().dataset
START = dt.date(2026, 3, 1)


def _affinity() -> str | None:
    return os.environ.get(AFFINITY)


def test_a_small_run_is_judged_in_memory_and_the_default_comes_back(monkeypatch):
    monkeypatch.delenv(AFFINITY, raising=False)
    with engine_for(IN_MEMORY_BELOW_ROWS - 1):
        assert _affinity() == "in-memory"
    assert _affinity() is None
    with engine_for(IN_MEMORY_BELOW_ROWS):  # large data: polars' default (streaming)
        assert _affinity() is None
    with pytest.raises(RuntimeError, match="a rule raised"), engine_for(10):
        raise RuntimeError("a rule raised")
    assert _affinity() is None  # restored on the way out of a failing rule too


def test_the_users_engine_choice_wins(monkeypatch):
    monkeypatch.setenv(AFFINITY, "streaming")
    with engine_for(10):
        assert _affinity() == "streaming"
    assert _affinity() == "streaming"


def _run(tmp_path):
    """One day of each scenario the gates catch, after a stable day, with its profile."""
    features, labels = tmp_path / "features", tmp_path / "labels"
    scenarios = [
        "stable",
        "schema_corruption",
        "value_corruption",
        "leakage",
        "covariate_drift",
        "label_noise",
    ]
    for k, scenario in enumerate(scenarios):
        day = START + dt.timedelta(days=k)
        simulate.write_demo(
            features, labels, start=day, days=1, rows_per_day=600, seed=3, scenario=scenario
        )
    batches = locate_batches(features, labels)
    first = batches[START.isoformat()]
    reference = join_labels(read_batch(first.features), read_batch(first.labels), CONTRACT, "d")
    settings = rule_settings(
        CONTRACT,
        profile=build_profile(reference, CONTRACT),
        max_single_feature_auc=0.9,
        max_failing_row_share=0.0,
    )
    return batches, settings


def _judged(batches, settings) -> dict:
    run = read_run(batches, CONTRACT, labels_in_batch=False)
    return {name: rule(run, settings) for name, rule in RULES.items()}


def test_both_engines_give_the_same_verdicts_and_evidence(tmp_path, monkeypatch):
    batches, settings = _run(tmp_path)
    monkeypatch.delenv(AFFINITY, raising=False)
    in_memory = _judged(batches, settings)  # 3,600 rows: the in-memory engine
    monkeypatch.setenv(AFFINITY, "streaming")
    pl.Config.set_engine_affinity("streaming")
    try:
        streaming = _judged(batches, settings)
    finally:
        pl.Config.set_engine_affinity(None)
    failed = {n for n, reports in in_memory.items() for r in reports.values() if not r.passed}
    # The run does exercise the gates: each scenario fails the gate that catches it.
    assert {
        "raw_batches_match_schema",
        "raw_labels_not_leaked_into_features",
        "raw_batches_match_reference_profile",
        "raw_labels_positive_rate_matches_reference",
    } <= failed
    for name, reports in in_memory.items():
        for day, report in reports.items():
            other = streaming[name][day]
            assert (report.passed, report.failing_rows, report.reason) == (
                other.passed,
                other.failing_rows,
                other.reason,
            ), (name, day)
            both_missing = math.isnan(report.value) and math.isnan(other.value)
            assert report.value == other.value or both_missing, (name, day)
            pd.testing.assert_frame_equal(
                as_pandas(report.failure_cases).reset_index(drop=True),
                as_pandas(other.failure_cases).reset_index(drop=True),
            )
            pd.testing.assert_frame_equal(report.failing_rows_sample, other.failing_rows_sample)
