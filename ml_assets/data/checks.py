"""Data gates on the raw batches, judged batch by batch before anything trains on them.

Each gate judges every batch of the run, records a verdict per batch in the gate ledger (which
training reads across runs) and, when its severity is ERROR, copies failed batches to the
quarantine with their evidence. The gates, their assets and descriptions are the table
data/gates.DATA_GATES; severity per gate comes from pipeline.yaml (validation.severity), else the
table's default.
"""

import datetime as dt
from collections.abc import Callable, Mapping
from pathlib import Path

import dagster as dg
import pandas as pd

from ml_assets.data.assets import batches_of_run
from ml_assets.data.batches import (
    BatchFiles,
    batch_windows,
    cached,
    contents_key,
    file_state,
    join_labels,
    list_batch_files,
    read_batch,
    read_batches,
    read_labels,
)
from ml_assets.data.expectations import Profile, StatisticalPolicy
from ml_assets.data.gates import DATA_GATES, GateSpec
from ml_assets.data.ledger import quarantine_batch, record_verdict
from ml_assets.data.validation import (
    GateReport,
    check_label_join,
    check_label_leakage,
    check_positive_rate,
    check_statistics,
    check_timestamps,
    validate_window,
)
from ml_assets.metadata import markdown_table
from ml_assets.resources import PipelineResource

Batches = Mapping[str, BatchFiles]
# A judge gives every batch of a run its report, in one pass where the gate allows it.
Judge = Callable[[Batches, PipelineResource], dict[str, GateReport]]


def _rows(batch: BatchFiles, pipeline: PipelineResource) -> pd.DataFrame:
    """The batch's rows at the configured validation depth (every row, or a seeded sample)."""
    frame = read_batch(batch.features)
    validation = pipeline.settings.validation
    if validation.depth == "sample":
        frame = frame.sample(frac=validation.sample_fraction, random_state=validation.sample_seed)
    return frame


def _depth(pipeline: PipelineResource) -> tuple:
    validation = pipeline.settings.validation
    if validation.depth == "sample":
        return ("features", "sample", validation.sample_fraction, validation.sample_seed)
    return ("features", "full")


def _all_rows(batches: Batches, pipeline: PipelineResource) -> dict[str, pd.DataFrame]:
    """Every batch's rows at the validation depth, read once for all gates of the run."""
    return read_batches(batches, lambda b: _rows(b, pipeline), _depth(pipeline))


def _labels(batch: BatchFiles, pipeline: PipelineResource) -> pd.DataFrame:
    dataset = pipeline.settings.dataset
    return read_labels(
        batch, dataset.id_column, dataset.target_column, dataset.labels_dir is not None
    )


def _all_labels(batches: Batches, pipeline: PipelineResource) -> dict[str, pd.DataFrame]:
    dataset = pipeline.settings.dataset
    kind = ("labels", dataset.id_column, dataset.target_column, dataset.labels_dir is not None)
    return read_batches(batches, lambda b: _labels(b, pipeline), kind)


def _profile(pipeline: PipelineResource) -> Profile | None:
    path = pipeline.reference_profile_path
    return Profile.load(path) if path.exists() else None


def _policy(pipeline: PipelineResource) -> StatisticalPolicy:
    return StatisticalPolicy(**pipeline.settings.validation.statistics.model_dump())


def screen_run(batches: Batches, pipeline: PipelineResource):
    """What the one-pass screen proves about the run's batches, shared by the six gates."""
    from ml_assets.data.screen import ScreenSettings, screen_batches

    settings = pipeline.settings
    validation = settings.validation
    key = (
        "screen",
        file_state(Path(settings.source)),
        file_state(pipeline.reference_profile_path),
        contents_key(batches),
    )
    return cached(
        key,
        lambda: screen_batches(
            batches,
            ScreenSettings(
                contract=settings.dataset,
                policy=_policy(pipeline),
                profile=_profile(pipeline),
                max_failing_row_share=validation.max_failing_row_share,
                min_join_rate=validation.min_label_join_rate,
                max_single_feature_auc=validation.max_single_feature_auc,
                labels_in_batch=settings.dataset.labels_dir is None,
            ),
        ),
    )


def screened(name: str, reference: Judge) -> Judge:
    """`reference`, for the batches the screen has not already cleared for gate `name`.

    The screen (core.screen) only clears batches that provably pass; every other batch (a
    failure, a near miss, a file the screen does not read) is decided and explained by
    `reference`. At `sample` depth the reference judges everything: the screen reads whole files.
    """

    def judge(batches: Batches, pipeline: PipelineResource) -> dict[str, GateReport]:
        if pipeline.settings.validation.depth != "full" or not batches:
            return reference(batches, pipeline)
        cleared = screen_run(batches, pipeline).cleared(name)
        rest = {day: batch for day, batch in batches.items() if day not in cleared}
        return {**cleared, **(reference(rest, pipeline) if rest else {})}

    return judge


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
    for batch in batches.values():
        report = judged[batch.day]
        record_verdict(
            pipeline.ledger_dir,
            name,
            report,
            batch,
            run_id=run_id,
            severity=severity,
            policy=policy,
        )
        if not report.passed and severity == "ERROR":
            quarantined[batch.day] = str(
                quarantine_batch(pipeline.quarantine_dir, name, batch, report, run_id)
            )
        reports.append(report)
    failed = [r for r in reports if not r.passed]
    table = pd.DataFrame(
        [
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
    )
    cases = (
        pd.concat([r.failure_cases.assign(day=r.day) for r in failed]) if failed else pd.DataFrame()
    )
    sample = (
        pd.concat([r.failing_rows_sample.assign(day=r.day) for r in failed])
        if failed
        else pd.DataFrame()
    )
    decision = (
        "pass" if not failed else ("quarantine and block" if severity == "ERROR" else "flag (WARN)")
    )
    return dg.AssetCheckResult(
        passed=bool(reports) and not failed,
        severity=dg.AssetCheckSeverity(severity),
        description=(
            f"{len(failed)} of {len(reports)} batch(es) failed: {failed[0].reason}"[:500]
            if failed
            else f"all {len(reports)} batch(es) passed"
            if reports
            else "no batch to judge"
        ),
        metadata={
            "batches_checked": len(reports),
            "batches_failed": len(failed),
            "failed_days": ", ".join(r.day for r in failed) or "none",
            "value": max((r.value for r in failed), default=0.0)
            if failed
            else max((r.value for r in reports), default=0.0),
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
            "failure_cases": markdown_table(cases),
            "failing_rows_sample": markdown_table(
                sample, max_rows=settings.validation.failing_rows_sample
            ),
        },
    )


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


def _schema(batches: Batches, pipeline: PipelineResource) -> dict[str, GateReport]:
    """One pandera pass per window of batches sharing columns and dtypes."""
    settings = pipeline.settings
    reports: dict[str, GateReport] = {}
    windows = batch_windows(batches, lambda b: _rows(b, pipeline), _depth(pipeline))
    for window in windows:
        reports |= validate_window(
            window,
            settings.dataset,
            max_failing_row_share=settings.validation.max_failing_row_share,
            sample_rows=settings.validation.failing_rows_sample,
            include_target=settings.dataset.labels_dir is None,
        )
    return reports


def _timestamps(batches: Batches, pipeline: PipelineResource) -> dict[str, GateReport]:
    settings = pipeline.settings
    return {
        day: check_timestamps(
            frame, settings.dataset, day=day, sample_rows=settings.validation.failing_rows_sample
        )
        for day, frame in _all_rows(batches, pipeline).items()
    }


def _statistics(batches: Batches, pipeline: PipelineResource) -> dict[str, GateReport]:
    settings = pipeline.settings
    profile, policy = _profile(pipeline), _policy(pipeline)
    return {
        day: check_statistics(
            frame,
            profile,
            settings.dataset,
            policy,
            day=day,
            sample_rows=settings.validation.failing_rows_sample,
        )
        for day, frame in _all_rows(batches, pipeline).items()
    }


def _label_join(batches: Batches, pipeline: PipelineResource) -> dict[str, GateReport]:
    settings = pipeline.settings
    dataset = settings.dataset
    frames = read_batches(batches)  # every row, whatever the depth: ids must all join
    labels = _all_labels(batches, pipeline)
    reports = {}
    for day, batch in batches.items():
        frame = frames[day]
        if dataset.labels_dir is not None and batch.labels is None:
            newest = max(list_batch_files(dataset.features_dir))
            age = (dt.date.fromisoformat(newest) - dt.date.fromisoformat(day)).days
            if age < settings.validation.label_delay_days:
                reports[day] = GateReport(
                    "label_join",
                    day,
                    True,
                    len(frame),
                    0,
                    1.0,
                    settings.validation.min_label_join_rate,
                    pd.DataFrame(),
                    frame.head(0),
                    f"labels not due yet ({age} of {settings.validation.label_delay_days} days)",
                )
                continue
        reports[day] = check_label_join(
            frame,
            labels[day],
            dataset,
            day=day,
            min_join_rate=settings.validation.min_label_join_rate,
            sample_rows=settings.validation.failing_rows_sample,
        )
    return reports


def _positive_rate(batches: Batches, pipeline: PipelineResource) -> dict[str, GateReport]:
    profile, policy = _profile(pipeline), _policy(pipeline)
    return {
        day: check_positive_rate(labels, profile, pipeline.settings.dataset, policy, day=day)
        for day, labels in _all_labels(batches, pipeline).items()
    }


def _leakage(batches: Batches, pipeline: PipelineResource) -> dict[str, GateReport]:
    settings = pipeline.settings
    labels = _all_labels(batches, pipeline)
    # Repeated ids are the schema and label-join gates' failures; leakage is measured on the
    # rows whose id occurs once on each side, so they cannot make the one-to-one join raise.
    key = settings.dataset.id_column
    reports = {}
    for day, frame in _all_rows(batches, pipeline).items():
        if key not in frame.columns:
            reports[day] = GateReport(
                "leakage",
                day,
                False,
                len(frame),
                len(frame),
                1.0,
                settings.validation.max_single_feature_auc,
                pd.DataFrame({"problem": [f"batch has no column {key!r}"]}),
                frame.head(0),
                f"the batch has no id column {key!r}: its labels cannot be joined",
            )
            continue
        reports[day] = check_label_leakage(
            join_labels(
                frame.drop_duplicates(subset=[key], keep=False),
                labels[day].drop_duplicates(subset=[key], keep=False),
                settings.dataset,
                day,
            ),
            settings.dataset,
            max_auc=settings.validation.max_single_feature_auc,
            day=day,
        )
    return reports


# The reference judges decide and explain; the gates run them behind the screen. Every gate of
# the table has exactly one (a test holds both sides to it).
REFERENCE_JUDGES: dict[str, Judge] = {
    "raw_batches_match_schema": _schema,
    "raw_batches_timestamps_not_in_future": _timestamps,
    "raw_batches_match_reference_profile": _statistics,
    "raw_labels_join_raw_batches": _label_join,
    "raw_labels_positive_rate_matches_reference": _positive_rate,
    "raw_labels_not_leaked_into_features": _leakage,
}
JUDGES: dict[str, Judge] = {
    gate.name: screened(gate.name, REFERENCE_JUDGES[gate.name]) for gate in DATA_GATES
}

# One check per gate of data/gates.DATA_GATES, in judging order.
BATCH_GATE_CHECKS = [batch_gate(gate, JUDGES[gate.name]) for gate in DATA_GATES]
