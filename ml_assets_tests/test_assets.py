"""Each group materialised on tiny data in a temporary project, checks included."""

import datetime as dt

import dagster as dg

from ml_assets.data.ledger import read_verdict
from ml_assets.features import assets as features
from ml_assets.training.registry import version_for_alias
from ml_assets_tests.conftest import (
    ASSETS,
    CHECKS,
    INGESTION,
    START,
    add_partitions,
    decide,
    failed_checks,
    ingest,
    make_project,
    train,
)


def _check(result, name):
    return next(e for e in result.get_asset_check_evaluations() if e.check_name == name)


def test_ingestion_gates_pass_clean_batches(project, instance):
    days = [(START + dt.timedelta(days=i)).isoformat() for i in range(10)]
    result = ingest(project, instance, days)
    assert result.success
    schema = _check(result, "raw_batches_match_schema")
    assert schema.passed and schema.metadata["batches_checked"].value == 10
    assert _check(result, "raw_labels_join_raw_batches").passed
    verdict = read_verdict(project.pipeline.ledger_dir, "raw_batches_match_schema", days[0])
    assert verdict.passed and verdict.run_id == result.run_id
    assert not project.pipeline.quarantine_dir.exists()


def test_failed_batch_is_quarantined_and_blocks_downstream(project, instance):
    days = project.write_days(dt.date(2026, 2, 1), 1, scenario="value_corruption")
    add_partitions(instance, days)
    result = dg.materialize(
        [*ASSETS, *CHECKS],
        selection=[*INGESTION, features.training_dataset],
        instance=instance,
        resources=project.resources,
        partition_key=days[0],
        raise_on_error=False,
    )
    assert not result.success
    schema = _check(result, "raw_batches_match_schema")
    assert not schema.passed
    assert schema.metadata["failed_days"].value == "2026-02-01"
    assert schema.metadata["failing_rows"].value > 0
    assert "application_id" in schema.metadata["failing_rows_sample"].value
    quarantined = list((project.pipeline.quarantine_dir / "2026-02-01").iterdir())
    assert len(quarantined) == 1 and (quarantined[0] / "2026-02-01.parquet").exists()
    assert (quarantined[0] / "raw_batches_match_schema_report.md").exists()
    # The blocking check stopped the run before features were built from the bad batch.
    materialized = {
        e.materialization.asset_key.path[-1] for e in result.get_asset_materialization_events()
    }
    assert materialized == {"raw_batches", "raw_labels"}
    assert not (project.pipeline.features_dir / "training_dataset.parquet").exists()
    # The source file is untouched: nothing is deleted.
    assert (project.settings.dataset.features_dir / "2026-02-01.parquet").exists()


def test_regression_gate_and_human_promotion(tmp_path, instance):
    project = make_project(tmp_path / "p")
    days = project.write_days(START, 6)
    assert ingest(project, instance, days).success
    trained = train(project, instance)
    assert trained.success, failed_checks(trained)
    name = project.settings.training.registered_model_name
    promote = decide(project, instance, "1", "ana", reason="review")
    assert promote.success
    client = project.pipeline.mlflow_client()
    assert str(version_for_alias(client, name, "production").version) == "1"
    assert client.get_model_version(name, "1").tags["approved_by"] == "ana"
    # A degraded challenger (two trees, tiny leaves) regresses beyond tolerance and is blocked.
    worse = make_project(
        tmp_path / "p",
        training={
            "num_boost_round": 1,
            "early_stopping_rounds": 0,
            "lightgbm": {"objective": "binary", "num_leaves": 2, "learning_rate": 0.01},
        },
    )
    result = train(worse, instance)
    regression = _check(result, "candidate_not_worse_than_production")
    assert not regression.passed
    assert regression.metadata["decision"].value == "block"
    # The evidence names the champion's value beside each regressed metric.
    assert isinstance(regression.metadata["champion_value"].value, float)
    assert "roc_auc" in regression.metadata["criteria"].value
    assert str(version_for_alias(client, name, "staging").version) == "1"
    assert str(version_for_alias(client, name, "production").version) == "1"
    # A version that never passed the gates cannot be promoted.
    refused = decide(project, instance, "2", "ana")
    assert not refused.success
    assert str(version_for_alias(client, name, "production").version) == "1"
