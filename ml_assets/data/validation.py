"""The data gates' shared vocabulary: a gate's report on one batch, and the batch schema as code
(pandera). The rules that fill the reports are data/rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ml_assets.data.contract import DataContract

if TYPE_CHECKING:
    import pandas as pd
    import pandera.polars as pa


EXPECTATION_CASE_COLUMNS = [
    "column",
    "expectation",
    "value",
    "reference",
    "threshold",
    "hard_bound",
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
    # The batch could not be judged (its file cannot be read, or the rule raised on it): the
    # verdict blocks and quarantines whatever the gate's severity.
    error: bool = False
    # The failure goes beyond a hard bound (validation.statistics.hard): it blocks and
    # quarantines whatever the gate's severity.
    hard: bool = False


def error_report(check: str, day: str, problem: str) -> GateReport:
    """The verdict of a gate that could not judge a batch: failed, with `problem` as its cause."""
    import pandas as pd

    return GateReport(
        check,
        day,
        False,
        0,
        0,
        1.0,
        0.0,
        pd.DataFrame({"problem": [problem]}),
        pd.DataFrame(),
        problem,
        error=True,
    )


def batch_schema(
    contract: DataContract,
    include_target: bool = False,
    *,
    unique_within: str | None = None,
    carried: tuple[str, ...] = (),
) -> pa.DataFrameSchema:
    """The pandera schema (polars backend) of a raw batch as data/reading casts it: columns,
    types, nullability, ranges, categories and ids.

    `unique_within` names the column of the stacked frame that tells batches apart: ids must be
    unique within each batch (the check is added only when a repeat is known to exist, since it
    costs a group-by). `carried` names bookkeeping columns the frame also holds.
    """
    import pandera.polars as pa
    import polars as pl

    id_checks = []
    if unique_within is not None:
        id_checks.append(
            pa.Check(
                lambda data: data.lazyframe.select(
                    ~pl.col(data.key).is_duplicated().over(unique_within)
                ),
                name="field_uniqueness",
                error="the id occurs more than once in its batch",
            )
        )
    columns: dict[str, pa.Column] = {
        **{name: pa.Column(nullable=True) for name in carried},  # bookkeeping: nothing to check
        contract.id_column: pa.Column(pl.String, checks=id_checks, nullable=False),
        contract.timestamp_column: pa.Column(pl.Datetime("ns"), nullable=False),
    }
    for name, spec in contract.numeric_columns.items():
        checks = []
        if spec.min is not None:
            checks.append(pa.Check.ge(spec.min))
        if spec.max is not None:
            checks.append(pa.Check.le(spec.max))
        # Integer columns with nulls arrive as floats, so every numeric column is judged as float.
        columns[name] = pa.Column(pl.Float64, checks=checks, nullable=spec.nullable)
    for name, allowed in contract.categorical_columns.items():
        columns[name] = pa.Column(pl.String, checks=pa.Check.isin(allowed), nullable=False)
    if include_target:
        columns[contract.target_column] = pa.Column(
            checks=pa.Check.isin(contract.label_values), nullable=False
        )
    return pa.DataFrameSchema(columns, strict=True, name=contract.name)
