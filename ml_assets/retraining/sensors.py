"""Sensors and schedules: what runs, and on what evidence.

Every run a sensor or schedule requests carries its trigger and evidence as tags.
"""

import hashlib
import json

import dagster as dg

from ml_assets.data.assets import batch_partitions
from ml_assets.data.batches import locate_batches
from ml_assets.data.gates import BATCH_GATES
from ml_assets.data.ledger import contiguous_ranges, needs_validation, plan_window
from ml_assets.metadata import EVIDENCE_TAG, TRIGGER_TAG
from ml_assets.monitoring.assets import drift_report
from ml_assets.resources import PipelineResource
from ml_assets.retraining.jobs import ingestion_job, training_job
from ml_assets.settings import Settings
from ml_assets.training.assets import candidate_model

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def evidence_tags(trigger: str, evidence: dict) -> dict[str, str]:
    return {TRIGGER_TAG: trigger, EVIDENCE_TAG: json.dumps(evidence, sort_keys=True, default=str)}


def latest_metadata(
    instance: dg.DagsterInstance, asset: dg.AssetsDefinition
) -> tuple[int, dict] | None:
    """(storage id, metadata values) of the asset's latest materialization, if any."""
    records = instance.fetch_materializations(asset.key, limit=1).records
    if not records:
        return None
    materialization = records[0].asset_materialization
    values = {k: v.value for k, v in (materialization.metadata if materialization else {}).items()}
    return records[0].storage_id, values


def ingestion_requests(
    pipeline: PipelineResource, known_partitions: list[str]
) -> tuple[list[str], list[dg.RunRequest]]:
    """New partitions to add, and one ingestion run per contiguous range of unjudged files."""
    dataset = pipeline.settings.dataset
    policy = pipeline.gate_policy
    batches = locate_batches(dataset.features_dir, dataset.labels_dir)
    new = [day for day in batches if day not in set(known_partitions)]
    ordered = [*known_partitions, *new]
    todo = {
        d
        for d, b in batches.items()
        if needs_validation(pipeline.ledger_dir, b, BATCH_GATES, policy)
    }
    requests = []
    for start, end in contiguous_ranges(ordered, todo):
        days = ordered[ordered.index(start) : ordered.index(end) + 1]
        key = hashlib.sha256(
            json.dumps([(d, batches[d].fingerprint) for d in days]).encode()
        ).hexdigest()[:20]
        requests.append(
            dg.RunRequest(
                run_key=f"ingest-{key}",
                tags={
                    RANGE_START: start,
                    RANGE_END: end,
                    **evidence_tags("new_batch", {"days": days[:10], "count": len(days)}),
                },
            )
        )
    return new, requests


def build_automation(
    settings: Settings,
) -> tuple[list[dg.SensorDefinition], list[dg.ScheduleDefinition]]:
    """Sensors and schedules whose cadence comes from pipeline.yaml."""
    interval = settings.schedules.sensor_interval_seconds

    @dg.sensor(
        job=ingestion_job,
        minimum_interval_seconds=interval,
        description=(
            "Adds a partition per new batch file and ingests the files the data gates have not "
            "judged (new, or changed since)."
        ),
    )
    def new_batch_sensor(context: dg.SensorEvaluationContext, pipeline: PipelineResource):
        """Adds a partition per new batch file and ingests files the data gates have not judged."""
        known = list(context.instance.get_dynamic_partitions(batch_partitions.name))
        new, requests = ingestion_requests(pipeline, known)
        if not new and not requests:
            return dg.SkipReason("no new or changed batch file")
        return dg.SensorResult(
            run_requests=requests,
            dynamic_partitions_requests=[batch_partitions.build_add_request(new)] if new else [],
        )

    @dg.sensor(
        job=training_job,
        minimum_interval_seconds=interval,
        description=(
            "Requests retraining when a new drift report (evidently, newest passing batch "
            "against the training reference) finds drift beyond pipeline.yaml's drift policy."
        ),
    )
    def drift_sensor(context: dg.SensorEvaluationContext, pipeline: PipelineResource):
        """Requests retraining when a new drift report finds drift beyond the configured policy."""
        latest = latest_metadata(context.instance, drift_report)
        last_seen = int(context.cursor) if context.cursor else 0
        if latest is None or latest[0] <= last_seen:
            return dg.SkipReason("no new drift report since the last evaluation")
        storage_id, meta = latest
        context.update_cursor(str(storage_id))
        policy = pipeline.settings.drift
        evidence = {
            "batch": meta.get("batch"),
            "drifted_share": meta.get("drifted_share"),
            "threshold": policy.drifted_columns_share,
            "drifted_columns": meta.get("drifted_column_names"),
        }
        if not meta.get("dataset_drift"):
            return dg.SkipReason(
                f"batch {evidence['batch']} drift share {evidence['drifted_share']:.3f} "
                f"within policy {policy.drifted_columns_share}"
            )
        if not policy.retrain_on_drift:
            return dg.SkipReason(
                f"batch {evidence['batch']} drifted but drift.retrain_on_drift is false"
            )
        return dg.RunRequest(run_key=f"drift-{storage_id}", tags=evidence_tags("drift", evidence))

    @dg.schedule(
        job=training_job,
        cron_schedule=settings.schedules.retraining_cron,
        execution_timezone=settings.schedules.timezone,
        description=(
            f"Periodic retrain ({settings.schedules.retraining_cron}, "
            f"{settings.schedules.timezone}); skips when no batch has passed the data gates "
            "since the last model."
        ),
    )
    def retraining_schedule(context: dg.ScheduleEvaluationContext, pipeline: PipelineResource):
        """Periodic retrain; skips when no batch has passed the gates since the last model."""
        dataset = pipeline.settings.dataset
        batches = locate_batches(dataset.features_dir, dataset.labels_dir)
        window = plan_window(
            pipeline.ledger_dir, batches, pipeline.settings.training.window_days, BATCH_GATES
        )
        if not window.days:
            return dg.SkipReason("no batch has passed the data gates")
        latest = latest_metadata(context.instance, candidate_model)
        trained_on = latest[1].get("data_version") if latest else None
        if trained_on == window.data_version:
            return dg.SkipReason(
                f"no new passing batch since the model trained on data version {trained_on}"
            )
        evidence = {
            "data_version": window.data_version,
            "previous_data_version": trained_on,
            "window": f"{window.days[0]}..{window.days[-1]}",
            "excluded": sorted(window.excluded),
        }
        return dg.RunRequest(
            run_key=f"schedule-{window.data_version}", tags=evidence_tags("schedule", evidence)
        )

    return [new_batch_sensor, drift_sensor], [retraining_schedule]
