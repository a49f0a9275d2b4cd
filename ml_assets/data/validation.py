"""Data gates: the batch schema as code (pandera) and label joinability, with evidence."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ml_assets.data.batches import BatchWindow
from ml_assets.data.contract import DataContract, labels_to_binary

if TYPE_CHECKING:
    import pandera.pandas as pa


EXPECTATION_CASE_COLUMNS = [
    "column",
    "expectation",
    "value",
    "reference",
    "threshold",
    "p_value",
    "failing_rows",
    "detail",
]
"""The failure-case table of the statistical gates: one row per failed expectation."""


@dataclass(frozen=True)
class GateReport:
    """Outcome of one data gate on one batch: the decision and the evidence behind it."""

    check: str
    day: str
    passed: bool
    rows: int
    failing_rows: int
    value: float
    threshold: float
    failure_cases: pd.DataFrame = field(repr=False)
    failing_rows_sample: pd.DataFrame = field(repr=False)
    reason: str = ""


@cache
def _string_dtype():
    """pandera's `str` dtype, with its element check vectorised for object columns.

    pandera tests `isinstance(x, str)` element by element in Python. When pandas' C check finds
    every element a str or null, that answer is all True; otherwise pandera's own check runs and
    names the offending elements. Same verdicts and failure cases, a fraction of the time.
    """
    import dataclasses

    from pandas._libs import lib
    from pandera.engines import pandas_engine

    @dataclasses.dataclass(frozen=True)
    class String(pandas_engine.NpString):
        def check(self, pandera_dtype, data_container=None):
            if (
                data_container is not None
                and data_container.dtype == object
                and lib.is_string_array(data_container.to_numpy(), skipna=True)
            ):
                return pd.Series(True, index=data_container.index)
            return super().check(pandera_dtype, data_container)

    return String()


def batch_schema(contract: DataContract, include_target: bool = False) -> pa.DataFrameSchema:
    """The pandera schema of a raw batch: columns, types, nullability, ranges, categories, ids."""
    import pandera.pandas as pa

    str = _string_dtype()
    columns: dict[str, pa.Column] = {
        contract.id_column: pa.Column(str, nullable=False, unique=True),
        contract.timestamp_column: pa.Column("datetime64[ns]", nullable=False, coerce=True),
    }
    for name, spec in contract.numeric_columns.items():
        checks = []
        if spec.min is not None:
            checks.append(pa.Check.ge(spec.min))
        if spec.max is not None:
            checks.append(pa.Check.le(spec.max))
        # Integer columns with nulls arrive as floats, so every numeric column is judged as float.
        columns[name] = pa.Column("float64", checks=checks, nullable=spec.nullable, coerce=True)
    for name, allowed in contract.categorical_columns.items():
        columns[name] = pa.Column(str, checks=pa.Check.isin(allowed), nullable=False)
    if include_target:
        columns[contract.target_column] = pa.Column(
            checks=pa.Check.isin(contract.label_values), nullable=False
        )
    return pa.DataFrameSchema(columns, strict=True, name=contract.name)


def validate_batch(
    frame: pd.DataFrame,
    contract: DataContract,
    *,
    day: str,
    max_failing_row_share: float,
    sample_rows: int,
    include_target: bool = False,
) -> GateReport:
    """Judge one raw batch against the contract's schema (see `validate_window`)."""
    return validate_window(
        BatchWindow.single(day, frame),
        contract,
        max_failing_row_share=max_failing_row_share,
        sample_rows=sample_rows,
        include_target=include_target,
    )[day]


def validate_window(
    window: BatchWindow,
    contract: DataContract,
    *,
    max_failing_row_share: float,
    sample_rows: int,
    include_target: bool = False,
) -> dict[str, GateReport]:
    """Judge each batch of a window against the contract's schema, in one pandera pass.

    A structural failure (missing, extra or untypeable column) fails the whole batch; otherwise a
    batch fails when the share of its rows with any failing value exceeds `max_failing_row_share`.
    Every failure case names a row, so it belongs to one day; the days a failure could depend on
    the other days for (a structural failure, an id repeated in the window) are judged alone.
    """
    import pandera.errors as pa_errors

    schema = batch_schema(contract, include_target=include_target)
    try:
        schema.validate(window.frame, lazy=True)
    except pa_errors.SchemaErrors as errors:
        cases = errors.failure_cases.copy()
    else:
        cases = _no_cases()
    days = window.days
    located = cases["index"].notna().to_numpy() if len(cases) else np.zeros(0, dtype=bool)
    positions = cases["index"].to_numpy()[located].astype(np.int64)
    day_of = np.full(len(cases), -1)
    day_of[located] = window.day_of(positions)
    alone: set[int] = set()
    if len(days) > 1 and len(cases):
        if not located.all():
            alone = set(range(len(days)))
        else:
            alone = set(day_of[(cases["check"] == "field_uniqueness").to_numpy()].tolist())
    if len(days) > 1 and alone:
        kept = ~np.isin(day_of, list(alone))
        cases, day_of, located = cases[kept], day_of[kept], located[kept]
        positions = cases["index"].to_numpy()[located].astype(np.int64)
    if len(cases) and not window.index.equals(pd.RangeIndex(len(window.frame))):
        # Name rows by their index in their own batch, as judging the batch alone does.
        where = cases["index"].to_numpy()[located].astype(np.int64)
        if located.all():
            cases["index"] = window.index.take(where).to_numpy()
        else:
            labels = cases["index"].to_numpy(copy=True).astype(object)
            labels[located] = window.index.take(where).to_numpy()
            cases["index"] = labels
    reports = {}
    for i, day in enumerate(days):
        if i in alone:
            reports[day] = validate_batch(
                window.part(i),
                contract,
                day=day,
                max_failing_row_share=max_failing_row_share,
                sample_rows=sample_rows,
                include_target=include_target,
            )
            continue
        mine = day_of == i if len(days) > 1 else np.ones(len(cases), dtype=bool)
        if len(days) == 1:
            day_cases = cases
        elif mine.any():
            # pandera's own last step, on this day's cases in pandera's order before it.
            day_cases = (
                cases[mine]
                .sort_index()
                .reset_index(drop=True)
                .sort_values("schema_context", ascending=False)
            )
            if day_cases["column"].isin(list(contract.numeric_columns)).all():
                # Values of numeric columns only: typed as the batch alone would type them.
                day_cases["failure_case"] = day_cases["failure_case"].infer_objects()
        else:
            day_cases = _no_cases()
        reports[day] = _schema_report(
            window,
            i,
            day_cases,
            np.unique(positions[day_of[located] == i]) if len(positions) else positions,
            max_failing_row_share,
            sample_rows,
        )
    return reports


def _no_cases() -> pd.DataFrame:
    return pd.DataFrame(columns=["schema_context", "column", "check", "failure_case", "index"])


def _schema_report(
    window: BatchWindow,
    i: int,
    cases: pd.DataFrame,
    failing_positions: np.ndarray,
    max_failing_row_share: float,
    sample_rows: int,
) -> GateReport:
    rows = int(window.bounds[i + 1] - window.bounds[i])
    structural = cases[cases["index"].isna()] if len(cases) else cases
    failing = rows if len(structural) else len(failing_positions)
    share = failing / rows if rows else 1.0
    passed = rows > 0 and len(structural) == 0 and share <= max_failing_row_share
    if rows == 0:
        reason = "the batch has no rows"
    elif len(structural):
        checks = sorted(
            {f"{c}: {k}" for c, k in zip(structural["column"], structural["check"], strict=True)}
        )
        reason = "structural failure: " + "; ".join(checks[:5])
    elif failing:
        reason = f"{failing} of {rows} rows fail the schema (share {share:.4f})"
    else:
        reason = "every row conforms"
    sample = window.rows(failing_positions[:sample_rows]) if failing else window.empty()
    return GateReport(
        check="schema",
        day=window.days[i],
        passed=passed,
        rows=rows,
        failing_rows=failing,
        value=share,
        threshold=max_failing_row_share,
        failure_cases=cases,
        failing_rows_sample=sample,
        reason=reason,
    )


def check_label_join(
    batch: pd.DataFrame,
    labels: pd.DataFrame,
    contract: DataContract,
    *,
    day: str,
    min_join_rate: float,
    sample_rows: int,
) -> GateReport:
    """Label joinability both ways: batch rows with a label, and labels with a batch row.

    Also fails on label values outside the contract and on duplicate labelled ids, and when
    either side lacks the id column (nothing can be joined).
    """
    for side, frame in (("batch", batch), ("labels", labels)):
        if contract.id_column not in frame.columns:
            return GateReport(
                check="label_join",
                day=day,
                passed=False,
                rows=len(batch),
                failing_rows=len(batch),
                value=0.0,
                threshold=min_join_rate,
                failure_cases=pd.DataFrame(
                    {"problem": [f"{side} has no column {contract.id_column!r}"]}
                ),
                failing_rows_sample=batch.head(sample_rows),
                reason=f"the {side} has no id column {contract.id_column!r}",
            )
    ids = set(batch[contract.id_column].astype(str))
    label_ids = labels[contract.id_column].astype(str)
    labelled = set(label_ids)
    unlabelled = sorted(ids - labelled)
    orphans = sorted(labelled - ids)
    bad_values = labels[~labels[contract.target_column].isin(contract.label_values)]
    duplicates = labels[label_ids.duplicated(keep=False)]
    forward = 1 - len(unlabelled) / len(ids) if ids else 0.0
    backward = 1 - len(orphans) / len(labelled) if labelled else 0.0
    rate = min(forward, backward)
    passed = bool(ids) and rate >= min_join_rate and bad_values.empty and duplicates.empty
    cases = pd.concat(
        [
            pd.DataFrame({"problem": "batch row without label", "id": unlabelled}),
            pd.DataFrame({"problem": "label without batch row", "id": orphans}),
            pd.DataFrame(
                {
                    "problem": "label value outside contract",
                    "id": bad_values[contract.id_column].astype(str),
                }
            ),
            pd.DataFrame(
                {
                    "problem": "duplicate labelled id",
                    "id": duplicates[contract.id_column].astype(str),
                }
            ),
        ],
        ignore_index=True,
    )
    reason = (
        f"join rate {rate:.4f} (batch->labels {forward:.4f}, labels->batch {backward:.4f}), "
        f"{len(bad_values)} label values outside {contract.label_values}, "
        f"{len(duplicates)} duplicate labelled ids"
    )
    return GateReport(
        check="label_join",
        day=day,
        passed=passed,
        rows=len(ids),
        failing_rows=len(cases),
        value=rate,
        threshold=min_join_rate,
        failure_cases=cases,
        failing_rows_sample=cases.head(sample_rows),
        reason=reason,
    )


def _report_from_expectations(
    check: str,
    day: str,
    rows: int,
    frame: pd.DataFrame,
    results: list,
    sample_rows: int,
    reason_ok: str,
) -> GateReport:
    failed = [e for e in results if not e.passed]
    cases = pd.DataFrame(
        [
            {
                "column": e.column,
                "expectation": e.expectation,
                "value": e.value,
                "reference": e.reference,
                "threshold": e.threshold,
                "p_value": e.p_value,
                "failing_rows": e.failing_rows,
                "detail": e.detail,
            }
            for e in failed
        ],
        columns=EXPECTATION_CASE_COLUMNS,
    )
    index = pd.Index(sorted({i for e in failed for i in e.failing_index}))
    reason = (
        "; ".join(f"{e.column} {e.expectation} {e.detail}" for e in failed[:5])
        if failed
        else reason_ok
    )
    return GateReport(
        check=check,
        day=day,
        passed=not failed,
        rows=rows,
        failing_rows=len(index),
        value=float(len(failed)),
        threshold=0.0,
        failure_cases=cases,
        failing_rows_sample=frame.loc[frame.index.isin(index)].head(sample_rows),
        reason=reason,
    )


def check_statistics(
    frame: pd.DataFrame, profile, contract: DataContract, policy, *, day: str, sample_rows: int
) -> GateReport:
    """Statistical expectations of a batch against the reference profile (see core.expectations).

    With no reference profile yet (before the first training window) the gate passes and says so.
    """
    from ml_assets.data.expectations import check_against_profile

    if profile is None:
        return GateReport(
            "statistics",
            day,
            True,
            len(frame),
            0,
            0.0,
            0.0,
            pd.DataFrame(),
            frame.head(0),
            "no reference profile yet: the first training window sets it",
        )
    results = check_against_profile(frame, profile, contract, policy)
    return _report_from_expectations(
        "statistics",
        day,
        len(frame),
        frame,
        results,
        sample_rows,
        f"{len(results)} expectations hold against the reference ({profile.rows} rows)",
    )


def check_positive_rate(
    labels: pd.DataFrame, profile, contract: DataContract, policy, *, day: str
) -> GateReport:
    """The batch's positive-label rate against the reference rate, aware of the batch size."""
    from ml_assets.data.expectations import positive_rate_expectation

    if profile is None or profile.positive_rate is None:
        return GateReport(
            "positive_rate",
            day,
            True,
            len(labels),
            0,
            0.0,
            0.0,
            pd.DataFrame(),
            labels.head(0),
            "no reference profile yet: the first training window sets it",
        )
    result = positive_rate_expectation(
        labels[contract.target_column], contract.positive_label, profile.positive_rate, policy
    )
    return _report_from_expectations(
        "positive_rate",
        day,
        len(labels),
        labels,
        [result],
        0,
        f"positive rate {result.value:.4f} vs reference {result.reference:.4f}",
    )


def check_timestamps(
    frame: pd.DataFrame, contract: DataContract, *, day: str, sample_rows: int
) -> GateReport:
    """No record is stamped after the end of its batch's day (or unparseable)."""

    rows = len(frame)
    if contract.timestamp_column not in frame.columns:
        return GateReport(
            "timestamps",
            day,
            False,
            rows,
            rows,
            1.0,
            0.0,
            pd.DataFrame({"problem": [f"no column {contract.timestamp_column!r}"]}),
            frame.head(sample_rows),
            f"the batch has no {contract.timestamp_column!r} column",
        )
    bad = timestamps_outside_day(frame[contract.timestamp_column], day)
    count = int(bad.sum())
    cases = (
        frame.loc[bad.to_numpy(), [contract.id_column, contract.timestamp_column]]
        if contract.id_column in frame
        else frame.loc[bad.to_numpy()]
    )
    return GateReport(
        "timestamps",
        day,
        count == 0,
        rows,
        count,
        count / rows if rows else 0.0,
        0.0,
        cases,
        frame.loc[bad.to_numpy()].head(sample_rows),
        f"{count} record(s) stamped after {day}"
        if count
        else f"every timestamp is on or before {day}",
    )


def check_label_leakage(
    joined: pd.DataFrame,
    contract: DataContract,
    *,
    max_auc: float,
    day: str,
    max_rows: int | None = None,
) -> GateReport:
    """No single feature predicts the label almost perfectly on its own.

    A feature leaks when even the lower confidence bound of its AUC exceeds `max_auc`, so a
    20-row batch where a strong feature happens to rank perfectly does not fire. With
    `max_rows`, a seeded sample of that many rows estimates the AUCs (the bound uses its size).
    """
    from ml_assets.data.leakage import auc_lower_bound, single_feature_aucs

    if max_rows is not None and len(joined) > max_rows:
        joined = joined.sample(n=max_rows, random_state=0)
    aucs = single_feature_aucs(joined, contract)
    y = labels_to_binary(joined[contract.target_column], contract.positive_label)
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    bounds = {name: auc_lower_bound(auc, n_pos, n_neg) for name, auc in aucs.items()}
    leaks = {name: aucs[name] for name, low in bounds.items() if low > max_auc}
    cases = pd.DataFrame(
        [(k, v, bounds[k]) for k, v in sorted(aucs.items(), key=lambda kv: -kv[1])[:10]],
        columns=["feature", "single_feature_auc", "lower_bound"],
    )
    top = max(aucs.values()) if aucs else 0.5
    return GateReport(
        "leakage",
        day,
        not leaks,
        len(joined),
        0,
        top,
        max_auc,
        cases,
        joined.head(0),
        (
            f"feature(s) {sorted(leaks)} alone reach ROC AUC {max(leaks.values()):.4f}"
            if leaks
            else f"best single-feature ROC AUC {top:.4f}"
        ),
    )


def timestamps_outside_day(stamps: pd.Series, day: str) -> pd.Series:
    """Mask of timestamps after the end of the batch's day (from the future) or unparseable."""
    parsed = pd.to_datetime(stamps, errors="coerce")
    end = pd.Timestamp(dt.date.fromisoformat(day) + dt.timedelta(days=1))
    return parsed.isna() | (parsed >= end)
