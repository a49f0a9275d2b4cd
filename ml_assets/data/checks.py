"""Data gates on the raw batches, judged batch by batch before anything trains on them.

Each gate judges every batch of the run, records a verdict per batch in the gate ledger (which
training reads across runs) and, when its severity is ERROR, copies failed batches to the
quarantine with their evidence. The gates, their assets and descriptions are the table
data/gates.DATA_GATES; severity per gate comes from pipeline.yaml (validation.severity), else the
table's default.
"""

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from ml_assets.data.assets import batches_of_run
from ml_assets.data.batches import (
    BatchFiles,
    cached,
    contents_key,
    file_state,
    list_batch_files,
)
from ml_assets.data.gates import DATA_GATES, GateSpec
from ml_assets.data.ledger import (
    load_sketches,
    make_verdict,
    quarantine_batch,
    record_verdicts,
    save_sketches,
)
from ml_assets.data.validation import NO_REFERENCE, GateReport, as_pandas, error_report
from ml_assets.metadata import SHOWN_ROWS, markdown_table, significant
from ml_assets.resources import PipelineResource

if TYPE_CHECKING:  # polars, which the rules run on, is imported when a gate runs
    import pandas as pd
    import polars as pl

    from ml_assets.data.expectations import Profile
    from ml_assets.data.reading import RunData
    from ml_assets.data.redelivery import Sketch
    from ml_assets.data.rules import RuleSettings

Batches = Mapping[str, BatchFiles]
REDELIVERY_GATE = "raw_batches_not_redelivered"  # its rule keeps each judged batch's sketch
# A judge gives every batch of a run its report, in one pass over the run's batches.
Judge = Callable[[Batches, PipelineResource], dict[str, GateReport]]


def _profile(pipeline: PipelineResource) -> "Profile | None":
    from ml_assets.data.expectations import Profile

    path = pipeline.reference_profile_path
    return Profile.load(path) if path.exists() else None


def run_data(batches: Batches, pipeline: PipelineResource) -> "RunData":
    """The run's batches and labels, read once and shared by the six gates of the run."""
    from ml_assets.data.reading import read_run

    settings = pipeline.settings
    validation = settings.validation
    sample = (
        (validation.sample_fraction, validation.sample_seed)
        if validation.depth == "sample"
        else None
    )
    key = ("run", file_state(Path(settings.source)), sample, contents_key(batches))
    return cached(
        key,
        lambda: read_run(
            batches,
            settings.dataset,
            labels_in_batch=settings.dataset.labels_dir is None,
            sample=sample,
        ),
    )


def rule_settings(pipeline: PipelineResource) -> "RuleSettings":
    """The thresholds of the data rules, from pipeline.yaml and the reference profile (read once
    for the six gates of a run; again when either file or the batch folder changes)."""
    settings = pipeline.settings
    key = (
        "rule settings",
        file_state(Path(settings.source)),
        file_state(pipeline.reference_profile_path),
        file_state(Path(settings.dataset.features_dir)),
    )
    return cached(key, lambda: _rule_settings(pipeline))


def earlier_sketches(pipeline: PipelineResource) -> "tuple[Sketch, ...]":
    """The kept sketches of the delivered batches, for the re-delivery gate only (read again
    when a run keeps new ones or the batch folder changes)."""
    features_dir = Path(pipeline.settings.dataset.features_dir)
    key = ("sketches", file_state(pipeline.sketches_dir), file_state(features_dir))
    return cached(key, lambda: load_sketches(pipeline.sketches_dir, list_batch_files(features_dir)))


def _rule_settings(pipeline: PipelineResource) -> "RuleSettings":
    from ml_assets.data.expectations import StatisticalPolicy
    from ml_assets.data.rules import RuleSettings

    settings = pipeline.settings
    validation = settings.validation
    dataset = settings.dataset
    delivered = list_batch_files(dataset.features_dir) if dataset.labels_dir is not None else {}
    return RuleSettings(
        contract=dataset,
        policy=StatisticalPolicy(
            **validation.statistics.model_dump(exclude={"hard"}), hard=validation.statistics.hard
        ),
        profile=_profile(pipeline),
        max_failing_row_share=validation.max_failing_row_share,
        min_join_rate=validation.min_label_join_rate,
        max_single_feature_auc=validation.max_single_feature_auc,
        labels_in_batch=dataset.labels_dir is None,
        sample_rows=validation.failing_rows_sample,
        label_delay_days=validation.label_delay_days,
        newest_day=max(delivered) if delivered else None,
        min_redelivered_share=validation.min_redelivered_share,
        leakage_sample_rows=validation.batch_leakage_sample_rows,
    )


def rule_judge(name: str) -> Judge:
    """Gate `name`'s rule (data/rules.RULES) on the run's batches.

    A batch whose file cannot be read gets an "unreadable" verdict. When the rule raises on the
    run, each batch is judged alone, so that only the batch it raises on gets an error verdict
    (with the exception's message) and the others are judged as usual.
    """

    def judge(batches: Batches, pipeline: PipelineResource) -> dict[str, GateReport]:
        from ml_assets.data.rules import RULES, run_sketches

        rule, settings = RULES[name], rule_settings(pipeline)
        if name == REDELIVERY_GATE:  # compared with the batches judged in earlier runs
            settings = dataclasses.replace(settings, earlier_sketches=earlier_sketches(pipeline))
        run = run_data(batches, pipeline)
        reports = {
            day: error_report(name, day, f"unreadable: {why}")
            for day, why in run.unreadable.items()
        }
        if not run.days:
            return reports
        try:
            reports |= rule(run, settings)
            if name == REDELIVERY_GATE:  # later runs compare their batches with these
                save_sketches(pipeline.sketches_dir, run_sketches(run, settings.contract))
            return reports
        except Exception as error:  # isolate the batch(es) it raises on: judged alone below
            if len(run.days) == 1:
                return reports | {run.days[0]: _raised(name, run.days[0], error)}
        for day in run.days:
            try:
                reports |= rule(run_data({day: batches[day]}, pipeline), settings)
            except Exception as error:  # the verdict carries the message; the run goes on
                reports[day] = _raised(name, day, error)
        return reports

    return judge


def _raised(name: str, day: str, error: Exception) -> GateReport:
    return error_report(name, day, f"error: {type(error).__name__}: {error}"[:1000])


def judge_batches(
    name: str, context: dg.AssetCheckExecutionContext, pipeline: PipelineResource, judge: Judge
) -> dg.AssetCheckResult:
    """Run `judge` on the batches of the run, record verdicts, quarantine ERROR failures."""
    batches = batches_of_run(context.op_execution_context, pipeline)
    return judge_run(name, batches, pipeline, judge, run_id=context.run.run_id)


def judge_run(
    name: str, batches: Batches, pipeline: PipelineResource, judge: Judge, *, run_id: str
) -> dg.AssetCheckResult:
    """Judge `batches` with one gate: record each verdict, quarantine ERROR failures, summarise."""
    settings = pipeline.settings
    severity = settings.validation.severity_of(name)
    reports: list[GateReport] = []
    quarantined: dict[str, str] = {}
    judged = judge(batches, pipeline) if batches else {}
    policy = pipeline.gate_policy  # a hash of the settings: computed once per gate run
    verdicts, failed_blocking = [], []
    for batch in batches.values():
        report = judged[batch.day]
        # A batch the gate could not judge, or one beyond a hard bound, is blocked whatever
        # the gate's severity.
        blocking = "ERROR" if report.error or report.hard else severity
        verdicts.append(
            make_verdict(name, report, batch, run_id=run_id, severity=blocking, policy=policy)
        )
        if not report.passed and blocking == "ERROR":
            failed_blocking.append((batch, report))
        reports.append(report)
    # Every verdict of the run in one write of the gate's ledger file, then the quarantine.
    record_verdicts(pipeline.ledger_dir, name, verdicts)
    for batch, report in failed_blocking:
        quarantined[batch.day] = str(
            quarantine_batch(pipeline.quarantine_dir, name, batch, report, run_id)
        )
    failed = [r for r in reports if not r.passed]
    table = [
        {
            "day": r.day,
            "passed": r.passed,
            "rows": r.rows,
            "failing_rows": r.failing_rows,
            "value": round(r.value, 4),
            "threshold": r.threshold,
            "reason": r.reason,
        }
        for r in (failed or reports)
    ]
    cases = _first_rows([(r.day, r.failure_cases) for r in failed], SHOWN_ROWS)
    shown_sample = settings.validation.failing_rows_sample
    sample = _first_rows([(r.day, r.failing_rows_sample) for r in failed], shown_sample)
    if any(r.error or r.hard for r in failed):
        severity = "ERROR"  # an unjudged or hard-failing batch blocks, so the check does too
    decision = (
        "pass" if not failed else ("quarantine and block" if severity == "ERROR" else "flag (WARN)")
    )
    # A gate with nothing to compare against yet says so rather than "passed".
    unreferenced = bool(reports) and all(r.reason.startswith(NO_REFERENCE) for r in reports)
    if unreferenced:
        decision = "pass (nothing to compare with yet)"
    return dg.AssetCheckResult(
        passed=bool(reports) and not failed,
        severity=dg.AssetCheckSeverity(severity),
        description=(
            _cut(f"{len(failed)} of {len(reports)} batch(es) failed: {failed[0].reason}")
            if failed
            else f"{reports[0].reason} ({len(reports)} batch(es) not compared)"
            if unreferenced
            else f"all {len(reports)} batch(es) passed"
            if reports
            else "no batch to judge"
        ),
        metadata={
            "batches_checked": len(reports),
            "batches_failed": len(failed),
            "failed_days": ", ".join(r.day for r in failed) or "none",
            "value": significant(
                max((r.value for r in failed), default=0.0)
                if failed
                else max((r.value for r in reports), default=0.0)
            ),
            "threshold": reports[0].threshold if reports else None,
            "failing_rows": sum(r.failing_rows for r in reports),
            "decision": decision,
            "severity": severity,
            "validation_depth": settings.validation.depth
            + (
                f" ({settings.validation.sample_fraction:.0%}, "
                f"seed {settings.validation.sample_seed})"
                if settings.validation.depth == "sample"
                else ""
            ),
            "quarantine": dg.MetadataValue.json(quarantined),
            "verdicts": markdown_table(table),
            "failure_cases": markdown_table(cases, total=sum(len(r.failure_cases) for r in failed)),
            "failing_rows_sample": markdown_table(
                sample, max_rows=shown_sample, total=sum(len(r.failing_rows_sample) for r in failed)
            ),
        },
    )


def _first_rows(
    tables: list[tuple[str, "pd.DataFrame | pl.DataFrame"]], limit: int
) -> "pd.DataFrame | list":
    """The first `limit` rows of the failed batches' `tables` (day, table), stacked with their
    day: a table shows its first rows only, and a corrupted batch has tens of thousands of
    cases, so only the rows shown are converted and stacked (the rest are counted). No rows: an
    empty list, which a table shows as "(none)" as it does an empty frame (a new pandas frame
    costs about 0.2 ms, twice per gate on every passing run)."""
    if not tables:
        return []
    import pandas as pd

    parts, left = [], limit
    for day, table in tables:
        if left <= 0:
            break
        head = as_pandas(table.head(left))
        if len(head):
            parts.append(head.assign(day=day))
            left -= len(head)
    return pd.concat(parts) if parts else pd.DataFrame()


def _cut(text: str, limit: int = 1000) -> str:
    """`text` within `limit` characters; a cut says where the rest is."""
    if len(text) <= limit:
        return text
    return text[: limit - 40].rsplit(" ", 1)[0] + " … (the rest in the verdicts table)"


def batch_gate(spec: GateSpec, judge: Judge) -> dg.AssetChecksDefinition:
    """A blocking check on `spec.asset`, named and described by `spec`, that judges each batch
    of the run with `judge`."""

    @dg.asset_check(
        asset=spec.asset,
        name=spec.name,
        blocking=True,
        description=spec.description,
    )
    def _gate(
        context: dg.AssetCheckExecutionContext, pipeline: PipelineResource
    ) -> dg.AssetCheckResult:
        return judge_batches(spec.name, context, pipeline, judge)

    return _gate


JUDGES: dict[str, Judge] = {gate.name: rule_judge(gate.name) for gate in DATA_GATES}

# One check per gate of data/gates.DATA_GATES, in judging order.
BATCH_GATE_CHECKS = [batch_gate(gate, JUDGES[gate.name]) for gate in DATA_GATES]
