"""The data gates' shared vocabulary: a gate's report on one batch, and the batch schema as code
(pandera). The rules that fill the reports are data/rules."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ml_assets.data.contract import DataContract

if TYPE_CHECKING:
    import pandas as pd
    import pandera.polars as pa
    import polars as pl


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

NO_REFERENCE = "no reference profile yet"
"""How a statistical gate's verdict starts when there was nothing to compare the batch with."""


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
    # A pandas frame, or a polars one where the rule finds its cases in polars (the schema gate:
    # a corrupted batch has tens of thousands, written to the quarantine without conversion).
    # as_pandas(...) gives a pandas frame either way.
    failure_cases: pd.DataFrame | pl.DataFrame = field(repr=False)
    failing_rows_sample: pd.DataFrame = field(repr=False)
    reason: str = ""
    # The batch could not be judged (its file cannot be read, or the rule raised on it): the
    # verdict blocks and quarantines whatever the gate's severity.
    error: bool = False
    # The failure goes beyond a hard bound (validation.statistics.hard): it blocks and
    # quarantines whatever the gate's severity.
    hard: bool = False


def as_pandas(cases: pd.DataFrame | pl.DataFrame) -> pd.DataFrame:
    """A report's failure cases (or their first rows) as a pandas frame: integers as nullable
    integers (a schema case names no row when a column is wrong)."""
    import pandas as pd
    import pyarrow as pa

    if isinstance(cases, pd.DataFrame):
        return cases
    return cases.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)


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

    Built once per contract and arguments (the contract is frozen; its JSON is the key): pandera
    copies every column as it builds a schema, 2.6 ms per build of the demo's schema against
    0.02 ms for the key (a 2-core AMD EPYC, 2026-12-08), paid by every schema gate and every
    scored batch. pandera's validate copies the columns it runs and leaves the schema as it
    was, so one object serves every call; nobody may change it.
    """
    fields = set(DataContract.model_fields)  # a settings class may extend the contract
    return _batch_schema(
        contract.model_dump_json(include=fields), include_target, unique_within, carried
    )


@functools.lru_cache(maxsize=32)
def _batch_schema(
    contract_json: str, include_target: bool, unique_within: str | None, carried: tuple[str, ...]
) -> pa.DataFrameSchema:
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
    contract = DataContract.model_validate_json(contract_json)
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
        columns[name] = pa.Column(pl.String, checks=_isin(allowed), nullable=False)
    if include_target:
        columns[contract.target_column] = pa.Column(
            checks=pa.Check.isin(contract.label_values), nullable=False
        )
    return pa.DataFrameSchema(columns, strict=True, name=contract.name)


_MAX_COMPARED_CATEGORIES = 16


def _isin(allowed: list[str]) -> pa.Check:
    """pandera's `Check.isin(allowed)` (same name, error and failure cases), which on a text
    column compares each value with the few allowed ones instead of looking it up in a hash
    set: a comparison of polars' inline string prefixes costs a fraction of a hash (measured
    over 1,000,000 rows of the six demo categories: 29 ms against 68 ms). A column of another
    type is checked as pandera checks it (the same result, or the same error, for the
    evidence).
    """
    import pandera.polars as pa
    import polars as pl

    # Past a few dozen values one hash beats a comparison per allowed value.
    compare = 0 < len(allowed) <= _MAX_COMPARED_CATEGORIES

    def allowed_only(data, allowed_values: frozenset) -> pl.LazyFrame:
        column = pl.col(data.key)
        if compare and data.lazyframe.collect_schema()[data.key] == pl.String:
            return data.lazyframe.select(pl.any_horizontal([column == v for v in allowed]))
        return data.lazyframe.select(column.is_in(allowed_values))  # pandera's own

    # Built as pandera builds Check.isin: the same set of values, passed (and copied) the same
    # way, so that even an error naming them names them in the same order.
    return pa.Check(
        allowed_only,
        name="isin",
        error=f"isin({allowed})",
        statistics={"allowed_values": allowed},
        determined_by_unique=True,
        allowed_values=frozenset(allowed),
    )


# --- the schema gate's findings in people's words --------------------------------------------

_EXPECTED_KIND = {"Float64": "numbers", "String": "text", "Datetime": "timestamps"}
_MAX_PROBLEMS = 8


def schema_problems(
    structural: pd.DataFrame,
    row_cases: pl.DataFrame | None,
    values_of: Callable[[str], Any],
    rows: int,
) -> list[str]:
    """What is wrong with a batch, one sentence per problem, from pandera's failure cases.

    `structural` holds the cases that name no row (missing, extra or mistyped columns),
    `row_cases` the batch's row-level cases (polars, as pandera gives them), `values_of(column)`
    the batch's values of a column (a polars Series) for counting what a mistyped column holds,
    `rows` the batch's row count. A mistyped column is reported as a type problem only: the
    range and category checks pandera could not run on it are not repeated as failures.
    """
    import difflib
    import re

    problems: list[str] = []
    checks = list(
        zip(structural["column"], structural["check"], structural["failure_case"], strict=True)
    )
    missing = [str(case) for _, check, case in checks if check == "column_in_dataframe"]
    extra = [str(case) for _, check, case in checks if check == "column_in_schema"]
    for name in missing:
        close = difflib.get_close_matches(name, extra, n=1, cutoff=0.5)
        if close:
            extra.remove(close[0])
            problems.append(f"column {name} missing; found {close[0]}")
        else:
            problems.append(f"column {name} missing")
    problems += [f"column {name} is not in the contract" for name in extra]
    retyped = set()
    for column, check, case in checks:
        found = re.fullmatch(r"dtype\('(\w+)(?:\(.*\))?'\)", str(check))
        if found is None:
            continue
        retyped.add(column)
        expected = _EXPECTED_KIND.get(found.group(1), found.group(1))
        problems.append(_type_problem(column, expected, str(case), values_of(column), rows))
    for column, check, case in checks:
        if check in ("column_in_dataframe", "column_in_schema") or column in retyped:
            continue
        if not re.fullmatch(r"dtype\(.*\)", str(check)):
            problems.append(f"{column}: {check} ({_short(case)})")
    if row_cases is not None and len(row_cases):
        for column, check, n, first, kinds, distinct in _row_groups(row_cases):
            if column in retyped:
                continue
            problems.append(_row_problem(str(column), str(check), n, first, kinds, distinct))
    if len(problems) > _MAX_PROBLEMS:
        rest = len(problems) - _MAX_PROBLEMS
        problems = [*problems[:_MAX_PROBLEMS], f"and {rest} more problem(s) in failure_cases"]
    return problems


def _row_groups(cases: pl.DataFrame) -> list[tuple]:
    """Per (column, check), in the order of their first case: how many cases, the first one,
    the first four distinct values as text and how many there are (a missing one as "None")."""
    import polars as pl

    text = pl.col("failure_case").cast(pl.String).fill_null("None")
    return (
        cases.group_by("column", "check", maintain_order=True)
        .agg(
            pl.len().alias("n"),
            pl.col("failure_case").first().alias("first"),
            text.unique(maintain_order=True).head(4).alias("kinds"),
            text.n_unique().alias("distinct"),
        )
        .rows()
    )


def _type_problem(column: str, expected: str, found: str, values: Any, rows: int) -> str:
    import polars as pl

    if expected == "numbers" and values is not None and values.dtype == pl.String:
        present = values.drop_nulls()
        words = present.filter(present.cast(pl.Float64, strict=False).is_null())
        if len(words):
            example = _short(words[0])
            return (
                f"{column}: {len(words):,} of {rows:,} values are text, expected numbers "
                f"(e.g. {example})"
            )
        return f"{column}: numbers stored as text, expected a numeric column"
    return f"{column}: {found} values, expected {expected}"


def _row_problem(
    column: str, check: str, n: int, first: Any, kinds: list[str], distinct: int
) -> str:
    """One sentence for the `n` cases of a row-level check: `first` is the first failing value,
    `kinds` the first distinct ones as text (four at most), `distinct` how many there are."""
    import re

    example = _short(first)
    bound = re.search(r"\(([-+0-9.e]+)\)$", check)
    for prefix, side in (
        ("greater_than_or_equal_to", "below the minimum"),
        ("less_than", "above the maximum"),
    ):
        if check.startswith(prefix) and bound:
            return f"{column}: {n:,} values {side} {float(bound.group(1)):g} (e.g. {first})"
    if check.startswith("isin("):
        return (
            f"{column}: {n:,} values outside the contract's categories "
            f"({', '.join(repr(v) for v in kinds[:3])}{', …' if len(kinds) > 3 else ''})"
        )
    if check == "not_nullable":
        return f"{column}: {n:,} missing values; the contract does not allow nulls"
    if "more than once" in check or check == "field_uniqueness":
        return f"{distinct:,} ids appear more than once ({n:,} rows, e.g. {example})"
    return f"{column}: {n:,} values fail {check} (e.g. {example})"


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
