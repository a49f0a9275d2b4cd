"""Data gates: the batch schema as code (pandera) and label joinability, with evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from ml_assets.core.contract import DataContract

if TYPE_CHECKING:
    import pandera.pandas as pa


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


def batch_schema(contract: DataContract, include_target: bool = False) -> pa.DataFrameSchema:
    """The pandera schema of a raw batch: columns, types, nullability, ranges, categories, ids."""
    import pandera.pandas as pa

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
    """Judge one raw batch against the contract's schema.

    A structural failure (missing, extra or untypeable column) fails the whole batch; otherwise the
    batch fails when the share of rows with any failing value exceeds `max_failing_row_share`.
    """
    import pandera.errors as pa_errors

    schema = batch_schema(contract, include_target=include_target)
    rows = len(frame)
    try:
        schema.validate(frame, lazy=True)
    except pa_errors.SchemaErrors as errors:
        cases = errors.failure_cases.copy()
    else:
        cases = pd.DataFrame(columns=["schema_context", "column", "check", "failure_case", "index"])
    structural = cases[cases["index"].isna()] if len(cases) else cases
    row_index = pd.Index(cases["index"].dropna().unique()) if len(cases) else pd.Index([])
    failing = rows if len(structural) else len(row_index)
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
    sample = frame.loc[frame.index.isin(row_index)].head(sample_rows) if failing else frame.head(0)
    return GateReport(
        check="schema",
        day=day,
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
