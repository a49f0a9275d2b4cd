"""The retraining ledger: pure rules on known answers, and the asset on the session's pair."""

import shutil

import dagster as dg
import pandas as pd
import pytest

from ml_assets.metadata import TRIGGER_TAG
from ml_assets.retraining.assets import retraining_ledger
from ml_assets.retraining.ledger import Retrain, cadence_summary, compute_seconds
from ml_assets.training.assets import candidate_model
from ml_assets_tests.conftest import ASSETS, CHECKS, copy_project


def _retrain(trigger, gain, low, seconds):
    return Retrain("1", "t", trigger, "w", 100, seconds, "0", gain, low, gain + 0.01, "none")


def test_cadence_summary_weighs_compute_against_significant_gains():
    rows = [
        _retrain("schedule", 0.001, -0.004, 10.0),
        _retrain("schedule", 0.002, -0.001, 12.0),
        _retrain("drift", 0.03, 0.01, 11.0),
        _retrain("drift", 0.02, 0.005, 9.0),
    ]
    assert cadence_summary(rows) == [
        {
            "trigger": "drift",
            "retrains": 2,
            "compute_seconds": 20.0,
            "median_auc_gain": 0.025,
            "significant_gains": 2,
            "seconds_per_significant_gain": 10.0,
        },
        {
            "trigger": "schedule",
            "retrains": 2,
            "compute_seconds": 22.0,
            "median_auc_gain": 0.0015,
            "significant_gains": 0,
            "seconds_per_significant_gain": None,
        },
    ]
    assert compute_seconds([("a", 1.0, 3.5), ("b", 2.0, None), ("c", 4.0, 4.25)]) == 2.75


@pytest.fixture
def pair_with_history(trained_pair_root, tmp_path):
    """A copy of the trained pair and of the Dagster instance that trained it."""
    project = copy_project(trained_pair_root, tmp_path / "p")
    home = tmp_path / "home"
    shutil.copytree(trained_pair_root.parent / f"{trained_pair_root.name}_home", home)
    instance = dg.DagsterInstance.local_temp(str(home))
    yield project, instance
    instance.dispose()


def test_the_ledger_lists_each_retrain_with_its_trigger_cost_and_gain(pair_with_history):
    project, instance = pair_with_history
    # A third version, trained by the drift trigger (a run's tags say why it ran); not evaluated.
    drift = dg.materialize(
        [*ASSETS, *CHECKS],
        selection=[candidate_model],
        instance=instance,
        resources=project.resources,
        tags={TRIGGER_TAG: "drift"},
    )
    assert drift.success
    result = dg.materialize(
        [*ASSETS, *CHECKS],
        selection=[retraining_ledger],
        instance=instance,
        resources=project.resources,
    )
    assert result.success
    ledger = pd.read_csv(project.pipeline.reports_dir / "retraining_ledger.csv")
    assert list(ledger["version"]) == [1, 2, 3]
    assert list(ledger["trigger"]) == ["manual", "manual", "drift"]
    assert list(ledger["champion"].astype(str)) == ["none", "1", "not evaluated"]
    first, second, third = ledger.to_dict("records")
    assert pd.isna(first["auc_gain"]) and pd.isna(third["auc_gain"])
    assert second["gain_low"] <= second["auc_gain"] <= second["gain_high"]
    assert (ledger["compute_seconds"] > 0).all() and (ledger["train_rows"] > 0).all()
    # Version 1 trained on six days and version 2 on eight: more rows, a later window end.
    assert first["train_rows"] < second["train_rows"] and first["window"] < second["window"]
    (materialization,) = [e.materialization for e in result.get_asset_materialization_events()]
    meta = materialization.metadata
    assert meta["retrains"].value == 3 and meta["latest_trigger"].value == "drift"
    assert "| drift" in meta["by_trigger"].value and "| manual" in meta["by_trigger"].value
