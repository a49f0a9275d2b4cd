"""Data gates on the raw batches: blocking ERROR checks that stop training on bad data.

Each check judges every batch of the run, records a verdict per batch in the gate ledger (which
training reads across runs) and copies failed batches to the quarantine with their evidence.
"""

from collections.abc import Callable

import dagster as dg
import pandas as pd

from ml_assets.assets.common import batches_of_run, markdown_table
from ml_assets.assets.ingestion import raw_batches, raw_labels
from ml_assets.core.batches import BatchFiles, read_batch, read_labels
from ml_assets.core.ledger import quarantine_batch, record_verdict
from ml_assets.core.validation import GateReport, check_label_join, validate_batch
from ml_assets.resources import PipelineResource


def _judge_batches(
    context: dg.AssetCheckExecutionContext,
    pipeline: PipelineResource,
    judge: Callable[[BatchFiles], GateReport],
) -> dg.AssetCheckResult:
    run_id = context.run.run_id
    reports: list[GateReport] = []
    quarantined: dict[str, str] = {}
    for batch in batches_of_run(context.op_execution_context, pipeline).values():
        report = judge(batch)
        record_verdict(pipeline.ledger_dir, report, batch, run_id)
        if not report.passed:
            quarantined[batch.day] = str(
                quarantine_batch(pipeline.quarantine_dir, batch, report, run_id)
            )
        reports.append(report)
    failed = [r for r in reports if not r.passed]
    table = pd.DataFrame(
        [
            {
                "day": r.day,
                "passed": r.passed,
                "rows": r.rows,
                "failing": r.failing_rows,
                "value": round(r.value, 4),
                "reason": r.reason,
            }
            for r in (failed or reports)
        ]
    )
    sample = (
        pd.concat([r.failing_rows_sample.assign(day=r.day) for r in failed])
        if failed
        else pd.DataFrame()
    )
    threshold = reports[0].threshold if reports else None
    return dg.AssetCheckResult(
        passed=bool(reports) and not failed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{len(failed)} of {len(reports)} batch(es) failed and were quarantined"
            if failed
            else f"all {len(reports)} batch(es) passed"
            if reports
            else "no batch to judge"
        ),
        metadata={
            "batches_checked": len(reports),
            "batches_failed": len(failed),
            "failed_days": ", ".join(r.day for r in failed) or "none",
            "failing_rows": sum(r.failing_rows for r in reports),
            "threshold": threshold,
            "decision": "quarantine and block" if failed else "pass",
            "quarantine": dg.MetadataValue.json(quarantined),
            "verdicts": markdown_table(table),
            "failing_rows_sample": markdown_table(
                sample, max_rows=pipeline.settings.validation.failing_rows_sample
            ),
        },
    )


@dg.asset_check(asset=raw_batches, blocking=True)
def raw_batches_match_schema(
    context: dg.AssetCheckExecutionContext, pipeline: PipelineResource
) -> dg.AssetCheckResult:
    """Each batch has the contract's columns, types, nullability, ranges, categories, unique ids."""
    settings = pipeline.settings
    include_target = settings.dataset.labels_dir is None

    def judge(batch: BatchFiles) -> GateReport:
        return validate_batch(
            read_batch(batch.features),
            settings.dataset,
            day=batch.day,
            max_failing_row_share=settings.validation.max_failing_row_share,
            sample_rows=settings.validation.failing_rows_sample,
            include_target=include_target,
        )

    return _judge_batches(context, pipeline, judge)


@dg.asset_check(asset=raw_labels, blocking=True, additional_deps=[raw_batches])
def raw_labels_join_raw_batches(
    context: dg.AssetCheckExecutionContext, pipeline: PipelineResource
) -> dg.AssetCheckResult:
    """Every batch row has a label and every label has a batch row; label values are allowed."""
    settings = pipeline.settings
    dataset = settings.dataset

    def judge(batch: BatchFiles) -> GateReport:
        frame = read_batch(batch.features)
        labels = read_labels(
            batch, dataset.id_column, dataset.target_column, dataset.labels_dir is not None
        )
        return check_label_join(
            frame,
            labels,
            dataset,
            day=batch.day,
            min_join_rate=settings.validation.min_label_join_rate,
            sample_rows=settings.validation.failing_rows_sample,
        )

    return _judge_batches(context, pipeline, judge)
