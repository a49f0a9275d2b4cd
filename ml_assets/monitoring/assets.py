"""Monitoring: drift of the newest passing batch, and gate hygiene from past check evaluations."""

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import dagster as dg

from ml_assets import markdown
from ml_assets.data.assets import batch_partitions, raw_batches, raw_labels
from ml_assets.data.batches import locate_batches
from ml_assets.data.gates import BATCH_GATES
from ml_assets.data.ledger import batch_status
from ml_assets.delivery.assets import (
    TEST_AUC_TAG,
    TEST_LOG_LOSS_TAG,
    batch_predictions,
    landed_labels,
)
from ml_assets.features.assets import reference_profile
from ml_assets.metadata import markdown_table, observability
from ml_assets.resources import PipelineResource

if TYPE_CHECKING:
    from ml_assets.monitoring.gate_history import GateEvaluation


@dg.asset(
    group_name="monitoring",
    deps=[raw_batches, reference_profile],
    code_version="1",
    kinds={"evidently", "html"},
    tags={"stage": "monitoring"},
    # Before the first model there is no reference to measure against: ingestion runs still
    # succeed, and the step says why it recorded nothing.
    output_required=False,
)
def drift_report(context: dg.AssetExecutionContext, pipeline: PipelineResource):
    """Evidently drift of the newest batch that passed the data gates, against the reference."""
    import time

    import pandas as pd

    from ml_assets.data.reading import read_as_judged
    from ml_assets.monitoring.drift import measure_drift

    started = time.perf_counter()
    settings = pipeline.settings
    dataset = settings.dataset
    batches = locate_batches(dataset.features_dir, dataset.labels_dir)
    passing = [
        d for d, b in batches.items() if batch_status(pipeline.ledger_dir, b, BATCH_GATES).eligible
    ]
    if not passing:
        raise dg.Failure("no batch has passed the data gates yet; nothing to measure drift on")
    day = passing[-1]
    if not pipeline.reference_sample_path.exists():
        context.log.warning(
            f"no drift report for batch {day}: no training reference yet "
            f"({pipeline.reference_sample_path}); training_job writes it with the first model"
        )
        return
    current = read_as_judged(batches[day].features, dataset)
    reference = pd.read_parquet(pipeline.reference_sample_path)
    html = pipeline.reports_dir / "drift" / f"{day}.html"
    summary = measure_drift(
        reference,
        current,
        dataset.feature_columns,
        drifted_share_threshold=settings.drift.drifted_columns_share,
        html_path=html,
        policy=settings.drift,
    )
    # The reference is the training window's sample: its data version names it, so a drift
    # sensor counts only the reports measured against the current reference.
    reference_version = json.loads(pipeline.training_window_path.read_text())["data_version"]
    methods = sorted({str(score["method"]) for score in summary.column_scores.values()})
    yield dg.MaterializeResult(
        metadata={
            "batch": day,
            "reference_version": reference_version,
            "methods": ", ".join(methods),
            "drifted_share": summary.drifted_share,
            "drifted_columns": summary.drifted_columns,
            "columns": summary.columns,
            "threshold": summary.threshold,
            "dataset_drift": summary.dataset_drift,
            "drifted_column_names": ", ".join(summary.drifted_column_names) or "none",
            "column_scores": dg.MetadataValue.json(summary.column_scores),
            "report": dg.MetadataValue.path(str(html)),
            **observability(started, rows=len(current), paths=[html]),
        }
    )


# The newest evaluations read per gate; older ones do not enter the summary.
HISTORY_LIMIT = 500
# Without a repository on the context, the gates are those among the newest evaluations of the
# instance: at most this many evaluation events are scanned for their check keys.
KEY_SCAN_LIMIT = 20_000


def code_location_check_keys(repository: dg.RepositoryDefinition) -> set[dg.AssetCheckKey]:
    """Every asset check of the code location: standalone checks and checks inside assets."""
    keys = set(repository.asset_checks_defs_by_key)
    for assets_def in repository.assets_defs_by_key.values():
        keys.update(assets_def.check_keys)
    return keys


def instance_check_keys(
    instance: dg.DagsterInstance, limit: int = KEY_SCAN_LIMIT
) -> set[dg.AssetCheckKey]:
    """The checks with an evaluation among the newest `limit` evaluation events of the instance."""
    records = instance.get_event_records(
        dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION), limit=limit
    )
    keys = set()
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is not None:
            keys.add(event.event_specific_data.asset_check_key)
    return keys


def gates_to_summarise(
    context: dg.AssetExecutionContext,
) -> tuple[set[dg.AssetCheckKey], str]:
    """The checks to summarise, and where their list came from.

    Runs launched from a code location (`dagster dev`, the daemon, `dagster job execute`) carry
    its repository: every check it defines. In-process runs (`execute_in_process`, `materialize`,
    `make run`) carry none, and then the checks are those with evaluations on the instance.
    """
    from dagster._check import CheckError

    try:
        repository = context.repository_def
    except CheckError:  # "No repository definition was set on the step context"
        return instance_check_keys(context.instance), "instance history"
    return code_location_check_keys(repository), "code location"


def gate_names(keys: Iterable[dg.AssetCheckKey]) -> dict[dg.AssetCheckKey, str]:
    """A check's name, or `asset:check` when two assets have checks of the same name."""
    keys = list(keys)
    counts = Counter(key.name for key in keys)
    return {key: key.name if counts[key.name] == 1 else key.to_user_string() for key in keys}


def _number(metadata: Mapping[str, object], name: str) -> float | None:
    """A finite numeric metadata entry as a float, else None (booleans are not numbers)."""
    entry = metadata.get(name)
    value = getattr(entry, "value", entry)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def gate_evaluations(
    instance: dg.DagsterInstance,
    keys: Iterable[dg.AssetCheckKey],
    limit: int = HISTORY_LIMIT,
) -> "list[GateEvaluation]":
    """The newest `limit` completed evaluations of each check, as GateEvaluation records.

    Executions that never produced an evaluation (planned, skipped, or the check raised) have no
    verdict and are left out.
    """
    from dagster._core.storage.asset_check_execution_record import (
        COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES,
    )

    from ml_assets.monitoring.gate_history import GateEvaluation

    names = gate_names(keys)
    evaluations = []
    for key, gate in names.items():
        records = instance.event_log_storage.get_asset_check_execution_history(
            key, limit=limit, status=COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES
        )
        for record in records:
            evaluation = record.evaluation
            if evaluation is None or record.event is None:
                continue
            metadata = evaluation.metadata or {}
            evaluations.append(
                GateEvaluation(
                    gate=gate,
                    passed=bool(evaluation.passed),
                    severity=evaluation.severity.value,
                    margin=_number(metadata, "margin"),
                    value=_number(metadata, "value"),
                    threshold=_number(metadata, "threshold"),
                    timestamp=record.event.timestamp,
                )
            )
    return evaluations


@dg.asset(group_name="governance", kinds={"json", "markdown"}, tags={"stage": "monitoring"})
def gate_history(
    context: dg.AssetExecutionContext, pipeline: PipelineResource
) -> dg.MaterializeResult:
    """Each gate's runs, failures and nearness to its threshold, flagging gates to review."""
    from ml_assets.monitoring.gate_history import summarise_gate_history

    keys, source = gates_to_summarise(context)
    evaluations = gate_evaluations(context.instance, keys)
    summary = summarise_gate_history(evaluations)
    folder = pipeline.gate_history_dir
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / "gate_history.csv"
    summary.to_csv(csv_path, index=False)
    table = markdown.table(summary) if not summary.empty else "(no gate evaluations yet)"
    (folder / "gate_history.md").write_text(table + "\n")
    flagged = int((summary["flag"] != "").sum())
    context.log.info(
        f"{len(summary)} gate(s) with history ({len(keys)} from the {source}), "
        f"{len(evaluations)} evaluation(s), {flagged} flagged"
    )
    return dg.MaterializeResult(
        metadata={
            "gates": len(summary),
            "flagged": flagged,
            "evaluations": len(evaluations),
            "gates_from": source,
            "summary": markdown_table(summary, max_rows=100),
            "csv": dg.MetadataValue.path(str(csv_path)),
        }
    )


@dg.asset(
    group_name="monitoring",
    partitions_def=batch_partitions,
    deps=[batch_predictions, raw_labels],
    kinds={"scikitlearn"},
    tags={"stage": "monitoring"},
    output_required=False,
    # Measured again when the batch's labels land.
    automation_condition=dg.AutomationCondition.eager(),
)
def production_performance(context: dg.AssetExecutionContext, pipeline: PipelineResource):
    """Production's live ROC AUC and log loss on a batch's labelled rows, against its test AUC."""
    import pandas as pd

    from ml_assets.monitoring.estimation import expected_roc_auc
    from ml_assets.monitoring.live import (
        labelled_performance,
        read_live_records,
        rollback_breach,
    )

    settings = pipeline.settings
    policy = settings.delivery.rollback
    day = context.partition_key
    path = pipeline.predictions_dir / f"{day}.parquet"
    if not path.exists():
        context.log.info(f"batch {day} has no predictions: nothing to measure")
        return
    predictions = pd.read_parquet(path)
    version = str(predictions["production_version"].iloc[0])
    y = landed_labels(pipeline, day, predictions)
    scores = predictions["production_score"].to_numpy(dtype="float64")
    performance = labelled_performance(scores, y)
    # Before labels land, the only view of performance: CBPE on production's own scores.
    estimated = expected_roc_auc(scores)
    client = pipeline.mlflow_client()
    name = settings.training.registered_model_name
    tags = client.get_model_version(name, version).tags
    reference = tags.get(TEST_AUC_TAG)
    record = {
        "batch": day,
        "version": version,
        **performance,
        "scored_rows": len(scores),
        "estimated_roc_auc": estimated,
        "reference_roc_auc": reference,
        # Versions staged before the log-loss tag have none: their log-loss trigger waits.
        "reference_log_loss": tags.get(TEST_LOG_LOSS_TAG),
    }
    pipeline.live_dir.mkdir(parents=True, exist_ok=True)
    (pipeline.live_dir / f"{day}.json").write_text(json.dumps(record, indent=1))
    breach = None
    if reference is not None:
        breach = rollback_breach(
            read_live_records(pipeline.live_dir), version, float(reference), policy
        )
    auc = performance["roc_auc"]
    yield dg.MaterializeResult(
        metadata={
            "production_version": version,
            "labelled_rows": performance["labelled_rows"],
            "roc_auc": round(auc, 4) if auc is not None else "not enough labels",
            "log_loss": round(performance["log_loss"], 4)
            if performance["log_loss"] is not None
            else "not enough labels",
            # Expected ROC AUC if the scores are calibrated on these rows (monitoring/
            # estimation): an early warning while labels are missing, blind to concept drift.
            "estimated_roc_auc (CBPE)": round(estimated, 4)
            if estimated is not None
            else "nothing to rank",
            "reference_roc_auc": float(reference) if reference is not None else "none",
            "threshold": round(float(reference) - policy.max_roc_auc_drop, 4)
            if reference is not None
            else "none",
            "sustained_breach": breach.reason if breach else "no",
        }
    )


# The stages that record their figures (metadata.observability), in pipeline order.
OBSERVED_STAGES = (
    "training_dataset",
    "reference_profile",
    "candidate_model",
    "evaluation_report",
    "drift_report",
    "batch_predictions",
)
OBSERVABILITY_KEYS = ("stage_seconds", "artefact_bytes", "rows_processed")


@dg.asset(group_name="governance", kinds={"markdown"}, tags={"stage": "monitoring"})
def pipeline_health(
    context: dg.AssetExecutionContext, pipeline: PipelineResource
) -> dg.MaterializeResult:
    """Each stage's latest run against its recent median: much slower, or a much larger artefact."""
    from ml_assets.monitoring.health import stage_health

    policy = pipeline.settings.observability
    rows, flagged = [], []
    for stage in OBSERVED_STAGES:
        records = context.instance.fetch_materializations(
            dg.AssetKey(stage), limit=policy.history_runs + 1
        ).records
        runs = []
        for record in reversed(records):  # oldest first
            meta = record.asset_materialization.metadata if record.asset_materialization else {}
            if "stage_seconds" in meta:  # made before the stages recorded their figures: left out
                runs.append({k: meta[k].value for k in OBSERVABILITY_KEYS if k in meta})
        health = stage_health(stage, runs, policy)
        if health is None:
            continue
        rows.append(health.row())
        if health.flags:
            flagged.append(f"{stage}: {'; '.join(health.flags)}")
    for line in flagged:
        context.log.warning(f"pipeline health: {line}")
    return dg.MaterializeResult(
        metadata={
            "stages": len(rows),
            "flagged": len(flagged),
            "flags": "\n".join(flagged) or "none",
            "stages_table": markdown_table(rows, max_rows=len(OBSERVED_STAGES)),
            "policy": (
                f"latest vs the median of up to {policy.history_runs} earlier runs (at least "
                f"{policy.min_history}); slower than {policy.max_seconds_ratio}x (stages over "
                f"{policy.min_seconds} s), larger than {policy.max_bytes_ratio}x"
            ),
        }
    )
