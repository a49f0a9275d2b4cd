"""Sensors and the schedule, evaluated with build_sensor_context / build_schedule_context."""

import datetime as dt
import json

import dagster as dg
import pytest

from ml_assets.features.assets import reference_profile, training_dataset
from ml_assets.monitoring.assets import drift_report
from ml_assets.monitoring.sensors import build_gate_history_schedule
from ml_assets.retraining.sensors import build_automation
from ml_assets.settings import load_settings
from ml_assets.training.assets import candidate_model
from ml_assets_tests.conftest import ASSETS, CHECKS, START, ingest, make_project

SETTINGS = load_settings()
SENSORS, SCHEDULES = build_automation(SETTINGS)
new_batch_sensor, drift_sensor, performance_decay_sensor = SENSORS
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


def test_drift_sensor_requests_retraining_with_evidence(tmp_path, instance):
    """A real evidently report on the covariate-drift scenario, one batch in a row asked."""
    project = make_project(tmp_path / "p", drift={"consecutive_batches": 1})
    project.write_days(START, 10)
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
    assert evidence["batches"] == drifted
    assert evidence["drifted_share"][0] > evidence["threshold"] == 0.3
    assert "credit_score" in evidence["drifted_columns"]


def test_schedule_retrains_only_on_new_passing_data(project, disk_instance):
    # A schedule's context reopens its instance from a reference, which an ephemeral one has not.
    instance = disk_instance
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


def _report(instance, batch, drifted, reference="ref-1", share=None):
    """A drift report as drift_report records it (the sensor reads only its metadata)."""
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=drift_report.key,
            metadata={
                "batch": batch,
                "reference_version": reference,
                "dataset_drift": drifted,
                "drifted_share": share if share is not None else (0.6 if drifted else 0.1),
                "drifted_column_names": "credit_score, income" if drifted else "none",
            },
        )
    )


def _trained_through(instance, window_end):
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=candidate_model.key, metadata={"window_end": window_end})
    )


def test_one_odd_day_does_not_retrain_two_drifting_days_in_a_row_do(project, instance):
    _report(instance, "2026-02-01", drifted=True)
    odd, context = _sensor(drift_sensor, project, instance)
    assert isinstance(odd, dg.SkipReason)
    assert "1 drifting batch(es) in a row" in odd.skip_message
    _report(instance, "2026-02-02", drifted=False)
    _report(instance, "2026-02-03", drifted=True)
    calm, context = _sensor(drift_sensor, project, instance, cursor=context.cursor)
    assert isinstance(calm, dg.SkipReason) and "within policy" in calm.skip_message
    # A report against an older reference does not count towards the streak.
    _report(instance, "2026-02-04", drifted=True, reference="ref-0")
    _report(instance, "2026-02-04", drifted=True)
    request, context = _sensor(drift_sensor, project, instance, cursor=context.cursor)
    assert isinstance(request, dg.RunRequest), request
    assert request.tags["ml_assets/trigger"] == "drift"
    evidence = json.loads(request.tags["ml_assets/evidence"])
    assert evidence["batches"] == ["2026-02-03", "2026-02-04"]
    assert evidence["reference_version"] == "ref-1" and evidence["drifted_share"] == [0.6, 0.6]
    assert "2 batch(es) in a row drifted" in evidence["reason"]
    # The same evidence asks for the same run (run key); nothing new, nothing asked.
    again, _ = _sensor(drift_sensor, project, instance)
    assert again.run_key == request.run_key
    assert (
        "no new drift report"
        in _sensor(drift_sensor, project, instance, context.cursor)[0].skip_message
    )
    # Once a model has trained on a window reaching the evidence, the evidence is answered.
    _trained_through(instance, "2026-02-03")
    _report(instance, "2026-02-04", drifted=True)
    answered, _ = _sensor(drift_sensor, project, instance)
    assert isinstance(answered, dg.SkipReason)
    assert "the latest model's window (to 2026-02-03) holds them" in answered.skip_message


def test_drift_sensor_with_retraining_off_only_says_so(tmp_path, instance):
    project = make_project(tmp_path / "p", drift={"retrain_on_drift": False})
    _report(instance, "2026-02-01", drifted=True)
    _report(instance, "2026-02-02", drifted=True)
    skipped, _ = _sensor(drift_sensor, project, instance)
    assert isinstance(skipped, dg.SkipReason)
    assert "drift.retrain_on_drift is false" in skipped.skip_message


def _live(
    project, batch, auc, estimated, version="1", labelled=500, scored=500, log_loss=0.5, ref=None
):
    folder = project.pipeline.live_dir
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "batch": batch,
        "version": version,
        "labelled_rows": labelled,
        "roc_auc": auc,
        "log_loss": log_loss,
        "scored_rows": scored,
        "estimated_roc_auc": estimated,
        "reference_roc_auc": "0.8",
        "reference_log_loss": ref,
    }
    (folder / f"{batch}.json").write_text(json.dumps(record))


DAYS = ["2026-02-01", "2026-02-02", "2026-02-03"]


def test_performance_decay_sensor_retrains_on_a_sustained_realized_drop(project, instance):
    assert "no batch scored" in _sensor(performance_decay_sensor, project, instance)[0].skip_message
    for day in DAYS[:2]:
        _live(project, day, auc=0.70, estimated=0.80)  # threshold 0.8 - 0.03 = 0.77
    _live(project, DAYS[2], auc=0.79, estimated=0.80)  # one batch recovered: no breach
    within, _ = _sensor(performance_decay_sensor, project, instance)
    assert isinstance(within, dg.SkipReason) and "within the retraining" in within.skip_message
    _live(project, DAYS[2], auc=0.71, estimated=0.80, labelled=50)  # too few labels: no count
    assert isinstance(_sensor(performance_decay_sensor, project, instance)[0], dg.SkipReason)
    _live(project, DAYS[2], auc=0.71, estimated=0.80)
    request, _ = _sensor(performance_decay_sensor, project, instance)
    assert isinstance(request, dg.RunRequest), request
    assert request.tags["ml_assets/trigger"] == "realized_performance"
    evidence = json.loads(request.tags["ml_assets/evidence"])
    assert evidence["batches"] == DAYS and evidence["values"] == [0.7, 0.7, 0.71]
    assert evidence["threshold"] == 0.77 and evidence["production_version"] == "1"
    assert evidence["measure"] == "live ROC AUC"
    _trained_through(instance, DAYS[0])
    answered, _ = _sensor(performance_decay_sensor, project, instance)
    assert isinstance(answered, dg.SkipReason) and "holds them" in answered.skip_message


def test_the_cbpe_estimate_warns_by_default_and_retrains_when_configured(tmp_path, instance):
    warn_only = make_project(tmp_path / "warn")
    for day in DAYS:  # no labels yet: only the estimate speaks
        _live(warn_only, day, auc=None, estimated=0.70, labelled=0)
    warned, _ = _sensor(performance_decay_sensor, warn_only, instance)
    assert isinstance(warned, dg.SkipReason)
    assert warned.skip_message.startswith("early warning (estimated_performance): v1's estimated")
    policy = {"retrain": True, "max_roc_auc_drop": 0.03, "window_batches": 3, "min_rows": 200}
    retrain = make_project(tmp_path / "retrain", retraining={"estimated_performance": policy})
    for day in DAYS:
        _live(retrain, day, auc=None, estimated=0.70, labelled=0)
    request, _ = _sensor(performance_decay_sensor, retrain, instance)
    assert isinstance(request, dg.RunRequest)
    assert request.tags["ml_assets/trigger"] == "estimated_performance"


def test_schedules_running_sets_what_starts_running_and_names_an_unknown_one(tmp_path):
    import ml_assets.definitions as definitions
    from ml_assets.settings import SettingsError

    project = make_project(
        tmp_path / "p", schedules={"running": ["drift_sensor", "retraining_schedule"]}
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ML_ASSETS_CONFIG", str(project.config_path))
        defs = definitions.defs()
        statuses = {s.name: s.default_status.value for s in (*defs.sensors, *defs.schedules)}
        assert statuses.pop("drift_sensor") == "RUNNING"
        assert statuses.pop("retraining_schedule") == "RUNNING"
        assert len(statuses) == 6 and set(statuses.values()) == {"STOPPED"}
        wrong = make_project(tmp_path / "q", schedules={"running": ["drift_sensr"]})
        patch.setenv("ML_ASSETS_CONFIG", str(wrong.config_path))
        with pytest.raises(SettingsError, match=r"schedules.running names \['drift_sensr'\]"):
            definitions.defs()


def test_a_first_ingestion_run_succeeds_before_any_model_and_measures_no_drift(project, instance):
    """On a fresh deployment the daemon's first ingestion run has no reference to compare with:
    the run succeeds, its batches are judged, and no drift report is recorded (the sensor
    then has nothing to act on)."""
    from ml_assets_tests.conftest import add_partitions, range_tags, run_job

    add_partitions(instance, TEN_DAYS)
    result = run_job("ingestion_job", project, instance, tags=range_tags(TEN_DAYS[0], TEN_DAYS[-1]))
    assert result.success
    materialized = {
        e.materialization.asset_key.path[-1] for e in result.get_asset_materialization_events()
    }
    assert materialized == {"raw_batches", "raw_labels"}
    assert not instance.fetch_materializations(drift_report.key, limit=1).records
    assert "no new drift report" in _sensor(drift_sensor, project, instance)[0].skip_message


def test_a_rise_of_the_live_log_loss_retrains_though_the_ranking_holds(tmp_path, instance):
    """The simulator's concept drift keeps the AUC and moves the default rate: the log loss
    shows it."""
    project = make_project(tmp_path / "p")
    for day in DAYS:  # AUC as tested; log loss 0.33 -> 0.38, beyond 0.33 + 0.03
        _live(project, day, auc=0.80, estimated=0.80, log_loss=0.38, ref="0.33")
    request, _ = _sensor(performance_decay_sensor, project, instance)
    assert isinstance(request, dg.RunRequest), request
    evidence = json.loads(request.tags["ml_assets/evidence"])
    assert evidence["measure"] == "live log loss" and evidence["threshold"] == 0.36
    assert "above 0.360 (its test value 0.330 plus the tolerated rise)" in evidence["reason"]
    _live(project, DAYS[1], auc=0.80, estimated=0.80, log_loss=0.35, ref="0.33")  # one within
    assert isinstance(_sensor(performance_decay_sensor, project, instance)[0], dg.SkipReason)
    off = make_project(
        tmp_path / "q",
        retraining={"realized_performance": {"retrain": True, "max_log_loss_increase": None}},
    )
    for day in DAYS:
        _live(off, day, auc=0.80, estimated=0.80, log_loss=0.38, ref="0.33")
    assert isinstance(_sensor(performance_decay_sensor, off, instance)[0], dg.SkipReason)
