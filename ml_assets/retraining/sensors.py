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
from ml_assets.metadata import EVIDENCE_TAG, TRIGGER_TAG, schedule_status, sensor_status
from ml_assets.monitoring.assets import drift_report
from ml_assets.resources import PipelineResource
from ml_assets.retraining.jobs import ingestion_job, training_job
from ml_assets.settings import Settings
from ml_assets.training.assets import candidate_model

# By name, not by object: the code location gives training_job its executor (pipeline.yaml's
# `execution:`), and a sensor holding the module's job object would bring a second definition.
TRAINING_JOB = training_job.name
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def evidence_tags(trigger: str, evidence: dict) -> dict[str, str]:
    return {TRIGGER_TAG: trigger, EVIDENCE_TAG: json.dumps(evidence, sort_keys=True, default=str)}


# Drift reports the drift sensor reads per tick: enough for any sensible consecutive_batches.
DRIFT_HISTORY = 100


def _values(materialization: dg.AssetMaterialization) -> dict:
    return {k: v.value for k, v in materialization.metadata.items()}


def _retrain_request(evidence) -> dg.RunRequest:
    """training_job for `evidence` (retraining/triggers.Evidence): its run key, trigger and tags."""
    return dg.RunRequest(
        run_key=evidence.run_key, tags=evidence_tags(evidence.trigger, evidence.tags())
    )


def _answered(evidence, window_end: str) -> str:
    return f"{evidence.reason}; the latest model's window (to {window_end}) holds them"


def _latest_window_end(instance: dg.DagsterInstance) -> str | None:
    """The newest batch the latest trained model learned from (None before any model)."""
    latest = latest_metadata(instance, candidate_model)
    return latest[1].get("window_end") if latest else None


def latest_metadata(
    instance: dg.DagsterInstance, asset: dg.AssetsDefinition
) -> tuple[int, dict] | None:
    """(storage id, metadata values) of the asset's latest materialization, if any."""
    records = instance.fetch_materializations(asset.key, limit=1).records
    if not records:
        return None
    materialization = records[0].asset_materialization
    return records[0].storage_id, _values(materialization) if materialization else {}


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
    running = settings.schedules.running

    @dg.sensor(
        job=ingestion_job,
        minimum_interval_seconds=interval,
        default_status=sensor_status("new_batch_sensor", running),
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
        job_name=TRAINING_JOB,
        minimum_interval_seconds=interval,
        default_status=sensor_status("drift_sensor", running),
        description=(
            "Requests retraining when the newest drift.consecutive_batches drift reports in a "
            "row (evidently, each passing batch against the training reference) find drift "
            "beyond pipeline.yaml's drift policy."
        ),
    )
    def drift_sensor(context: dg.SensorEvaluationContext, pipeline: PipelineResource):
        """Requests retraining when the newest drift reports in a row all find drift."""
        from ml_assets.retraining.triggers import (
            DriftObservation,
            already_trained_on,
            drift_progress,
            sustained_drift,
        )

        policy = pipeline.settings.drift
        records = context.instance.fetch_materializations(
            drift_report.key, limit=DRIFT_HISTORY
        ).records
        last_seen = int(context.cursor) if context.cursor else 0
        if not records or records[0].storage_id <= last_seen:
            return dg.SkipReason("no new drift report since the last evaluation")
        context.update_cursor(str(records[0].storage_id))
        observations = [
            o
            for r in reversed(records)  # oldest first: a batch measured twice keeps its latest
            if r.asset_materialization is not None
            and (o := DriftObservation.from_metadata(_values(r.asset_materialization)))
        ]
        if not observations:
            return dg.SkipReason("the drift reports name no reference (made by an older version)")
        reference = observations[-1].reference
        evidence = sustained_drift(
            observations, reference, policy.consecutive_batches, policy.drifted_columns_share
        )
        if evidence is None:
            return dg.SkipReason(
                f"{drift_progress(observations, reference)}: within policy (drift share above "
                f"{policy.drifted_columns_share} on {policy.consecutive_batches} in a row)"
            )
        if not policy.retrain_on_drift:
            return dg.SkipReason(f"{evidence.reason}; drift.retrain_on_drift is false")
        window_end = _latest_window_end(context.instance)
        if already_trained_on(window_end, evidence):
            return dg.SkipReason(_answered(evidence, window_end))
        return _retrain_request(evidence)

    @dg.sensor(
        job_name=TRAINING_JOB,
        minimum_interval_seconds=interval,
        default_status=sensor_status("performance_decay_sensor", running),
        description=(
            "Requests retraining when production's ROC AUC stays below its test AUC minus "
            "retraining.realized_performance's drop (or its log loss above its test log loss "
            "plus the tolerated rise) on labelled batches; the CBPE estimate (before labels "
            "land) warns, or retrains where retraining.estimated_performance says."
        ),
    )
    def performance_decay_sensor(context: dg.SensorEvaluationContext, pipeline: PipelineResource):
        """Requests retraining on a sustained decay of production's realized AUC or log loss (or,
        where configured, of its estimated AUC)."""
        from ml_assets.monitoring.live import (
            ESTIMATED,
            REALIZED,
            REALIZED_LOG_LOSS,
            read_live_records,
            sustained_breach,
        )
        from ml_assets.retraining.triggers import already_trained_on, performance_evidence

        records = read_live_records(pipeline.live_dir)
        if not records:
            return dg.SkipReason("no batch scored by production has been measured yet")
        newest = max(records, key=lambda r: r["batch"])
        version, reference = str(newest["version"]), newest.get("reference_roc_auc")
        if reference is None:
            return dg.SkipReason(f"v{version} has no test ROC AUC to compare with")
        policies = pipeline.settings.retraining
        realized, estimated = policies.realized_performance, policies.estimated_performance
        window_end = _latest_window_end(context.instance)
        warnings = []
        rules = [
            ("realized_performance", REALIZED, realized, realized.max_roc_auc_drop, reference),
            ("estimated_performance", ESTIMATED, estimated, estimated.max_roc_auc_drop, reference),
        ]
        log_loss = newest.get("reference_log_loss")
        if realized.max_log_loss_increase is not None and log_loss is not None:
            rules.insert(
                1,
                (
                    "realized_performance",
                    REALIZED_LOG_LOSS,
                    realized,
                    realized.max_log_loss_increase,
                    log_loss,
                ),
            )
        for trigger, measure, policy, max_drop, reference_value in rules:
            breach = sustained_breach(
                records,
                version,
                float(reference_value),
                max_drop=max_drop,
                window_batches=policy.window_batches,
                min_rows=policy.min_rows,
                measure=measure,
            )
            if breach is None:
                continue
            evidence = performance_evidence(breach, trigger)
            if not policy.retrain:
                context.log.warning(f"early warning: {evidence.reason}")
                warnings.append(f"early warning ({trigger}): {evidence.reason}")
                continue
            if already_trained_on(window_end, evidence):
                warnings.append(_answered(evidence, window_end))
                continue
            return _retrain_request(evidence)
        return dg.SkipReason(
            "; ".join(warnings) or f"v{version} within the retraining performance policy"
        )

    @dg.schedule(
        job_name=TRAINING_JOB,
        cron_schedule=settings.schedules.retraining_cron,
        execution_timezone=settings.schedules.timezone,
        default_status=schedule_status("retraining_schedule", running),
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

    return [new_batch_sensor, drift_sensor, performance_decay_sensor], [retraining_schedule]
