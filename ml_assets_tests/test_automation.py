"""Sensors and the schedule, evaluated with build_sensor_context / build_schedule_context."""

import datetime as dt
import json

import dagster as dg

from ml_assets.features.assets import reference_profile, training_dataset
from ml_assets.monitoring.assets import drift_report
from ml_assets.monitoring.sensors import build_gate_history_schedule
from ml_assets.retraining.sensors import build_automation
from ml_assets.settings import load_settings
from ml_assets.training.assets import candidate_model
from ml_assets_tests.conftest import ASSETS, CHECKS, START, ingest

SETTINGS = load_settings()
SENSORS, SCHEDULES = build_automation(SETTINGS)
new_batch_sensor, drift_sensor = SENSORS
(retraining_schedule,) = SCHEDULES
gate_history_schedule = build_gate_history_schedule(
    SETTINGS.schedules.gate_history_cron, SETTINGS.schedules.timezone
)
TEN_DAYS = [(START + dt.timedelta(days=i)).isoformat() for i in range(10)]


def _sensor(sensor, project, instance, cursor=None):
    context = dg.build_sensor_context(
        instance=instance, resources={"pipeline": project.pipeline}, cursor=cursor
    )
    return sensor(context), context


def _materialize(project, instance, *assets):
    """The training window and reference profile, then `assets` (no evaluation: the sensors
    read only these assets' metadata)."""
    return dg.materialize(
        [*ASSETS, *CHECKS],
        selection=[training_dataset, reference_profile, *assets],
        instance=instance,
        resources=project.resources,
    )


def _schedule(project, instance):
    context = dg.build_schedule_context(
        instance=instance,
        resources={"pipeline": project.pipeline},
        scheduled_execution_time=dt.datetime(2026, 5, 4, 3, tzinfo=dt.UTC),
    )
    return retraining_schedule.evaluate_tick(context)


def test_new_batch_sensor_adds_partitions_and_requests_one_range(project, instance):
    result, _ = _sensor(new_batch_sensor, project, instance)
    assert isinstance(result, dg.SensorResult)
    assert list(result.dynamic_partitions_requests[0].partition_keys) == TEN_DAYS
    (request,) = result.run_requests
    assert request.tags["dagster/asset_partition_range_start"] == TEN_DAYS[0]
    assert request.tags["dagster/asset_partition_range_end"] == TEN_DAYS[-1]
    assert request.tags["ml_assets/trigger"] == "new_batch"
    assert json.loads(request.tags["ml_assets/evidence"])["count"] == 10


def test_new_batch_sensor_skips_when_nothing_is_new_then_sees_one_new_file(project, instance):
    assert ingest(project, instance, TEN_DAYS).success
    skipped, _ = _sensor(new_batch_sensor, project, instance)
    assert isinstance(skipped, dg.SkipReason)
    assert "no new or changed batch" in skipped.skip_message
    (day,) = project.write_days(dt.date(2026, 1, 11), 1)
    result, _ = _sensor(new_batch_sensor, project, instance)
    assert list(result.dynamic_partitions_requests[0].partition_keys) == [day]
    (request,) = result.run_requests
    assert request.tags["dagster/asset_partition_range_start"] == day
    assert request.tags["dagster/asset_partition_range_end"] == day


def test_drift_sensor_skips_without_report_and_within_policy(project, instance):
    skipped, _ = _sensor(drift_sensor, project, instance)
    assert "no new drift report" in skipped.skip_message
    assert ingest(project, instance, TEN_DAYS).success
    assert _materialize(project, instance, drift_report).success
    calm, context = _sensor(drift_sensor, project, instance)
    assert isinstance(calm, dg.SkipReason) and "within policy" in calm.skip_message
    again, _ = _sensor(drift_sensor, project, instance, cursor=context.cursor)
    assert "no new drift report" in again.skip_message


def test_drift_sensor_requests_retraining_with_evidence(project, instance):
    assert ingest(project, instance, TEN_DAYS).success
    assert _materialize(project, instance).success
    drifted = project.write_days(dt.date(2026, 1, 11), 1, scenario="covariate_drift", rows=1000)
    assert ingest(project, instance, drifted).success  # drifted data is valid data
    assert dg.materialize(
        ASSETS, selection=[drift_report], instance=instance, resources=project.resources
    ).success
    request, _ = _sensor(drift_sensor, project, instance)
    assert isinstance(request, dg.RunRequest)
    assert request.tags["ml_assets/trigger"] == "drift"
    evidence = json.loads(request.tags["ml_assets/evidence"])
    assert evidence["batch"] == drifted[0]
    assert evidence["drifted_share"] > evidence["threshold"]
    assert "credit_score" in evidence["drifted_columns"]


def test_schedule_retrains_only_on_new_passing_data(project, instance):
    assert "no batch has passed" in _schedule(project, instance).skip_message
    assert ingest(project, instance, TEN_DAYS).success
    first = _schedule(project, instance)
    (request,) = first.run_requests
    assert request.tags["ml_assets/trigger"] == "schedule"
    assert _materialize(project, instance, candidate_model).success
    assert "no new passing batch" in _schedule(project, instance).skip_message
    # A batch that fails its gate is not new data: the schedule still has nothing to do.
    bad = project.write_days(dt.date(2026, 1, 11), 1, scenario="schema_corruption")
    assert not ingest(project, instance, bad).success
    assert "no new passing batch" in _schedule(project, instance).skip_message
    good = project.write_days(dt.date(2026, 1, 12), 1)
    assert ingest(project, instance, good).success
    (request,) = _schedule(project, instance).run_requests
    evidence = json.loads(request.tags["ml_assets/evidence"])
    assert evidence["window"].endswith(good[0])
    assert bad[0] in evidence["excluded"]
