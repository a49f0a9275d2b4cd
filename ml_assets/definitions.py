"""The Dagster code location: each stage's assets, checks, jobs, sensors and schedules, merged.

Importing this module reads no file and changes no global state: Dagster calls `defs()` when it
loads the code location, and only then is pipeline.yaml read (for the sensors' and schedules'
cadence, and the executor of the training and evaluation jobs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

from ml_assets.data import checks as data_checks
from ml_assets.data.assets import raw_batches, raw_labels
from ml_assets.delivery import checks as delivery_checks
from ml_assets.delivery.assets import (
    batch_predictions,
    canary_analysis,
    production_model,
    staging_model,
)
from ml_assets.delivery.jobs import (
    approval_job,
    reconcile_job,
    record_decision,
    rollback_job,
)
from ml_assets.delivery.sensors import build_alias_drift_sensor
from ml_assets.evaluation import checks as evaluation_checks
from ml_assets.evaluation.assets import evaluation_report
from ml_assets.execution import CELERY_JOBS, job_executor
from ml_assets.features import checks as features_checks
from ml_assets.features.assets import reference_profile, training_dataset
from ml_assets.monitoring.assets import (
    drift_report,
    gate_history,
    pipeline_health,
    production_performance,
)
from ml_assets.monitoring.jobs import gate_history_job
from ml_assets.monitoring.sensors import (
    build_gate_history_schedule,
    build_performance_slo_sensor,
    build_scoring_automation_sensor,
)
from ml_assets.resources import PipelineResource, mlflow_tracking
from ml_assets.retraining.assets import retraining_ledger
from ml_assets.retraining.jobs import (
    evaluation_job,
    ingestion_job,
    ml_pipeline_job,
    scoring_job,
    training_job,
)
from ml_assets.retraining.sensors import build_automation
from ml_assets.settings import SettingsError, load_settings
from ml_assets.training import checks as training_checks
from ml_assets.training.assets import candidate_model

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

ASSETS = [
    raw_batches,
    raw_labels,
    training_dataset,
    reference_profile,
    candidate_model,
    evaluation_report,
    staging_model,
    production_model,
    batch_predictions,
    canary_analysis,
    production_performance,
    drift_report,
    gate_history,
    pipeline_health,
    retraining_ledger,
]
CHECKS = [
    *data_checks.BATCH_GATE_CHECKS,
    *features_checks.WINDOW_CHECKS,
    training_checks.candidate_model_matches_serving_path,
    *evaluation_checks.MODEL_GATES,
    *delivery_checks.READINESS_CHECKS,
]
JOBS = [
    ml_pipeline_job,
    ingestion_job,
    training_job,
    evaluation_job,
    approval_job,
    rollback_job,
    reconcile_job,
    scoring_job,
    gate_history_job,
]


def _referenced(spec: dg.AssetSpec) -> dg.AssetSpec:
    """An asset another job moves (production_model, by approval_job) links to that op."""
    import inspect

    source = inspect.unwrap(record_decision.compute_fn.decorated_fn)
    reference = dg.LocalFileCodeReference(
        file_path=inspect.getsourcefile(source), line_number=inspect.getsourcelines(source)[1]
    )
    return spec.merge_attributes(
        metadata={
            "dagster/code_references": dg.CodeReferencesMetadataValue(code_references=[reference])
        }
    )


def _on_executor(
    job: UnresolvedAssetJobDefinition, executor: dg.ExecutorDefinition
) -> UnresolvedAssetJobDefinition:
    """`job` as defined in its stage, its steps run by `executor`."""
    return dg.define_asset_job(
        job.name,
        selection=job.selection,
        config=job.config,
        description=job.description,
        tags=job.tags,
        run_tags=job.run_tags,
        metadata=job.metadata,
        partitions_def=job.partitions_def,
        executor_def=executor,
        hooks=job.hooks,
        op_retry_policy=job.op_retry_policy,
        owners=job.owners,
        automation_condition=job.automation_condition,
    )


@dg.definitions
def defs() -> dg.Definitions:
    """The code location, with sensor and schedule cadence from pipeline.yaml."""
    settings = load_settings()
    cadence = settings.schedules
    interval, running = cadence.sensor_interval_seconds, cadence.running
    sensors, schedules = build_automation(settings)
    sensors = [
        *sensors,
        build_alias_drift_sensor(interval, running),
        build_scoring_automation_sensor(interval, running),
        build_performance_slo_sensor(interval, running),
    ]
    schedules = [
        *schedules,
        build_gate_history_schedule(cadence.gate_history_cron, cadence.timezone, running),
    ]
    known = {a.name for a in (*sensors, *schedules)}
    unknown = sorted(set(running) - known)
    if unknown:
        raise SettingsError(
            f"{settings.source}: schedules.running names {unknown}, which is no sensor or "
            f"schedule of this code location; known: {sorted(known)}"
        )

    # Owners come from pipeline.yaml; each asset's definition links to its source in the UI.
    def owned(spec: dg.AssetSpec) -> dg.AssetSpec:
        return spec.replace_attributes(owners=settings.owners)

    # execution.executor: celery gives the training and evaluation jobs dagster-celery's executor;
    # every other job, and every in-process execution (`make run`, the tests), stays in process.
    executor = job_executor(settings)
    jobs = [_on_executor(j, executor) if executor and j.name in CELERY_JOBS else j for j in JOBS]
    assets = [
        _referenced(owned(a)) if isinstance(a, dg.AssetSpec) else a.map_asset_specs(owned)
        for a in dg.with_source_code_references(ASSETS)
    ]
    return dg.Definitions(
        assets=assets,
        asset_checks=CHECKS,
        jobs=jobs,
        sensors=sensors,
        schedules=schedules,
        resources={"pipeline": PipelineResource(), "mlflow": mlflow_tracking},
        # Measured: the multiprocess executor costs 2 s or more per step here; steps are short.
        executor=dg.in_process_executor,
    )
