"""Monitoring automation: gate-history reviews, scoring each batch, the live-performance SLO."""

from collections.abc import Collection

import dagster as dg

from ml_assets.delivery.jobs import rollback_job
from ml_assets.metadata import schedule_status, sensor_status
from ml_assets.monitoring.jobs import gate_history_job
from ml_assets.resources import PipelineResource


def build_gate_history_schedule(
    cron: str, timezone: str, running: Collection[str] = ()
) -> dg.ScheduleDefinition:
    """gate_history_job on `cron` (pipeline.yaml: schedules.gate_history_cron)."""
    return dg.ScheduleDefinition(
        name="gate_history_schedule",
        default_status=schedule_status("gate_history_schedule", running),
        job=gate_history_job,
        cron_schedule=cron,
        execution_timezone=timezone,
        description="Reviews every gate's history: which never come near, which fail most.",
    )


SLO_SENSOR = "performance_slo_sensor"


def build_scoring_automation_sensor(
    interval_seconds: int, running: Collection[str] = ()
) -> dg.SensorDefinition:
    """Evaluates the automation conditions of the per-batch scoring assets: a batch is scored
    once it is ingested, and measured again once its labels land."""
    from ml_assets.delivery.assets import batch_predictions, canary_analysis
    from ml_assets.monitoring.assets import production_performance

    return dg.AutomationConditionSensorDefinition(
        "scoring_automation_sensor",
        target=dg.AssetSelection.assets(batch_predictions, canary_analysis, production_performance),
        minimum_interval_seconds=interval_seconds,
        default_status=sensor_status("scoring_automation_sensor", running),
        description=(
            "Scores each batch with production and the canary once it is ingested, and "
            "measures the canary and production's live performance again when its labels land."
        ),
    )


def build_performance_slo_sensor(
    interval_seconds: int, running: Collection[str] = ()
) -> dg.SensorDefinition:
    """Rolls production back when its live performance breaches the SLO over the window."""

    @dg.sensor(
        name=SLO_SENSOR,
        job=rollback_job,
        minimum_interval_seconds=interval_seconds,
        default_status=sensor_status(SLO_SENSOR, running),
        description=(
            "Rolls production back when its live ROC AUC stays below its test AUC minus the "
            "tolerated drop on delivery.rollback.window_batches labelled batches in a row."
        ),
    )
    def performance_slo_sensor(context: dg.SensorEvaluationContext, pipeline: PipelineResource):

        from ml_assets.delivery.assets import TEST_AUC_TAG
        from ml_assets.monitoring.live import read_live_records, rollback_breach
        from ml_assets.training.registry import version_for_alias

        settings = pipeline.settings
        policy = settings.delivery.rollback
        if not policy.automatic:
            return dg.SkipReason("automatic rollback is off (delivery.rollback.automatic)")
        name = settings.training.registered_model_name
        client = pipeline.mlflow_client()
        serving = version_for_alias(client, name, settings.delivery.production_alias)
        if serving is None:
            return dg.SkipReason("nothing serves production")
        reference = serving.tags.get(TEST_AUC_TAG)
        if reference is None:
            return dg.SkipReason(f"v{serving.version} has no {TEST_AUC_TAG} tag to compare with")
        records = read_live_records(pipeline.live_dir)
        breach = rollback_breach(records, str(serving.version), float(reference), policy)
        if breach is None:
            return dg.SkipReason(f"v{serving.version} meets its live-performance SLO")
        config = {
            "approver": SLO_SENSOR,
            "reason": breach.reason,
            "from_version": str(serving.version),
            "automatic": True,
        }
        return dg.RunRequest(
            # One rollback per breach of a version: the same evidence never rolls back twice.
            run_key=f"slo-breach:v{serving.version}:{breach.batches[-1]}",
            run_config={"ops": {"roll_back_production": {"config": config}}},
            tags={"trigger": "live-performance SLO breach", "evidence": breach.reason[:200]},
        )

    return performance_slo_sensor
