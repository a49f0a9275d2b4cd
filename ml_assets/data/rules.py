"""The seven per-batch data-gate rules, each written once, over the run's batches read once.

Each rule is one vectorised decision over a per-day table of statistics (data/reading stacks
the batches; `day_statistics` takes every per-day aggregate the rules decide on in one group-by
per stack). The evidence a person reads (failure cases, the failing rows, p-values) is built
only for the days that fail, from the same quantities. The schema rule is pandera's (polars
backend) on the stacked frame; the statistical rules are in data/expectations.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import polars as pl

from ml_assets.data.batches import BatchFileError
from ml_assets.data.contract import DataContract
from ml_assets.data.engine import engine_for
from ml_assets.data.expectations import (
    Profile,
    StatisticalPolicy,
    auc_lower_bounds,
    category_shift,
    fires,
    mean_shift,
    rate_excess,
    rate_shift,
    std_ratio,
)
from ml_assets.data.reading import BAD, DAY, POSITIVE, ROW, RunData, Stack
from ml_assets.data.redelivery import Sketch, all_distinct, judge_redelivery, sketches
from ml_assets.data.sorting import sorted_copy
from ml_assets.data.validation import (
    EXPECTATION_CASE_COLUMNS,
    NO_REFERENCE,
    GateReport,
    batch_schema,
    schema_problems,
)

SCHEMA_CASE_COLUMNS = ["schema_context", "column", "check", "failure_case", "index"]


@dataclass(frozen=True)
class RuleSettings:
    """The thresholds the rules decide with (pipeline.yaml: dataset and validation)."""

    contract: DataContract
    policy: StatisticalPolicy
    profile: Profile | None
    max_failing_row_share: float
    min_join_rate: float
    max_single_feature_auc: float
    labels_in_batch: bool
    sample_rows: int
    label_delay_days: int = 0
    newest_day: str | None = None  # the newest batch delivered (labels may lag it)
    min_redelivered_share: float = 0.9
    leakage_sample_rows: int = 5000  # per batch, seeded
    # Sketches of the batches judged before this run (data/redelivery), whose files remain.
    earlier_sketches: tuple[Sketch, ...] = ()


_EMPTY: dict[tuple[str, ...], pd.DataFrame] = {}


def _empty(columns: list[str]) -> pd.DataFrame:
    """An empty evidence table, one per column set, shared by every passing report (read-only:
    a run judges thousands of passing batches, and their evidence is never shown)."""
    key = tuple(columns)
    if key not in _EMPTY:
        _EMPTY[key] = pd.DataFrame(columns=columns)
    return _EMPTY[key]


def _as_evidence(rows: pl.DataFrame) -> pd.DataFrame:
    """Stacked rows as a person reads them: the batch's columns, named by their row in the file.

    The bookkeeping columns are dropped before the conversion and the index set after it: half
    the time of converting them and then re-indexing (set_index and drop copy the frame)."""
    evidence = rows.drop(ROW, DAY).to_pandas()
    evidence.index = rows[ROW].to_numpy()
    return evidence


def _rows_of(
    stack: Stack, i: int, positions: np.ndarray | None = None, *, limit: int
) -> pd.DataFrame:
    """The first `limit` rows of day `i` of `stack` (of all its rows, or of those at stacked
    `positions`), named by their row in their own batch."""
    if positions is None:
        return _as_evidence(stack.day(i).head(limit))
    return _as_evidence(stack.frame[np.asarray(positions[:limit], dtype=np.int64)])


def _end_of(day: str) -> dt.datetime:
    """The first instant after the batch's day: a record stamped from then on is from the future."""
    return dt.datetime.combine(dt.date.fromisoformat(day) + dt.timedelta(days=1), dt.time())


def _all_distinct(values: pl.Series) -> bool:
    """Every value present and distinct (by 64-bit hash: distinct hashes, distinct values)."""
    return values.null_count() == 0 and all_distinct(values.hash().to_numpy())


def _stack_ids_distinct(stack: Stack, id_: str) -> bool:
    """Every id of the stack present and distinct across its days (hashed once per stack)."""
    if "ids distinct" not in stack.memo:
        stack.memo["ids distinct"] = _all_distinct(stack.frame[id_])
    return stack.memo["ids distinct"]


# --- one pass: per-day statistics -------------------------------------------------------------


def _distinct_per_day(stack: Stack, column: str) -> np.ndarray:
    """Per day of the stack: every value of `column` (the id) present and distinct in its day."""
    frame, n_days = stack.frame, len(stack.days)
    if _stack_ids_distinct(stack, column):
        return np.ones(n_days, dtype=bool)  # distinct hashes: distinct in the whole stack
    stats = frame.group_by(DAY).agg(
        ((pl.col(column).n_unique() == pl.len()) & (pl.col(column).null_count() == 0)).alias("u")
    )
    distinct = np.zeros(n_days, dtype=bool)
    distinct[stats[DAY].to_numpy()] = stats["u"].to_numpy()
    return distinct


def _numbers(stack: Stack, name: str) -> pl.Expr:
    """A numeric column as numbers: text that is not a number reads as missing."""
    column = pl.col(name)
    return (
        column if stack.frame.schema[name] == pl.Float64 else column.cast(pl.Float64, strict=False)
    )


def _stamps(stack: Stack, name: str) -> pl.Expr | None:
    """The timestamp column as naive Datetime(ns) (zoned stamps in UTC); None if not a time."""
    dtype = stack.frame.schema[name]
    if not isinstance(dtype, pl.Datetime):
        return None
    column = pl.col(name)
    if dtype.time_zone is not None:
        column = column.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return column.cast(pl.Datetime("ns"))


def day_statistics(stack: Stack, settings: RuleSettings) -> dict[str, np.ndarray]:
    """Every per-day aggregate the rules decide on, for the days of `stack` (cached on it)."""
    if "statistics" in stack.memo:
        return stack.memo["statistics"]
    contract, profile = settings.contract, settings.profile
    columns = stack.frame.columns
    exprs = []
    stamps = (
        _stamps(stack, contract.timestamp_column) if contract.timestamp_column in columns else None
    )
    if stamps is not None:
        # Within a day's group: the end of that day, one value.
        ends = pl.Series([_end_of(d) for d in stack.days], dtype=pl.Datetime("ns"))
        end = pl.lit(ends).gather(pl.col(DAY).first())
        late = stamps.is_null() | (stamps >= end)
        exprs.append(late.sum().alias("ts|late"))
    elif contract.timestamp_column in columns:
        exprs.append(pl.len().alias("ts|late"))  # no value of that column is a time
    for name, ref in profile.numeric.items() if profile else []:
        if name not in columns:
            continue
        value = _numbers(stack, name)
        exprs += [
            value.count().alias(f"{name}|count"),
            value.mean().alias(f"{name}|mean"),
            value.std(ddof=1).alias(f"{name}|std"),
            ((value < ref.q_low) | (value > ref.q_high)).sum().alias(f"{name}|outside"),
        ]
    n_days = len(stack.days)
    table = stack.frame.group_by(DAY).agg(pl.len().alias("rows"), *exprs)
    stats: dict[str, np.ndarray] = {}
    at = table[DAY].to_numpy()
    for column in table.columns:
        if column == DAY:
            continue
        values = np.full(n_days, np.nan)
        values[at] = table[column].cast(pl.Float64).to_numpy()
        stats[column] = values
    stats["rows"] = stack.rows.astype(np.float64)
    if contract.id_column in columns:
        stats["ids_distinct"] = _distinct_per_day(stack, contract.id_column)
    stack.memo["statistics"] = stats
    return stats


def category_counts(stack: Stack, names: list[str]) -> dict[str, pl.DataFrame]:
    """(DAY, category as text, count) of each categorical column of `names`; null categories
    included (cached on the stack)."""

    def counts(name: str) -> pl.LazyFrame:
        column = pl.col(name)
        if stack.frame.schema[name] != pl.String:
            column = column.cast(pl.String, strict=False)
        return stack.frame.lazy().group_by(DAY, column.alias("category")).len()

    todo = [n for n in names if f"categories|{n}" not in stack.memo]
    # In one collect: the group-bys run side by side (a single one leaves a core idle much of
    # the time; measured on 1,000,000 rows of 6 columns: 59 ms against 138 ms one by one).
    tables = pl.collect_all([counts(n) for n in todo]) if todo else []
    for name, table in zip(todo, tables, strict=True):
        stack.memo[f"categories|{name}"] = table
    return {n: stack.memo[f"categories|{n}"] for n in names}


# --- schema -----------------------------------------------------------------------------------


def judge_schema(run: RunData, settings: RuleSettings) -> dict[str, GateReport]:
    """Columns, types, nullability, ranges, categories and per-batch unique ids (pandera).

    A structural failure (missing, extra or mistyped column) fails every batch of the stack;
    otherwise a batch fails when the share of its rows with any failing value exceeds the
    tolerated share.
    """
    import pandera.errors as pa_errors

    reports: dict[str, GateReport] = {}
    contract = settings.contract
    for stack in run.stacks:
        distinct = day_statistics(stack, settings).get("ids_distinct")
        repeated = distinct is not None and not distinct.all()
        schema = batch_schema(
            contract,
            include_target=settings.labels_in_batch,
            unique_within=DAY if repeated else None,
            carried=(DAY, ROW),
        )
        try:
            schema.validate(stack.frame, lazy=True)
        except pa_errors.SchemaErrors as errors:
            cases = errors.failure_cases
        else:
            cases = None
        reports |= _schema_reports(stack, cases, settings)
    return reports


def _schema_reports(
    stack: Stack, cases: pl.DataFrame | None, settings: RuleSettings
) -> dict[str, GateReport]:
    n_days = len(stack.days)
    structural = None
    failing = np.zeros(n_days, dtype=np.int64)
    located = None
    if cases is not None and len(cases):
        cases = cases.select(SCHEMA_CASE_COLUMNS).with_columns(
            pl.col("index").cast(pl.Int64),
            # A few labels repeated on every case: as categories, a corrupted batch's 26,000
            # cases are written to the quarantine in 4 ms instead of 10 ms.
            pl.col("schema_context", "column", "check").cast(pl.Categorical),
        )
        structural = cases.filter(pl.col("index").is_null())
        structural = structural if len(structural) else None
        located = cases.filter(pl.col("index").is_not_null())
        if len(located):
            index = located["index"].to_numpy()
            located = located.with_columns(
                pl.Series("__i", stack.day_of(index), dtype=pl.Int64),
                stack.frame[ROW].gather(index).alias("index"),
                pl.Series("__at", index),
            )
            per_day = located.group_by("__i").agg(pl.col("__at").n_unique().alias("n"))
            failing[per_day["__i"].to_numpy()] = per_day["n"].to_numpy()
    # The few cases that name no row (a missing, extra or mistyped column), as the reason reads
    # them; every day of the stack shares them.
    structural_rows = _empty(SCHEMA_CASE_COLUMNS) if structural is None else structural.to_pandas()
    reports = {}
    for i, day in enumerate(stack.days):
        rows = int(stack.rows[i])
        bad = rows if rows == 0 or structural is not None else int(failing[i])
        share = bad / rows if rows else 1.0
        passed = rows > 0 and structural is None and share <= settings.max_failing_row_share
        mine = None
        if bad and located is not None and len(located):
            # Interleaved by (column, check), so the first rows shown name every kind of failure.
            mine = (
                located.filter(pl.col("__i") == i)
                .with_columns(pl.int_range(pl.len()).over("column", "check").alias("__k"))
                .sort("__k", maintain_order=True)
            )
        # The day's cases stay in polars: the reason groups them there, the quarantine writes
        # them as they are, and only the rows a table shows are converted.
        mine_cases = None if mine is None else mine.select(SCHEMA_CASE_COLUMNS)
        if rows == 0:
            reason = "the batch has no rows"
        elif bad:
            problems = schema_problems(
                structural_rows,
                mine_cases,
                # Read only for a mistyped column, whose values are counted.
                lambda c, i=i: stack.day(i)[c] if c in stack.frame.columns else None,
                rows,
            )
            prefix = "" if structural is not None else f"{bad:,} of {rows:,} rows fail the schema: "
            reason = prefix + "; ".join(problems)
        else:
            reason = "every row conforms"
        found = [c for c in (structural, mine_cases) if c is not None]
        day_cases = pl.concat(found) if found else _empty(SCHEMA_CASE_COLUMNS)
        sample = _empty([])
        if mine is not None:
            positions = mine["__at"].unique().sort().head(settings.sample_rows).to_numpy()
            sample = _rows_of(stack, i, positions, limit=settings.sample_rows)
        elif bad:
            sample = _rows_of(stack, i, limit=settings.sample_rows)
        reports[day] = GateReport(
            "schema",
            day,
            passed,
            rows,
            bad,
            share,
            settings.max_failing_row_share,
            day_cases,
            sample,
            reason,
        )
    return reports


# --- timestamps -------------------------------------------------------------------------------


def judge_timestamps(run: RunData, settings: RuleSettings) -> dict[str, GateReport]:
    """No record stamped after the end of its batch's day, none missing or unparseable."""
    contract = settings.contract
    stamp, key = contract.timestamp_column, contract.id_column
    reports = {}
    for stack in run.stacks:
        stats = day_statistics(stack, settings)
        if "ts|late" not in stats:
            for i, day in enumerate(stack.days):
                reports[day] = GateReport(
                    "timestamps",
                    day,
                    False,
                    int(stack.rows[i]),
                    int(stack.rows[i]),
                    1.0,
                    0.0,
                    pd.DataFrame({"problem": [f"no column {stamp!r}"]}),
                    _rows_of(stack, i, limit=settings.sample_rows),
                    f"the batch has no {stamp!r} column",
                )
            continue
        late = np.nan_to_num(stats["ts|late"]).astype(np.int64)
        for i, day in enumerate(stack.days):
            rows, count = int(stack.rows[i]), int(late[i])
            cases, sample = _empty([key, stamp]), _empty([])
            if count:
                stamps = _stamps(stack, stamp)
                bad = stack.day(i)
                if stamps is not None:
                    bad = bad.filter(stamps.is_null() | (stamps >= _end_of(day)))
                frame = _as_evidence(bad)
                cases = frame[[c for c in (key, stamp) if c in frame.columns]]
                sample = frame.head(settings.sample_rows)
            reports[day] = GateReport(
                "timestamps",
                day,
                count == 0,
                rows,
                count,
                count / rows if rows else 0.0,
                0.0,
                cases,
                sample,
                f"{count} record(s) stamped after {day}"
                if count
                else f"every timestamp is on or before {day}",
            )
    return reports


# --- statistics against the reference profile -------------------------------------------------


@dataclass(frozen=True)
class _Expectations:
    """One expectation on one column over the days of a stack: verdicts and evidence."""

    column: str
    expectation: str
    failed: np.ndarray
    value: np.ndarray
    reference: float
    threshold: float
    p_value: np.ndarray | None
    failing_rows: np.ndarray
    detail: list[str] | str
    rows: pl.Expr | None = None  # which rows fail it (for the failing-row sample)
    # The hard bound (validation.statistics.hard) and the days beyond it: those block.
    hard_bound: float | None = None
    hard: np.ndarray | None = None

    def beyond_hard_bound(self, i: int) -> bool:
        return bool(self.hard is not None and self.hard[i])


def _profile_expectations(stack: Stack, settings: RuleSettings) -> list[_Expectations]:
    """Every statistical expectation of every profiled column the stack has, per day."""
    profile, policy = settings.profile, settings.policy
    hard = policy.hard
    stats = day_statistics(stack, settings)
    n = stats["rows"]
    zeros = np.zeros(len(n), dtype=np.int64)
    result = []
    for name, ref in profile.numeric.items():
        if f"{name}|count" not in stats:
            continue
        count = np.nan_to_num(stats[f"{name}|count"]).astype(np.int64)
        mean, std = stats[f"{name}|mean"], stats[f"{name}|std"]
        outside = np.nan_to_num(stats[f"{name}|outside"]).astype(np.int64)
        value = _numbers(stack, name)
        effect, p = mean_shift(mean, count, ref, policy.min_mean_shift_std)
        result.append(
            _Expectations(
                name,
                "mean",
                fires(p, effect, policy.alpha, policy.min_mean_shift_std),
                np.where(count > 0, mean, np.nan),
                ref.mean,
                policy.min_mean_shift_std,
                p,
                zeros,
                [f"shift {e:.3f} reference std" for e in effect],
                hard_bound=hard.max_mean_shift_std,
                hard=fires(p, effect, policy.alpha, hard.max_mean_shift_std),
            )
        )
        ratio, p = std_ratio(std, count, ref, policy.min_std_ratio)
        result.append(
            _Expectations(
                name,
                "std",
                fires(p, ratio, policy.alpha, policy.min_std_ratio),
                np.where(count > 1, std, np.nan),
                ref.std,
                policy.min_std_ratio,
                p,
                zeros,
                [f"ratio {r:.3f}" for r in ratio],
                hard_bound=hard.max_std_ratio,
                hard=fires(p, ratio, policy.alpha, hard.max_std_ratio),
            )
        )
        excess, p = rate_excess(outside, count, ref.tail_share, policy.min_tail_excess)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = outside / n
        result.append(
            _Expectations(
                name,
                "quantile_bounds",
                fires(p, excess, policy.alpha, policy.min_tail_excess),
                share,
                ref.tail_share,
                policy.min_tail_excess,
                p,
                outside,
                f"outside [{ref.q_low:.4g}, {ref.q_high:.4g}]",
                (value < ref.q_low) | (value > ref.q_high),
                hard_bound=hard.max_tail_excess,
                hard=fires(p, excess, policy.alpha, hard.max_tail_excess),
            )
        )
        result.append(
            _null_rate(name, n.astype(np.int64) - count, n, ref.null_rate, policy, value.is_null())
        )
    categorical = {n: r for n, r in profile.categorical.items() if n in stack.frame.columns}
    counts = category_counts(stack, list(categorical))
    for name, ref in categorical.items():
        result.extend(_category_expectations(stack, name, ref, counts[name], n, policy))
    return result


def _null_rate(name, nulls, n, reference, policy, rows) -> _Expectations:
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(n > 0, nulls / np.maximum(n, 1), 0.0)
    # Above the ceiling the expectation fails whatever the test says: its p-value is shown.
    excess, p = rate_excess(
        nulls, n, reference, policy.min_null_rate_excess, also=rate > policy.max_null_rate
    )
    significant = fires(p, excess, policy.alpha, policy.min_null_rate_excess)
    return _Expectations(
        name,
        "null_rate",
        significant | (rate > policy.max_null_rate),
        rate,
        reference,
        policy.max_null_rate,
        p,
        np.asarray(nulls, dtype=np.int64),
        f"ceiling {policy.max_null_rate}",
        rows,
        hard_bound=policy.hard.max_null_rate,
        hard=fires(p, rate, policy.alpha, policy.hard.max_null_rate),
    )


def _category_expectations(stack, name, ref, counts, n, policy) -> list[_Expectations]:
    n_days = len(n)
    nulls = np.zeros(n_days, dtype=np.int64)
    present = counts.filter(pl.col("category").is_null())
    nulls[present[DAY].to_numpy()] = present["len"].to_numpy()
    observed = counts.filter(pl.col("category").is_not_null())
    seen = observed["category"].is_in(list(ref.proportions)).to_numpy()
    days, n_of = observed[DAY].to_numpy(), observed["len"].to_numpy()
    totals = np.bincount(days, weights=n_of, minlength=n_days)
    unseen = np.bincount(days[~seen], weights=n_of[~seen], minlength=n_days).astype(np.int64)
    by_day = [dict() for _ in range(n_days)]
    for day, category, count in zip(days, observed["category"].to_list(), n_of, strict=True):
        by_day[day][category] = int(count)
    distance, p = category_shift(by_day, ref, policy.min_category_distance)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(totals > 0, unseen / np.maximum(totals, 1), 0.0)
    names = [
        ", ".join(sorted(c for c in by_day[d] if c not in ref.proportions))[:200]
        for d in range(n_days)
    ]
    column = pl.col(name).cast(pl.String, strict=False)
    return [
        _Expectations(
            name,
            "category_proportions",
            fires(p, distance, policy.alpha, policy.min_category_distance),
            distance,
            0.0,
            policy.min_category_distance,
            p,
            np.zeros(n_days, dtype=np.int64),
            "total variation distance",
            hard_bound=policy.hard.max_category_distance,
            hard=fires(p, distance, policy.alpha, policy.hard.max_category_distance),
        ),
        _Expectations(
            name,
            "unseen_categories",
            share > policy.max_unseen_category_share,
            share,
            0.0,
            policy.max_unseen_category_share,
            None,
            unseen,
            names,
            column.is_not_null() & ~column.is_in(list(ref.proportions)),
            hard_bound=policy.hard.max_unseen_category_share,
            hard=share > policy.hard.max_unseen_category_share,
        ),
        _null_rate(name, nulls, n, ref.null_rate, policy, pl.col(name).is_null()),
    ]


def judge_statistics(run: RunData, settings: RuleSettings) -> dict[str, GateReport]:
    """Statistical expectations of each batch against the reference profile (data/expectations).

    With no reference profile yet (before the first training window) the gate passes and says so.
    """
    profile = settings.profile
    reports = {}
    for stack in run.stacks:
        if profile is None:
            for i, day in enumerate(stack.days):
                reports[day] = GateReport(
                    "statistics",
                    day,
                    True,
                    int(stack.rows[i]),
                    0,
                    0.0,
                    0.0,
                    _empty([]),
                    _empty([]),
                    f"{NO_REFERENCE}: the first training window sets it",
                )
            continue
        expectations = _profile_expectations(stack, settings)
        failed = np.vstack([e.failed for e in expectations]) if expectations else None
        for i, day in enumerate(stack.days):
            rows = int(stack.rows[i])
            if failed is None or not failed[:, i].any():
                reports[day] = GateReport(
                    "statistics",
                    day,
                    True,
                    rows,
                    0,
                    0.0,
                    0.0,
                    _empty(EXPECTATION_CASE_COLUMNS),
                    _empty([]),
                    f"{len(expectations)} expectations hold against the reference "
                    f"({profile.rows} rows)",
                )
                continue
            reports[day] = _expectation_report(
                "statistics", stack, i, [e for e in expectations if e.failed[i]], settings
            )
    return reports


def _expectation_report(
    check: str,
    stack: Stack | None,
    i: int,
    failed: list[_Expectations],
    settings: RuleSettings,
    rows: int | None = None,
) -> GateReport:
    """The report of a day that fails `failed`: one case row per expectation, failing rows."""

    def pick(detail, i):
        return detail if isinstance(detail, str) else detail[i]

    cases = pd.DataFrame(
        [
            {
                "column": e.column,
                "expectation": e.expectation,
                "value": float(e.value[i]),
                "reference": e.reference,
                "threshold": e.threshold,
                "hard_bound": e.hard_bound,
                "p_value": None if e.p_value is None else float(e.p_value[i]),
                "failing_rows": int(e.failing_rows[i]),
                "detail": pick(e.detail, i),
            }
            for e in failed
        ],
        columns=EXPECTATION_CASE_COLUMNS,
    )
    masks = [e.rows for e in failed if e.rows is not None]
    failing, sample = 0, _empty([])
    if stack is not None and masks:
        day = stack.day(i)
        bad = day.filter(pl.any_horizontal(masks))
        failing = len(bad)
        sample = _as_evidence(bad.head(settings.sample_rows))
    # The hard breaches lead the reason: they are why the batch blocks.
    ordered = sorted(failed, key=lambda e: not e.beyond_hard_bound(i))
    beyond = [e for e in failed if e.beyond_hard_bound(i)]
    listed = "; ".join(
        f"{e.column} {e.expectation} {pick(e.detail, i)}"
        + (f" (beyond the hard bound {e.hard_bound:g})" if e.beyond_hard_bound(i) else "")
        for e in ordered[:5]
    )
    more = (
        f"; and {len(ordered) - 5} more expectation(s) in failure_cases" if len(ordered) > 5 else ""
    )
    return GateReport(
        check,
        stack.days[i] if stack is not None else "",
        False,
        int(stack.rows[i]) if rows is None else rows,
        failing,
        float(len(failed)),
        0.0,
        cases,
        sample,
        (f"{len(beyond)} beyond a hard bound: " if beyond else "") + listed + more,
        hard=bool(beyond),
    )


# --- labels -----------------------------------------------------------------------------------


def _raise_label_problems(run: RunData) -> None:
    if run.label_problems:
        raise BatchFileError("; ".join(run.label_problems.values()))


def _per_day(frame: pl.DataFrame, n_days: int, agg: pl.Expr | None = None) -> np.ndarray:
    """A per-day count (or `agg`) over `frame`, zero on days without rows."""
    table = frame.group_by(DAY).agg((agg if agg is not None else pl.len()).alias("n"))
    out = np.zeros(n_days, dtype=np.int64)
    out[table[DAY].to_numpy()] = table["n"].to_numpy()
    return out


def _aligned(run: RunData, id_: str) -> bool:
    """The label rows are the batch rows' ids in the batch's order (the usual delivery)."""
    if "aligned" not in run.memo:
        ids, labels = run.ids, run.labels
        run.memo["aligned"] = (
            len(ids) == len(labels)
            and id_ in labels.columns
            and ids[id_].null_count() == 0
            and bool((ids[DAY] == labels[DAY]).all())
            and bool((ids[id_] == labels[id_]).all())
        )
    return run.memo["aligned"]


def _distinct(run: RunData, side: str, id_: str) -> bool:
    """Every id of the run's batches (`side` "ids") or labels ("labels") present and distinct
    across the run, so within each day (by 64-bit hash: distinct hashes, distinct values).

    Each side is hashed at most once per run: the batch ids are a stack's when one stack holds
    every row of the run, and aligned labels are the batch ids.
    """
    key = f"distinct|{side}"
    if key not in run.memo:
        (whole,) = run.stacks if len(run.stacks) == 1 else (None,)
        if side == "labels" and len(run.labels) and _aligned(run, id_):
            run.memo[key] = _distinct(run, "ids", id_)
        elif (
            side == "ids"
            and whole is not None
            and id_ in whole.frame.columns
            and len(whole.frame) == len(run.ids)  # every row of the run: not a sample
        ):
            run.memo[key] = _stack_ids_distinct(whole, id_)
        else:
            frame = getattr(run, side)
            run.memo[key] = _all_distinct(frame[id_])
    return run.memo[key]


def judge_label_join(run: RunData, settings: RuleSettings) -> dict[str, GateReport]:
    """Every batch row has one allowed label and every label a batch row, both ways."""
    _raise_label_problems(run)
    contract = settings.contract
    id_ = contract.id_column
    n_days = len(run.days)
    ids, labels = run.ids, run.labels
    if not len(ids):
        n_ids = np.zeros(n_days, dtype=np.int64)
    elif _distinct(run, "ids", id_):
        n_ids = _per_day(ids, n_days)  # distinct in the run: distinct in each day
    else:
        n_ids = _per_day(ids, n_days, pl.col(id_).n_unique())
    if _aligned(run, id_):
        n_labelled = matched = n_ids
    else:
        distinct = labels.select(DAY, id_).unique() if len(labels) else labels
        n_labelled = _per_day(distinct, n_days) if len(labels) else np.zeros(n_days, int)
        both = (
            ids.select(DAY, id_).unique().join(distinct, on=[DAY, id_], nulls_equal=True)
            if len(labels) and len(ids)
            else ids.head(0)
        )
        matched = _per_day(both, n_days) if len(both) else np.zeros(n_days, int)
    bad = _per_day(labels, n_days, pl.col(BAD).sum()) if len(labels) else np.zeros(n_days, int)
    repeated = (
        labels.filter(pl.len().over(DAY, id_) > 1)
        if len(labels) and not _distinct(run, "labels", id_)
        else labels.head(0)
    )
    duplicates = _per_day(repeated, n_days) if len(repeated) else np.zeros(n_days, int)
    with np.errstate(invalid="ignore", divide="ignore"):
        forward = np.where(n_ids > 0, 1 - (n_ids - matched) / np.maximum(n_ids, 1), 0.0)
        backward = np.where(
            n_labelled > 0, 1 - (n_labelled - matched) / np.maximum(n_labelled, 1), 0.0
        )
    rate = np.minimum(forward, backward)
    passed = (n_ids > 0) & (rate >= settings.min_join_rate) & (bad == 0) & (duplicates == 0)
    failing = (n_ids - matched) + (n_labelled - matched) + bad + duplicates
    rows = _per_day(ids, n_days)
    reports = {}
    for i, day in enumerate(run.days):
        if not run.has_id[i]:
            reports[day] = GateReport(
                "label_join",
                day,
                False,
                int(rows[i]),
                int(rows[i]),
                0.0,
                settings.min_join_rate,
                pd.DataFrame({"problem": [f"batch has no column {id_!r}"]}),
                _empty([]),
                f"the batch has no id column {id_!r}",
            )
            continue
        if not settings.labels_in_batch and not run.has_labels[i] and settings.newest_day:
            age = (dt.date.fromisoformat(settings.newest_day) - dt.date.fromisoformat(day)).days
            if age < settings.label_delay_days:
                reports[day] = GateReport(
                    "label_join",
                    day,
                    True,
                    int(rows[i]),
                    0,
                    1.0,
                    settings.min_join_rate,
                    _empty([]),
                    _empty([]),
                    f"labels not due yet ({age} of {settings.label_delay_days} days)",
                )
                continue
        cases = _empty(["problem", "id"])
        if not passed[i]:
            cases = _join_cases(run, i, id_)
        reports[day] = GateReport(
            "label_join",
            day,
            bool(passed[i]),
            int(n_ids[i]),
            int(failing[i]),
            float(rate[i]),
            settings.min_join_rate,
            cases,
            cases.head(settings.sample_rows),
            f"join rate {rate[i]:.4f} (batch->labels {forward[i]:.4f}, labels->batch "
            f"{backward[i]:.4f}), {bad[i]} label values outside {contract.label_values}, "
            f"{duplicates[i]} duplicate labelled ids",
        )
    return reports


def _join_cases(run: RunData, i: int, id_: str) -> pd.DataFrame:
    """What keeps day `i`'s batch and labels from joining one to one, row by row."""
    batch = run.ids.filter(pl.col(DAY) == i)[id_].cast(pl.String)
    labels = run.labels.filter(pl.col(DAY) == i) if len(run.labels) else None
    label_ids = labels[id_] if labels is not None else pl.Series(id_, [], dtype=pl.String)
    ids, labelled = set(batch.to_list()), set(label_ids.to_list())
    parts = [
        pd.DataFrame({"problem": "batch row without label", "id": sorted(ids - labelled, key=str)}),
        pd.DataFrame({"problem": "label without batch row", "id": sorted(labelled - ids, key=str)}),
    ]
    if labels is not None:
        parts += [
            pd.DataFrame(
                {
                    "problem": "label value outside contract",
                    "id": labels.filter(pl.col(BAD))[id_].to_list(),
                }
            ),
            pd.DataFrame(
                {
                    "problem": "duplicate labelled id",
                    "id": labels.filter(pl.col(id_).is_duplicated())[id_].to_list(),
                }
            ),
        ]
    return pd.concat(parts, ignore_index=True)


def judge_positive_rate(run: RunData, settings: RuleSettings) -> dict[str, GateReport]:
    """Each batch's positive-label rate against the reference rate, aware of the batch size."""
    _raise_label_problems(run)
    profile, policy = settings.profile, settings.policy
    n_days = len(run.days)
    labels = run.labels
    n = _per_day(labels, n_days) if len(labels) else np.zeros(n_days, dtype=np.int64)
    if profile is None or profile.positive_rate is None:
        return {
            day: GateReport(
                "positive_rate",
                day,
                True,
                int(n[i]),
                0,
                0.0,
                0.0,
                _empty([]),
                _empty([]),
                f"{NO_REFERENCE}: the first training window sets it",
            )
            for i, day in enumerate(run.days)
        }
    positives = _per_day(labels, n_days, pl.col(POSITIVE).sum()) if len(labels) else n * 0
    shift, p = rate_shift(positives, n, profile.positive_rate, policy.min_positive_rate_shift)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(n > 0, positives / np.maximum(n, 1), np.nan)
    expectation = _Expectations(
        "label",
        "positive_rate",
        fires(p, shift, policy.alpha, policy.min_positive_rate_shift),
        rate,
        profile.positive_rate,
        policy.min_positive_rate_shift,
        p,
        np.zeros(n_days, dtype=np.int64),
        [f"shift {s:.4f}" for s in shift],
        hard_bound=policy.hard.max_positive_rate_shift,
        hard=fires(p, shift, policy.alpha, policy.hard.max_positive_rate_shift),
    )
    reports = {}
    for i, day in enumerate(run.days):
        if expectation.failed[i]:
            report = _expectation_report(
                "positive_rate", None, i, [expectation], settings, int(n[i])
            )
            reports[day] = dataclasses.replace(report, day=day)
        else:
            reports[day] = GateReport(
                "positive_rate",
                day,
                True,
                int(n[i]),
                0,
                0.0,
                0.0,
                _empty(EXPECTATION_CASE_COLUMNS),
                _empty([]),
                f"positive rate {rate[i]:.4f} vs reference {profile.positive_rate:.4f}",
            )
    return reports


# --- leakage ----------------------------------------------------------------------------------


def _auc_from_counts(counts: pl.LazyFrame, group: str) -> pl.LazyFrame:
    """Per group, the ROC AUC of a score from its counts (rows of group and score, with the
    positives "pos" and rows "n" at that score); rows of equal score are ties, half a pair
    each: the Mann-Whitney statistic, the number sklearn's roc_auc_score gives."""
    counts = counts.group_by(group, "score").agg(pl.col("pos").sum(), pl.col("n").sum())
    ordered = (
        counts.sort(group, "score", nulls_last=False)
        .with_columns(neg=pl.col("n") - pl.col("pos"))
        .with_columns(below=pl.col("neg").cum_sum().over(group) - pl.col("neg"))
    )
    P, N = pl.col("pos").sum(), pl.col("neg").sum()
    return ordered.group_by(group).agg(
        P.alias("P"),
        N.alias("N"),
        ((pl.col("pos") * (pl.col("below") + 0.5 * pl.col("neg"))).sum() / (P * N)).alias("auc"),
    )


def _mann_whitney_u(values: np.ndarray, positive: np.ndarray) -> float:
    """The Mann-Whitney U of the positives among `values` (none missing): the pairs of a
    positive and a negative where the positive's value is the greater, ties half a pair (NaN
    above every number and equal to NaN, -0.0 equal to 0.0, as polars ranks them).

    Each class is sorted on its own (data/sorting's sort, several times faster than the
    argsort a rank sum needs) and each distinct positive value is looked up among the negatives
    once: on the 450 groups of 5,000 values of a 50-batch run, 30 ms against 34 ms for the rank
    sums, and on the window's 200,000 values a quarter to a third of their time. Every term is
    a whole number far below 2**53 until the single halving, so the sum is exact.
    """
    positives = sorted_copy(values[positive])
    negatives = sorted_copy(values[~positive])
    if not len(positives):
        return 0.0
    first = np.empty(len(positives), dtype=bool)
    first[0] = True
    np.not_equal(positives[1:], positives[:-1], out=first[1:])  # NaNs stay apart: still exact
    starts = np.flatnonzero(first)
    counts = np.diff(np.append(starts, len(positives)))
    distinct = positives[starts]
    below = np.searchsorted(negatives, distinct, "left")
    tied = np.searchsorted(negatives, distinct, "right") - below
    return (2 * int(counts @ below) + int(counts @ tied)) / 2


def _numeric_aucs(frame: pl.DataFrame, names: list[str], group: str, positive: str) -> pl.DataFrame:
    """Per group: positives "P", negatives "N" and the unfolded AUC of each numeric feature of
    `names` from its ranks in the group (missing values at the group's median).

    The U statistics are taken group by group with numpy's sort: polars' rank("average") in a
    group-by took 95 ms for the 250,000 rows the leakage gate scores over a 50-batch run (all
    numeric features, both cores), numpy 30 ms on one. A group with no value of a feature
    has nothing to rank by: its AUC is 0.5.
    """
    y = pl.col(positive).cast(pl.Float64)
    scores = []
    for name in names:
        value = pl.col(name)
        if frame.schema[name] != pl.Float64:
            value = value.cast(pl.Float64, strict=False)
        if frame.schema[name] != pl.Float64 or frame[name].null_count():
            value = value.fill_null(value.median().over(group))
        scores.append(value.alias(name))
    table = frame.select(pl.col(group), y.alias(positive), *scores)
    if not table[group].is_sorted():
        table = table.sort(group, maintain_order=True)
    keys = table[group]
    is_positive = table[positive].to_numpy() == 1
    columns = {n: table[n].to_numpy() for n in names}
    unranked = {n: table[n].is_null().to_numpy() for n in names if table[n].null_count()}
    bounds = (
        table.lazy()
        .with_row_index("__i")
        .group_by(group, maintain_order=True)
        .agg(pl.col("__i").first().alias("start"), pl.len().alias("n"))
        .collect()
    )
    rows: dict[str, list] = {"P": [], "N": [], **{n: [] for n in names}}
    for start, n in zip(bounds["start"].to_list(), bounds["n"].to_list(), strict=True):
        end = start + n
        positives = is_positive[start:end]
        P = float(positives.sum())
        N = float(n) - P
        rows["P"].append(P)
        rows["N"].append(N)
        for name in names:
            if not P * N:
                rows[name].append(None)
            elif name in unranked and unranked[name][start:end].all():
                # No value at all: the feature is the same for every row and ranks nothing.
                rows[name].append(0.5)
            else:
                u = _mann_whitney_u(columns[name][start:end], positives)
                rows[name].append(u / (P * N))
    return pl.DataFrame(
        {group: bounds[group], **rows},
        schema={group: keys.dtype, "P": pl.Float64, "N": pl.Float64}
        | dict.fromkeys(names, pl.Float64),
    )


def single_feature_aucs(
    frame: pl.DataFrame, contract: DataContract, group: str, positive: str
) -> tuple[pl.DataFrame, list[str]]:
    """Per group: how well each feature alone ranks the label, ROC AUC folded to [0.5, 1].

    Numeric features score by value (missing values at the group's median); categorical
    features by their category's positive rate in the group. The AUCs are exact: a numeric
    feature's is the Mann-Whitney statistic from its ranks in the group (ties at their average
    rank, half a pair each, the number sklearn's roc_auc_score gives); a categorical feature's
    comes from counts of positives and rows per category.
    Returns one row per group with its positives ("P"), negatives ("N") and one column per
    feature; a group with a single class gets no AUCs (nulls).
    """
    y = pl.col(positive).cast(pl.Float64)
    lazy = frame.lazy()
    present = [n for n in contract.feature_columns if n in frame.columns]
    numeric = [n for n in present if n in contract.numeric_columns]
    tables = []
    for name in present:
        if name in numeric:
            continue
        category = pl.col(name).cast(pl.String, strict=False).alias("category")
        counts = (
            lazy.group_by(group, category)
            .agg(y.sum().alias("pos"), pl.len().cast(pl.Float64).alias("n"))
            .select(group, (pl.col("pos") / pl.col("n")).alias("score"), "pos", "n")
        )
        # Categories sharing a positive rate share a score, so theirs are summed again.
        tables.append(_auc_from_counts(counts, group))
    # The categorical counts run on polars' threads while numpy ranks the numeric features
    # (both release the GIL): on two cores the two halves overlap.
    with ThreadPoolExecutor(max_workers=1) as pool:
        counted = pool.submit(pl.collect_all, tables) if tables else None
        aucs = _numeric_aucs(frame, numeric, group, positive)
        collected = counted.result() if counted is not None else []
    for name, table in zip([n for n in present if n not in numeric], collected, strict=True):
        aucs = aucs.join(table.select(group, pl.col("auc").alias(name)), on=group, how="left")
    two_classes = (pl.col("P") > 0) & (pl.col("N") > 0)
    folded = [
        pl.when(two_classes).then(pl.max_horizontal(pl.col(n), 1 - pl.col(n))).alias(n)
        for n in present
    ]
    return aucs.with_columns(folded).select(group, "P", "N", *present).sort(group), present


LEAKAGE_CASE_COLUMNS = ["feature", "single_feature_auc", "lower_bound"]


def leakage_verdict(
    aucs: dict[str, float], n_pos: int, n_neg: int, max_auc: float, *, table: bool = True
) -> tuple[bool, float, pd.DataFrame, str]:
    """(passed, top AUC, the ten best features, reason) of one group's single-feature AUCs.

    A feature leaks when even the lower confidence bound of its AUC exceeds `max_auc`, so a
    20-row batch where a strong feature happens to rank perfectly does not fire. The table of
    the best features is built when the group fails, or always with `table`.
    """
    names = list(aucs)
    values = np.array([aucs[n] for n in names], dtype=float)
    bounds = auc_lower_bounds(values, n_pos, n_neg) if names else values
    leaks = {n: aucs[n] for n, low in zip(names, bounds, strict=True) if low > max_auc}
    cases = _empty(LEAKAGE_CASE_COLUMNS)
    if leaks or table:
        order = np.argsort(-values, kind="stable")[:10]
        cases = pd.DataFrame(
            {
                "feature": [names[k] for k in order],
                "single_feature_auc": values[order],
                "lower_bound": bounds[order],
            }
        )
    top = float(values.max()) if names else 0.5
    reason = (
        f"feature(s) {sorted(leaks)} alone reach ROC AUC {max(leaks.values()):.4f}"
        if leaks
        else f"best single-feature ROC AUC {top:.4f}"
    )
    return not leaks, top, cases, reason


def _class_sample(joined: pl.DataFrame, per_class: int) -> pl.DataFrame:
    """About `per_class` rows of each class of each day (all of a class with fewer rows).

    The AUC is unchanged in expectation by sampling within a class (it compares positives with
    negatives), so a rare class keeps all its rows while a common one is thinned. A row is kept
    by a hash of its position in its batch file, so a batch scores the same rows in every run,
    whichever batches share the run.
    """
    group = joined[DAY].to_numpy().astype(np.int64) * 2 + joined[POSITIVE].to_numpy()
    sizes = np.bincount(group)
    if sizes.max(initial=0) <= per_class:
        return joined
    share = np.minimum(1.0, per_class / np.maximum(sizes, 1))
    rows = joined[ROW].to_numpy()
    # Every batch numbers its rows from 0: each row number is hashed once, not once per batch.
    numbers = pl.Series(ROW, np.arange(rows.max() + 1, dtype=rows.dtype))
    draw = numbers.hash(seed=0).to_numpy()[rows] / 2.0**64
    return joined.filter(pl.Series(draw < share[group]))


def judge_leakage(run: RunData, settings: RuleSettings) -> dict[str, GateReport]:
    """No single feature of a batch predicts its label almost perfectly on its own.

    Measured on the rows whose id occurs once in the batch and once in its labels: repeated ids
    are the schema and label-join gates' failures.
    """
    _raise_label_problems(run)
    contract = settings.contract
    id_ = contract.id_column
    labels = run.labels.select(DAY, ROW, id_, POSITIVE) if len(run.labels) else None
    labels_distinct = labels is None or _distinct(run, "labels", id_)
    if labels is not None and not labels_distinct:
        labels = labels.filter(pl.len().over(DAY, id_) == 1)
    aligned = _aligned(run, id_)
    reports = {}
    for stack in run.stacks:
        if id_ not in stack.frame.columns:
            for i, day in enumerate(stack.days):
                reports[day] = GateReport(
                    "leakage",
                    day,
                    False,
                    int(stack.rows[i]),
                    int(stack.rows[i]),
                    1.0,
                    settings.max_single_feature_auc,
                    pd.DataFrame({"problem": [f"batch has no column {id_!r}"]}),
                    _empty([]),
                    f"the batch has no id column {id_!r}: its labels cannot be joined",
                )
            continue
        # What the join and the AUCs read: filtering and sampling the other columns is waste.
        scored = [n for n in contract.feature_columns if n in stack.frame.columns and n != id_]
        features = stack.frame.select(DAY, ROW, id_, *scored)
        distinct = bool(day_statistics(stack, settings)["ids_distinct"].all())
        if not distinct:
            features = features.filter(pl.len().over(DAY, id_) == 1)
        if labels is None:
            joined = features.head(0).with_columns(pl.lit(False).alias(POSITIVE))
        elif aligned and distinct and labels_distinct:
            # Labels in batch order: each row's label is the label row of its day and position.
            per_day = np.bincount(labels[DAY].to_numpy(), minlength=len(run.days))
            starts = np.concatenate([[0], np.cumsum(per_day)])
            at = starts[stack.positions[features[DAY].to_numpy()]] + features[ROW].to_numpy()
            joined = features.with_columns(labels[POSITIVE].gather(at))
        else:
            local = {int(p): k for k, p in enumerate(stack.positions)}
            joined = features.with_columns(pl.col(id_).cast(pl.String)).join(
                labels.select(
                    pl.col(DAY).replace_strict(local, default=None, return_dtype=pl.Int32),
                    id_,
                    POSITIVE,
                ).drop_nulls(DAY),
                on=[DAY, id_],
                how="inner",
            )
        joined = _class_sample(joined.drop(id_), settings.leakage_sample_rows // 2)
        aucs, names = single_feature_aucs(joined, contract, DAY, POSITIVE)
        at = {int(d): k for k, d in enumerate(aucs[DAY].to_list())}
        for i, day in enumerate(stack.days):
            k = at.get(i)
            n_pos = int(aucs["P"][k]) if k is not None else 0
            n_neg = int(aucs["N"][k]) if k is not None else 0
            values = (
                {n: float(aucs[n][k]) for n in names if aucs[n][k] is not None}
                if k is not None
                else {}
            )
            passed, top, cases, reason = leakage_verdict(
                values, n_pos, n_neg, settings.max_single_feature_auc, table=False
            )
            if n_pos + n_neg < stack.rows[i] and k is not None:
                reason += f" (a seeded sample: {n_pos:,} positive, {n_neg:,} negative rows)"
            reports[day] = GateReport(
                "leakage",
                day,
                passed,
                n_pos + n_neg,
                0,
                top,
                settings.max_single_feature_auc,
                cases,
                _empty([]),
                reason,
            )
    return reports


# --- re-delivery ------------------------------------------------------------------------------


def run_sketches(run: RunData, contract: DataContract) -> dict[str, Sketch]:
    """The sketch of each batch of the run (data/redelivery), computed once per run."""
    if "sketches" not in run.memo:
        found: dict[str, Sketch] = {}
        for stack in run.stacks:
            found |= sketches(stack.frame, DAY, contract.feature_columns, stack.days)
        run.memo["sketches"] = found
    return run.memo["sketches"]


REDELIVERY_CASE_COLUMNS = ["earlier_batch", "share_of_rows"]


def judge_redelivered(run: RunData, settings: RuleSettings) -> dict[str, GateReport]:
    """No batch repeats an earlier batch's rows (under new ids) beyond what chance explains.

    Each batch is compared with every earlier batch: those judged before this run (their
    sketches) and the run's own earlier days.
    """
    mine = run_sketches(run, settings.contract)
    earlier = [s for s in settings.earlier_sketches if s.day not in mine] + list(mine.values())
    reports = {}

    for stack in run.stacks:
        for i, day in enumerate(stack.days):
            rows = int(stack.rows[i])
            if day not in mine:  # a batch with no rows has no sketch
                verdict = None
            else:
                verdict = judge_redelivery(mine[day], earlier, settings.min_redelivered_share)
            if verdict is None or not verdict.redelivered:
                reports[day] = GateReport(
                    "redelivery",
                    day,
                    True,
                    rows,
                    0,
                    verdict.share if verdict else 0.0,
                    verdict.threshold if verdict else settings.min_redelivered_share,
                    _empty(REDELIVERY_CASE_COLUMNS),
                    _empty([]),
                    verdict.reason if verdict else "the batch has no rows",
                )
                continue
            cases = pd.DataFrame(
                {
                    "earlier_batch": list(verdict.sources),
                    "share_of_rows": [round(share, 4) for share in verdict.source_shares],
                }
            )
            reports[day] = GateReport(
                "redelivery",
                day,
                False,
                rows,
                round(verdict.share * rows),
                verdict.share,
                verdict.threshold,
                cases,
                _rows_of(stack, i, limit=settings.sample_rows),
                verdict.reason,
            )
    return reports


def _on_engine_for_its_size(rule):
    """`rule` with its queries on the polars engine that suits the run's size (data/engine)."""

    @functools.wraps(rule)
    def judged(run: RunData, settings: RuleSettings) -> dict[str, GateReport]:
        with engine_for(sum(len(stack.frame) for stack in run.stacks)):
            return rule(run, settings)

    return judged


_RULES = {
    "raw_batches_match_schema": judge_schema,
    "raw_batches_timestamps_not_in_future": judge_timestamps,
    "raw_batches_match_reference_profile": judge_statistics,
    "raw_batches_not_redelivered": judge_redelivered,
    "raw_labels_join_raw_batches": judge_label_join,
    "raw_labels_positive_rate_matches_reference": judge_positive_rate,
    "raw_labels_not_leaked_into_features": judge_leakage,
}
RULES = {name: _on_engine_for_its_size(rule) for name, rule in _RULES.items()}
"""Each data gate's one rule, by the gate's name in data/gates.DATA_GATES."""


def validate_batch(
    frame: pd.DataFrame | pl.DataFrame,
    contract: DataContract,
    *,
    day: str,
    max_failing_row_share: float,
    sample_rows: int,
    include_target: bool = False,
) -> GateReport:
    """The schema rule on one batch frame as delivered (what `schema infer` self-checks with)."""
    from ml_assets.data.reading import run_of

    if isinstance(frame, pd.DataFrame):
        frame = pl.from_pandas(frame)
    run = run_of({day: frame}, None if include_target else {}, contract)
    settings = RuleSettings(
        contract=contract,
        policy=StatisticalPolicy(),
        profile=None,
        max_failing_row_share=max_failing_row_share,
        min_join_rate=1.0,
        max_single_feature_auc=1.0,
        labels_in_batch=include_target,
        sample_rows=sample_rows,
    )
    return RULES["raw_batches_match_schema"](run, settings)[day]


def judge_frames(
    features: Mapping[str, pd.DataFrame | pl.DataFrame],
    labels: Mapping[str, pd.DataFrame | pl.DataFrame],
    settings: RuleSettings,
) -> dict[str, dict[str, GateReport]]:
    """Every rule on batches given as frames (day -> frame), as the gates judge files."""
    from ml_assets.data.reading import run_of

    def polars(frame):
        return pl.from_pandas(frame) if isinstance(frame, pd.DataFrame) else frame

    run = run_of(
        {day: polars(frame) for day, frame in features.items()},
        None if settings.labels_in_batch else {day: polars(frame) for day, frame in labels.items()},
        settings.contract,
    )
    return {name: rule(run, settings) for name, rule in RULES.items()}
