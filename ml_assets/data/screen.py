"""The screen: one vectorised pass over a run's batches that clears the batches every gate passes.

Each data gate has a reference judge (pandas and pandera, in core.validation, core.expectations
and core.integrity) that decides and explains: failure cases, failing rows, p-values. Judging a
1,000,000-row window batch by batch that way takes longer than training on it. The screen reads
every batch once (pyarrow, categorical columns as their parquet dictionaries), stacks the batches
in day order in polars (both cores), computes per batch the quantities the gates decide on,
and clears a batch for a gate only when that gate's rule passes with nothing to explain: no
failing row, no unjoined id, every expectation inside its bound with margin to spare. Whatever
the screen does not clear (a failure, a near miss, a file it cannot read as the reference reads
it: CSV, sampled depth, unexpected types) goes to the reference judge, which then decides. So a
failure is always decided and explained by the reference judge; the screen only saves time.
ml_assets_tests/test_core_screen.py checks that every batch it clears passes the reference
judge, on every simulator scenario and on hand-made corruptions. The window gates' helpers at
the end (splits, label counts, leakage bounds) follow the same rule for the training dataset.

Single-feature AUCs are the one quantity the screen bounds instead of computing: values are
binned, pairs in different bins are ordered exactly and pairs within a bin could go either way,
which brackets the AUC. A batch is cleared when the upper end of that bracket is below the leak
bound; its report gives the upper end as the value.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

from ml_assets.data.batches import BatchFiles
from ml_assets.data.contract import DataContract
from ml_assets.data.expectations import (
    CategoricalProfile,
    NumericProfile,
    Profile,
    StatisticalPolicy,
)
from ml_assets.data.validation import EXPECTATION_CASE_COLUMNS, GateReport

DAY = "__day"
BINS = 2048
# A p-value or effect is cleared only this far inside its bound, so that polars' and numpy's
# last-bit differences can never clear a batch the reference judge would fail.
MARGIN = 1e-6


def _kind(t) -> str:
    """The reference's reading of an arrow type: what pandas makes of it."""
    import pyarrow as pa

    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_timestamp(t) and t.tz is None:
        return "timestamp"
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_floating(t):
        return "float"
    return "other"


def _label_kind(label_values: list) -> str:
    if all(isinstance(v, int) and not isinstance(v, bool) for v in label_values):
        return "integer"
    return "string" if all(isinstance(v, str) for v in label_values) else "unsupported"


def _expected_kinds(contract: DataContract, with_target: bool) -> dict[str, set[str]]:
    kinds = {
        contract.id_column: {"string"},
        contract.timestamp_column: {"timestamp"},
        **{c: {"integer", "float"} for c in contract.numeric_columns},
        **{c: {"string"} for c in contract.categorical_columns},
    }
    if with_target:
        kinds[contract.target_column] = {_label_kind(contract.label_values)}
    return kinds


# numpy dtypes pandas restores as themselves; anything else in a file's pandas metadata (an
# extension dtype such as Int64 or string, a time zone, a categorical) reads differently.
_PLAIN_NUMPY_TYPES = {
    "object",
    *(f"{kind}{bits}" for kind in ("int", "uint") for bits in (8, 16, 32, 64)),
    "float16",
    "float32",
    "float64",
    *(f"datetime64[{unit}]" for unit in ("s", "ms", "us", "ns")),
}


def _pandas_reads_plainly(schema) -> bool:
    """pandas reads the file's columns as the plain types arrow shows, with no stored index."""
    import json

    raw = (schema.metadata or {}).get(b"pandas")
    if raw is None:
        return True  # written without pandas: read by type alone
    meta = json.loads(raw)
    if any(isinstance(index, str) for index in meta.get("index_columns", [])):
        return False  # a stored index: pandas moves that column out of the frame
    return all(
        column.get("name") == column.get("field_name")
        and column.get("pandas_type") not in ("datetimetz", "categorical")
        and column.get("numpy_type") in _PLAIN_NUMPY_TYPES
        for column in meta.get("columns", [])
        if column.get("field_name") in schema.names
    )


def _groups(
    paths: Mapping[str, Path | None], kinds: dict[str, set[str]]
) -> list[tuple[list[str], list[Path], list[int]]]:
    """The days whose file the screen reads as the reference does, grouped by file schema.

    Only parquet files whose columns are exactly `kinds` (no dictionary column, no time zone,
    no stored index, no pandas categorical) qualify; the rest is the reference's to judge.
    """
    import pyarrow.parquet as pq

    groups: dict[object, tuple[list[str], list[Path], list[int]]] = {}
    for day, path in paths.items():
        if path is None or path.suffix != ".parquet":
            continue
        metadata = pq.read_metadata(path)
        schema = metadata.schema.to_arrow_schema()
        if not _pandas_reads_plainly(schema) or set(schema.names) != set(kinds):
            continue
        if len(schema.names) != len(kinds) or any(
            _kind(f.type) not in kinds[f.name] for f in schema
        ):
            continue
        days, files, rows = groups.setdefault(schema.remove_metadata(), ([], [], []))
        days.append(day)
        files.append(path)
        rows.append(metadata.num_rows)
    return list(groups.values())


def _read_group(files: list[Path], categorical: list[str]):
    """The files as one arrow table in file order, categorical columns kept as dictionaries."""
    import pyarrow.dataset as ds

    options = ds.ParquetReadOptions(dictionary_columns=categorical)
    fmt = ds.ParquetFileFormat(read_options=options)
    return ds.dataset([str(f) for f in files], format=fmt).to_table()


def _as_pandas_numbers(column: pl.Series) -> pl.Expr:
    """The column as pandas sees its numbers: NaN is missing. Copied only when it must be.

    Integers stay as they are (every aggregate the gates take works on them); float64 is copied
    only when it holds a NaN; narrower floats become float64, as the reference reads them.
    """
    expr = pl.col(column.name)
    if column.dtype.is_integer():
        return expr
    if column.dtype != pl.Float64:
        return expr.cast(pl.Float64).fill_nan(None)
    return expr.fill_nan(None) if column.is_nan().any() else expr


def _dictionary_codes(column) -> tuple[np.ndarray, list[str]]:
    """Each row's index into the column's distinct values (one dictionary for all files).

    Nulls get the index len(values). The parquet dictionaries are read as they are stored, so
    no string is ever materialised.
    """
    import pyarrow.compute as pc

    if column.num_chunks == 0:
        return np.zeros(0, dtype=np.int64), []
    combined = column.unify_dictionaries().combine_chunks()
    values = combined.dictionary.to_pylist()
    codes = pc.fill_null(combined.indices, len(values)).to_numpy()
    return codes.astype(np.int64), values


@dataclass(frozen=True)
class Screened:
    """What the screen proved: per gate, the reports of the batches it cleared."""

    reports: dict[str, dict[str, GateReport]]

    def cleared(self, gate: str) -> dict[str, GateReport]:
        return self.reports.get(gate, {})


@dataclass(frozen=True)
class ScreenSettings:
    """The thresholds the gates decide with (pipeline.yaml: validation)."""

    contract: DataContract
    policy: StatisticalPolicy
    profile: Profile | None
    max_failing_row_share: float
    min_join_rate: float
    max_single_feature_auc: float
    labels_in_batch: bool


class _Window:
    """Batches of one file schema, stacked in day order, with their labels where screenable."""

    def __init__(
        self,
        days: list[str],
        files: list[Path],
        rows: list[int],
        label_paths: Mapping[str, Path | None],
        settings: ScreenSettings,
    ):
        contract = settings.contract
        self.days, self.contract = days, contract
        self.rows = np.array(rows, dtype=np.int64)
        self.numeric = list(contract.numeric_columns)
        self.categorical = list(contract.categorical_columns)
        table = _read_group(files, self.categorical)
        if table.num_rows != self.rows.sum():
            raise ValueError(f"batch files changed while being screened: {files[0].parent}")
        self.day_of_row = np.repeat(np.arange(len(days), dtype=np.int64), self.rows)
        self._codes = {c: _dictionary_codes(table.column(c)) for c in self.categorical}
        self._arrow_ids = table.column(contract.id_column)
        frame = pl.from_arrow(table.drop_columns(self.categorical))
        # Rows are in day order: a sorted day column lets group-bys run without hashing.
        self.frame = frame.select(
            pl.Series(DAY, self.day_of_row, dtype=pl.Int32).set_sorted(),
            pl.col(contract.id_column),
            # Out of pandas' nanosecond range: null here, so the reference judges the day.
            pl.col(contract.timestamp_column).cast(pl.Datetime("ns"), strict=False),
            *[_as_pandas_numbers(frame[c]) for c in self.numeric],
            *([pl.col(contract.target_column)] if settings.labels_in_batch else []),
        )
        self.unique_ids = _distinct_per_day(
            self.frame[contract.id_column], self.frame[DAY], len(days)
        )
        self.labels = self._labels(label_paths, settings)

    def per_day(self, exprs: list[pl.Expr]) -> pl.DataFrame:
        """Aggregates per day, one row per day in `days` order (days without rows included)."""
        grouped = self.frame.group_by(DAY).agg(exprs)
        every = pl.DataFrame({DAY: np.arange(len(self.days), dtype=np.int32)})
        return every.join(grouped, on=DAY, how="left").sort(DAY)

    def codes(self, column: str) -> tuple[np.ndarray, list[str]]:
        """Each row's category as an index into the categories; nulls get the last index."""
        return self._codes[column]

    def category_counts(self, column: str) -> tuple[np.ndarray, list[str]]:
        """(days x categories + 1) counts of each category per day; the last column counts nulls."""
        codes, categories = self.codes(column)
        width = len(categories) + 1
        counts = np.bincount(self.day_of_row * width + codes, minlength=len(self.days) * width)
        return counts.reshape(len(self.days), width), categories

    def _labels(self, label_paths: Mapping[str, Path | None], settings: ScreenSettings) -> _Labels:
        """Per day: label counts, and each batch row's label where the ids line up or join."""
        contract = self.contract
        id_, target = contract.id_column, contract.target_column
        n_days = len(self.days)
        if settings.labels_in_batch:
            label_rows = self.frame.select(DAY, id_, target)
            readable = np.ones(n_days, dtype=bool)
        else:
            kinds = {id_: {"string"}, target: {_label_kind(contract.label_values)}}
            parts, readable = [], np.zeros(n_days, dtype=bool)
            position = {day: i for i, day in enumerate(self.days)}
            groups = _groups({d: label_paths.get(d) for d in self.days}, kinds)
            aligned = False
            for days, files, rows in groups:
                table = _read_group(files, [])
                # The usual delivery: one label file per batch, its rows in the batch's order.
                # Compared in arrow, so the label ids never need converting.
                aligned = (
                    len(groups) == 1
                    and days == self.days
                    and rows == self.rows.tolist()
                    and _same_values(table.column(id_), self._arrow_ids)
                )
                index = np.repeat([position[d] for d in days], rows)
                part = pl.from_arrow(table.drop_columns([id_]) if aligned else table).select(
                    pl.Series(DAY, index, dtype=pl.Int32),
                    *([] if aligned else [id_]),
                    pl.col(target).cast(pl.Int64, strict=False)  # beyond int64: null, bad
                    if kinds[target] == {"integer"}
                    else pl.col(target),
                )
                parts.append(part)
                readable[[position[d] for d in days]] = True
            if not parts:
                return _Labels.none(n_days)
            # One schema (the usual case) is already in day order; several need sorting.
            label_rows = (
                parts[0] if len(parts) == 1 else pl.concat(parts).sort(DAY, maintain_order=True)
            )
        label_rows = label_rows.with_columns(pl.col(DAY).set_sorted())
        aligned = settings.labels_in_batch or aligned
        stats = label_rows.group_by(DAY).agg(
            pl.len().alias("n"),
            (~pl.col(target).is_in(contract.label_values)).fill_null(True).sum().alias("bad"),
            (pl.col(target) == contract.positive_label).sum().alias("positives"),
        )
        labels = _Labels.none(n_days)
        at = stats[DAY].to_numpy()
        labels.n[at] = stats["n"].to_numpy()
        # Labels in batch order carry the batch's ids: distinct exactly where the batch's are.
        labels.unique = (
            self.unique_ids.copy()
            if aligned
            else _distinct_per_day(label_rows[id_], label_rows[DAY], n_days)
        )
        labels.bad[at] = stats["bad"].to_numpy()
        labels.positives[at] = stats["positives"].to_numpy()
        labels.readable = readable
        if aligned:
            # Labels in batch order: each row's label is the label row beside it.
            labels.y = (label_rows[target] == contract.positive_label).fill_null(False)
            labels.matched = np.where(readable, labels.n, 0)
            return labels
        # Otherwise join day by day (ids must be unique on both sides to line up).
        offsets = np.concatenate([[0], np.cumsum(self.rows)])
        label_offsets = np.concatenate([[0], np.cumsum(labels.n)])
        lined_up = []
        for i in range(n_days):
            batch = self.frame.slice(int(offsets[i]), int(self.rows[i])).select(id_)
            if readable[i] and labels.unique[i]:
                day_labels = label_rows.slice(int(label_offsets[i]), int(labels.n[i]))
                joined = batch.join(
                    day_labels.select(id_, pl.lit(True).alias("__labelled"), target),
                    on=id_,
                    how="left",
                    maintain_order="left",
                )
                labels.matched[i] = int(joined["__labelled"].sum())
                lined_up.append(
                    (joined[target] == contract.positive_label)
                    .fill_null(False)
                    .zip_with(
                        joined["__labelled"].fill_null(False),
                        pl.repeat(None, len(batch), dtype=pl.Boolean, eager=True),
                    )
                )
            else:
                lined_up.append(pl.repeat(None, len(batch), dtype=pl.Boolean, eager=True))
        labels.y = pl.concat(lined_up) if lined_up else None
        return labels


def _same_values(left, right) -> bool:
    """Two arrow columns equal row for row, nulls included."""
    import pyarrow.compute as pc

    return (
        len(left) == len(right)
        and left.type == right.type
        and left.null_count == 0
        and right.null_count == 0
        and bool(pc.all(pc.equal(left, right)).as_py())
    )


@dataclass
class _Labels:
    """Per day of a window: the label counts the label gates decide on."""

    n: np.ndarray
    unique: np.ndarray  # every labelled id present and distinct
    bad: np.ndarray  # label values outside the contract (nulls included)
    positives: np.ndarray
    readable: np.ndarray  # the day's labels could be read by the screen
    matched: np.ndarray  # batch ids with a label (meaningful where ids are unique)
    y: pl.Series | None = None  # each batch row: positive or not; null where it has no label

    @classmethod
    def none(cls, n_days: int) -> _Labels:
        zeros = np.zeros(n_days, dtype=np.int64)
        return cls(
            zeros.copy(),
            np.zeros(n_days, dtype=bool),
            zeros.copy(),
            zeros.copy(),
            np.zeros(n_days, dtype=bool),
            zeros.copy(),
        )


def screen_batches(batches: Mapping[str, BatchFiles], settings: ScreenSettings) -> Screened:
    """Clear, gate by gate, every batch of `batches` the gate provably passes."""
    contract = settings.contract
    kinds = _expected_kinds(contract, settings.labels_in_batch)
    reports: dict[str, dict[str, GateReport]] = {}
    label_paths = {day: batch.labels for day, batch in batches.items()}
    for days, files, rows in _groups({d: b.features for d, b in batches.items()}, kinds):
        window = _Window(days, files, rows, label_paths, settings)
        for gate, cleared in _screen_window(window, settings).items():
            reports.setdefault(gate, {}).update(cleared)
    return Screened(reports)


def _distinct_per_day(ids: pl.Series, days: pl.Series, n_days: int) -> np.ndarray:
    """Per day: every id present and distinct within its day."""
    if ids.null_count() == 0 and ids.hash().n_unique() == len(ids):
        return np.ones(n_days, dtype=bool)  # distinct hashes: distinct ids in the whole window
    stats = (
        pl.DataFrame({DAY: days, "id": ids})
        .group_by(DAY)
        .agg(((pl.col("id").n_unique() == pl.len()) & (pl.col("id").null_count() == 0)).alias("u"))
    )
    distinct = np.zeros(n_days, dtype=bool)
    distinct[stats[DAY].to_numpy()] = stats["u"].to_numpy()
    return distinct


def _screen_window(window: _Window, settings: ScreenSettings) -> dict[str, dict[str, GateReport]]:
    # One pass over the stacked rows for every per-day aggregate the gates need.
    per_day = window.per_day(
        [
            *_schema_exprs(settings),
            *_timestamp_exprs(settings.contract),
            *_statistics_exprs(settings.profile, window.numeric),
        ]
    )
    return {
        "raw_batches_match_schema": _schema(window, per_day, settings),
        "raw_batches_timestamps_not_in_future": _timestamps(window, per_day),
        "raw_batches_match_reference_profile": _statistics(window, per_day, settings),
        "raw_labels_join_raw_batches": _label_join(window, settings),
        "raw_labels_positive_rate_matches_reference": _positive_rate(window, settings),
        "raw_labels_not_leaked_into_features": _leakage(window, settings),
    }


def _cleared(
    check: str,
    days: list[str],
    passing: np.ndarray,
    rows: np.ndarray,
    value: np.ndarray | float,
    threshold: float,
    case_columns: list[str],
    reason,
) -> dict[str, GateReport]:
    """The reports of the cleared days; one empty evidence table is shared by all of them."""
    cases, sample = pd.DataFrame(columns=case_columns), pd.DataFrame()
    values = np.broadcast_to(np.asarray(value, dtype=float), (len(days),))
    return {
        day: GateReport(
            check,
            day,
            True,
            int(rows[i]),
            0,
            float(values[i]),
            threshold,
            cases,
            sample,
            reason(i, day),
        )
        for i, day in enumerate(days)
        if passing[i]
    }


def _schema_exprs(settings: ScreenSettings) -> list[pl.Expr]:
    """Per day: each numeric column's extremes and nulls; the in-batch target's bad values.

    A day has no failing numeric value exactly when its minimum and maximum lie in the range and
    it has no null where none is allowed, so three aggregates replace a mask per check.
    """
    contract = settings.contract
    exprs = []
    for name in contract.numeric_columns:
        column = pl.col(name)
        exprs += [
            column.min().alias(f"{name}|min"),
            column.max().alias(f"{name}|max"),
            column.null_count().alias(f"{name}|nulls"),
        ]
    if settings.labels_in_batch:
        target = pl.col(contract.target_column)
        bad = (target.is_null() | ~target.is_in(contract.label_values)).fill_null(True)
        exprs.append(bad.sum().alias("target|bad"))
    return exprs


def _schema(window: _Window, per_day: pl.DataFrame, settings: ScreenSettings):
    """Days where every value conforms (categories included) and every id is distinct."""
    contract = settings.contract
    ok = (window.rows > 0) & window.unique_ids & _stamps_present(per_day)
    with np.errstate(invalid="ignore"):
        for name, spec in contract.numeric_columns.items():
            low = per_day[f"{name}|min"].to_numpy().astype(np.float64)
            high = per_day[f"{name}|max"].to_numpy().astype(np.float64)
            if spec.min is not None:
                ok &= ~(low < spec.min)  # a day of nulls only has no minimum: nothing below
            if spec.max is not None:
                ok &= ~(high > spec.max)
            if not spec.nullable:
                ok &= per_day[f"{name}|nulls"].to_numpy() == 0
    if settings.labels_in_batch:
        ok &= per_day["target|bad"].to_numpy() == 0
    for name, allowed in contract.categorical_columns.items():
        counts, categories = window.category_counts(name)
        outside = np.array([c not in allowed for c in [*categories, None]], dtype=bool)
        ok &= counts[:, outside].sum(axis=1) == 0  # the last column counts nulls
    return _cleared(
        "schema",
        window.days,
        ok,
        window.rows,
        0.0,
        settings.max_failing_row_share,
        ["schema_context", "column", "check", "failure_case", "index"],
        lambda i, day: "every row conforms",
    )


def _timestamp_exprs(contract: DataContract) -> list[pl.Expr]:
    stamp = pl.col(contract.timestamp_column)
    return [
        stamp.max().alias("ts|latest"),
        stamp.min().alias("ts|earliest"),
        stamp.null_count().alias("ts|nulls"),
    ]


def _stamps_present(per_day: pl.DataFrame) -> np.ndarray:
    """Per day: no null timestamp, and none at the int64 minimum (pandas reads it as NaT)."""
    earliest = per_day["ts|earliest"].cast(pl.Int64).to_numpy()
    return (per_day["ts|nulls"].to_numpy() == 0) & (earliest > np.iinfo(np.int64).min)


def _timestamps(window: _Window, per_day: pl.DataFrame):
    """Days whose every timestamp is present and before the end of the day."""
    contract = window.contract
    ends = np.array(
        [np.datetime64(dt.date.fromisoformat(d) + dt.timedelta(days=1), "ns") for d in window.days]
    )
    latest = per_day["ts|latest"].cast(pl.Datetime("ns")).to_numpy()
    passing = (window.rows > 0) & _stamps_present(per_day) & (latest < ends)
    return _cleared(
        "timestamps",
        window.days,
        passing,
        window.rows,
        0.0,
        0.0,
        [contract.id_column, contract.timestamp_column],
        lambda i, day: f"every timestamp is on or before {day}",
    )


def _clear(effect: np.ndarray, floor: float, alpha: float, p_value) -> np.ndarray:
    """Where an expectation (fails when p < alpha and effect > floor) passes beyond doubt.

    `p_value(mask)` gives the p-values of the days in `mask`; it is only asked for the days
    whose effect exceeds the floor, so clean data never imports scipy.
    """
    with np.errstate(invalid="ignore"):
        ok = effect <= floor * (1 - MARGIN)
    need = ~ok
    if need.any():
        ok[need] = p_value(need) >= alpha * (1 + MARGIN)
    return ok


def _clip(rate: float) -> float:
    return min(max(rate, 1e-6), 1 - 1e-6)


def _binom_greater(count: np.ndarray, n: np.ndarray, expected: float):
    """p-values (for a mask of days) that a rate exceeds `expected`: binomtest 'greater'."""

    def p_value(mask: np.ndarray) -> np.ndarray:
        from scipy import stats

        k, m = count[mask], n[mask]
        return np.where(m > 0, stats.binom.sf(k - 1, np.maximum(m, 1), _clip(expected)), 1.0)

    return p_value


def _statistics_exprs(profile: Profile | None, numeric: list[str]) -> list[pl.Expr]:
    if profile is None:
        return []
    exprs = []
    for c in (c for c in profile.numeric if c in numeric):
        ref, column = profile.numeric[c], pl.col(c)
        exprs += [
            column.count().alias(f"{c}|count"),
            column.mean().alias(f"{c}|mean"),
            column.std(ddof=1).alias(f"{c}|std"),
            ((column < ref.q_low) | (column > ref.q_high)).sum().alias(f"{c}|outside"),
        ]
    return exprs


def _mean_p(mean: np.ndarray, count: np.ndarray, ref: NumericProfile):
    """p-values of the reference's z-test on the mean, for a mask of days."""

    def p_value(mask: np.ndarray) -> np.ndarray:
        from scipy import stats

        z = (mean[mask] - ref.mean) / (ref.std / np.sqrt(np.maximum(count[mask], 1)))
        return 2 * stats.norm.sf(np.abs(z))

    return p_value


def _std_p(std: np.ndarray, count: np.ndarray, ref: NumericProfile):
    """p-values of the reference's two-sided chi-square test on the variance."""

    def p_value(mask: np.ndarray) -> np.ndarray:
        from scipy import stats

        n = count[mask]
        statistic = (n - 1) * std[mask] ** 2 / ref.std**2
        cdf = stats.chi2.cdf(statistic, np.maximum(n - 1, 1))
        return 2 * np.minimum(cdf, 1 - cdf)

    return p_value


def _statistics(window: _Window, per_day: pl.DataFrame, settings: ScreenSettings):
    """Days where every statistical expectation holds against the profile, with margin."""
    profile, policy = settings.profile, settings.policy
    if profile is None:
        return {}
    numeric = [c for c in profile.numeric if c in window.numeric]
    categorical = [c for c in profile.categorical if c in window.categorical]
    n = window.rows
    ok = n > 0
    for c in numeric:
        ref = profile.numeric[c]
        count = per_day[f"{c}|count"].fill_null(0).to_numpy().astype(np.int64)
        mean = per_day[f"{c}|mean"].to_numpy().astype(float)
        std = per_day[f"{c}|std"].to_numpy().astype(float)
        outside = per_day[f"{c}|outside"].fill_null(0).to_numpy().astype(np.int64)
        # Far from zero relative to its spread, a mean or a deviation loses digits to rounding
        # (polars' and numpy's differ by 1e-5 at |mean|/std near 1e13): such days are the
        # reference's to judge.
        with np.errstate(invalid="ignore"):
            ok &= (count < 2) | ((np.abs(mean) <= 1e6 * std) & (abs(ref.mean) <= 1e6 * ref.std))
        if ref.std > 0:
            with np.errstate(invalid="ignore", divide="ignore"):
                effect = np.abs(mean - ref.mean) / ref.std
                ratio = np.maximum(std / ref.std, ref.std / std)
            ok &= (count == 0) | _clear(
                effect, policy.min_mean_shift_std, policy.alpha, _mean_p(mean, count, ref)
            )
            ok &= (count < 3) | (
                (std > 0)
                & _clear(ratio, policy.min_std_ratio, policy.alpha, _std_p(std, count, ref))
            )
        excess = np.where(count > 0, outside / np.maximum(count, 1) - _clip(ref.tail_share), 0.0)
        ok &= _clear(
            excess,
            policy.min_tail_excess,
            policy.alpha,
            _binom_greater(outside, count, ref.tail_share),
        )
        ok &= _null_rate_clear(n - count, n, ref.null_rate, policy)
    for c in categorical:
        ok &= _categories_clear(window, c, profile.categorical[c], policy)
    expectations = 4 * len(numeric) + 3 * len(categorical)
    return _cleared(
        "statistics",
        window.days,
        ok,
        n,
        0.0,
        0.0,
        EXPECTATION_CASE_COLUMNS,
        lambda i, day: (
            f"{expectations} expectations hold against the reference ({profile.rows} rows)"
        ),
    )


def _null_rate_clear(
    nulls: np.ndarray, n: np.ndarray, reference: float, policy: StatisticalPolicy
) -> np.ndarray:
    safe = np.maximum(n, 1)
    excess = np.where(n > 0, nulls / safe - _clip(reference), 0.0)
    rate = np.where(n > 0, nulls / safe, 0.0)
    p_value = _binom_greater(nulls, n, reference)
    return _clear(excess, policy.min_null_rate_excess, policy.alpha, p_value) & (
        rate <= policy.max_null_rate
    )


def _categories_clear(
    window: _Window, column: str, ref: CategoricalProfile, policy: StatisticalPolicy
) -> np.ndarray:
    """Per day: null rate, category mix (distance and chi-square) and unseen share."""
    counts, categories = window.category_counts(column)
    ok = _null_rate_clear(counts[:, -1], window.rows, ref.null_rate, policy)
    present = counts[:, :-1]
    seen = np.array([c in ref.proportions for c in categories], dtype=bool)
    unseen = present[:, ~seen].sum(axis=1)
    totals = present.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ok &= (totals == 0) | (unseen / totals <= policy.max_unseen_category_share * (1 - MARGIN))
    for i in np.flatnonzero(ok & (totals > 0)):
        # The reference's categories: the profile's and the day's own, in sorted order.
        observed_of = {c: n for c, n in zip(categories, present[i], strict=True) if n}
        names = sorted(set(ref.proportions) | set(observed_of))
        observed = np.array([observed_of.get(k, 0) for k in names], dtype=float)
        expected = np.array([ref.proportions.get(k, 0.0) for k in names]) + 1e-4
        expected /= expected.sum()
        distance = 0.5 * float(np.abs(observed / totals[i] - expected).sum())
        if distance > policy.min_category_distance * (1 - MARGIN):
            from scipy import stats

            p = float(stats.chisquare(observed, expected * totals[i]).pvalue)
            ok[i] = p >= policy.alpha * (1 + MARGIN)
    return ok


def _label_join(window: _Window, settings: ScreenSettings):
    """Days where every batch row has exactly one allowed label and every label a batch row."""
    contract, labels = settings.contract, window.labels
    passing = (
        labels.readable
        & window.unique_ids
        & labels.unique
        & (labels.bad == 0)
        & (labels.matched == labels.n)
        & (labels.n == window.rows)
        & (window.rows > 0)
    )
    return _cleared(
        "label_join",
        window.days,
        passing,
        window.rows,
        1.0,
        settings.min_join_rate,
        ["problem", "id"],
        lambda i, day: (
            f"join rate {1.0:.4f} (batch->labels {1.0:.4f}, labels->batch {1.0:.4f}), "
            f"0 label values outside {contract.label_values}, 0 duplicate labelled ids"
        ),
    )


def _positive_rate(window: _Window, settings: ScreenSettings):
    """Days whose positive rate is within the effect floor of the reference (no test needed)."""
    profile, labels = settings.profile, window.labels
    if profile is None or profile.positive_rate is None:
        return {}
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = labels.positives / labels.n
    floor = settings.policy.min_positive_rate_shift
    passing = (
        labels.readable
        & (labels.n > 0)
        & (np.abs(rate - _clip(profile.positive_rate)) <= floor * (1 - MARGIN))
    )
    return _cleared(
        "positive_rate",
        window.days,
        passing,
        labels.n,
        0.0,
        0.0,
        EXPECTATION_CASE_COLUMNS,
        lambda i, day: f"positive rate {rate[i]:.4f} vs reference {profile.positive_rate:.4f}",
    )


def _label_groups(groups: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each row's (group, label) as one integer: 2 * group + label, `y` holding 0 or 1."""
    return np.asarray(groups, dtype=np.int64) * 2 + np.asarray(y, dtype=np.int64)


def _counts_by_label(
    label_groups: np.ndarray, codes: np.ndarray, n_groups: int, n_codes: int
) -> tuple[np.ndarray, np.ndarray]:
    """(negatives, positives) per group and code, counted in one pass over the rows."""
    return _counts_from_keys(codes * (2 * n_groups) + label_groups, n_groups, n_codes)


def _counts_from_keys(
    keys: np.ndarray, n_groups: int, n_codes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Counts of keys `code * 2 * n_groups + 2 * group + label`, as (negatives, positives)."""
    counts = np.bincount(keys, minlength=n_codes * n_groups * 2).reshape(n_codes, n_groups, 2)
    return counts[:, :, 0].T.astype(np.float64), counts[:, :, 1].T.astype(np.float64)


def binned_auc_bounds(
    codes: np.ndarray,
    groups: np.ndarray,
    y: np.ndarray,
    n_groups: int,
    n_bins: int,
    *,
    exact_bins: bool = False,
    label_groups: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per group, bounds (low, high) of the ROC AUC of a score that only bins order.

    `codes` are the bins of the score (a higher bin is a higher score), `groups` the group of
    each row. Pairs in different bins count exactly; pairs sharing a bin could be ordered either
    way, so they count 0 in `low` and 1 in `high`, unless `exact_bins` says every bin holds one
    value (then they are ties and count half in both). The exact AUC, ties counting half as in the
    Mann-Whitney statistic, lies between the two.
    """
    if label_groups is None:
        label_groups = _label_groups(groups, y)
    negatives, positives = _counts_by_label(label_groups, codes, n_groups, n_bins)
    return _bounds_from_counts(negatives, positives, exact_bins)


def _bounds_from_counts(
    negatives: np.ndarray, positives: np.ndarray, exact_bins: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) AUC bounds per group (row) from counts per bin (column); see above."""
    below = np.cumsum(negatives, axis=1) - negatives  # negatives in strictly lower bins
    ordered = (positives * below).sum(axis=1)
    tied = (positives * negatives).sum(axis=1)
    pairs = positives.sum(axis=1) * negatives.sum(axis=1)
    if exact_bins:
        low = high = ordered + 0.5 * tied
    else:
        low, high = ordered, ordered + tied
    with np.errstate(invalid="ignore", divide="ignore"):
        return low / pairs, high / pairs


@dataclass(frozen=True)
class Bins:
    """How a numeric score is binned: one bin per integer, or equal widths between quantiles."""

    offset: float
    scale: float
    n_bins: int
    exact: bool  # every bin holds a single value

    def expr(self, column: pl.Expr) -> pl.Expr:
        """The bin of each value (0 .. n_bins - 1), as a polars expression."""
        if self.exact:
            return (column - self.offset).cast(pl.Int64)
        scaled = ((column - self.offset) * self.scale).floor().clip(-1, self.n_bins - 2)
        return scaled.cast(pl.Int64) + 1


def plan_bins(frame: pl.DataFrame, names: list[str], n_bins: int) -> dict[str, Bins]:
    """Bins for each of `names` (finite, non-null float columns of `frame`).

    Integer-valued columns with fewer distinct candidates than `n_bins` get one bin per integer,
    a constant column one bin; other columns get bins of equal width between their 0.1% and
    99.9% quantiles (estimated on an evenly spaced sample), with the tails in the two end bins.
    A column whose span cannot be scaled in floating point (near the limits of a double) gets
    no bins: its AUC is left to the reference.
    """
    if not names or len(frame) == 0:
        return {}
    extremes = frame.select(
        *[pl.col(c).min().alias(f"{c}|min") for c in names],
        *[pl.col(c).max().alias(f"{c}|max") for c in names],
        *[(pl.col(c) != pl.col(c).round()).sum().alias(f"{c}|fractional") for c in names],
    ).row(0, named=True)
    sample = frame.select(names).gather_every(max(1, len(frame) // 20_000))
    plans = {}
    for c in names:
        low, high = float(extremes[f"{c}|min"]), float(extremes[f"{c}|max"])
        if high == low:
            plans[c] = Bins(low, 1.0, 1, True)
            continue
        if high - low < n_bins and extremes[f"{c}|fractional"] == 0:
            plans[c] = Bins(low, 1.0, int(high - low) + 1, True)
            continue
        q_low, q_high = (float(q) for q in np.quantile(sample[c].to_numpy(), [0.001, 0.999]))
        if q_high <= q_low:
            q_low, q_high = low, high
        with np.errstate(over="ignore", divide="ignore"):
            scale = (n_bins - 2) / (q_high - q_low)
            extreme = max(abs(low - q_low), abs(high - q_low)) * scale
        if np.isfinite(scale) and np.isfinite(extreme):
            plans[c] = Bins(q_low, scale, n_bins, False)
    return plans


def bin_codes(values: np.ndarray, n_bins: int) -> tuple[np.ndarray, int, bool]:
    """(bin of each value, number of bins, whether each bin holds a single value); see Bins."""
    frame = pl.DataFrame({"v": np.asarray(values, dtype=np.float64)})
    plan = plan_bins(frame, ["v"], n_bins)["v"]
    codes = frame.select(plan.expr(pl.col("v")))["v"].to_numpy()
    return codes, plan.n_bins, plan.exact


def category_aucs(
    codes: np.ndarray,
    groups: np.ndarray,
    y: np.ndarray,
    n_groups: int,
    n_codes: int,
    *,
    label_groups: np.ndarray | None = None,
) -> np.ndarray:
    """Exact AUC per group of scoring each row by its category's positive rate in its group."""
    if label_groups is None:
        label_groups = _label_groups(groups, y)
    negatives, positives = _counts_by_label(label_groups, codes, n_groups, n_codes)
    return _category_auc_from_counts(negatives, positives)


def _category_auc_from_counts(negatives: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """Per group (row), the AUC of scoring each category (column) by its positive rate."""
    totals = negatives + positives
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = positives / totals
    higher = rate[:, :, None] > rate[:, None, :]
    equal = rate[:, :, None] == rate[:, None, :]
    pair = positives[:, :, None] * negatives[:, None, :]
    wins = (pair * higher).sum(axis=(1, 2)) + 0.5 * (pair * equal).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return wins / (positives.sum(axis=1) * negatives.sum(axis=1))


def finite_scores(frame: pl.DataFrame, fills: dict[str, pl.Expr]) -> pl.DataFrame:
    """The numeric scores `fills` computes, keeping only the columns with every value finite."""
    scores = frame.select(**fills)
    complete = scores.select(
        (pl.all().is_finite().all() & (pl.all().null_count() == 0)).name.keep()
    ).row(0, named=True)
    return scores.select([c for c, ok in complete.items() if ok])


def auc_ceilings(
    numeric: pl.DataFrame,
    categorical: dict[str, tuple[np.ndarray, int]],
    groups: np.ndarray,
    y: np.ndarray,
    n_groups: int,
) -> dict[str, np.ndarray]:
    """Per group, an upper bound of each feature's folded single-feature AUC (see the module).

    `numeric` holds finite, non-null float scores (one column per feature); `categorical` holds
    category codes and their count, scored exactly by their positive rate within the group, as
    the reference does.
    """
    ceilings = {}
    label_groups = _label_groups(groups, y)
    plans = plan_bins(numeric, numeric.columns, BINS)
    # Bin and key every column in one polars pass (both cores), then count with numpy.
    lg = pl.lit(pl.Series(label_groups))
    keys = numeric.select(
        [(plans[c].expr(pl.col(c)) * (2 * n_groups) + lg).alias(c) for c in plans]
    )
    for name in plans:
        negatives, positives = _counts_from_keys(
            keys[name].to_numpy(), n_groups, plans[name].n_bins
        )
        low, high = _bounds_from_counts(negatives, positives, plans[name].exact)
        ceilings[name] = np.maximum(high, 1 - low)
    for name, (codes, n_codes) in categorical.items():
        auc = category_aucs(codes, groups, y, n_groups, n_codes, label_groups=label_groups)
        ceilings[name] = np.maximum(auc, 1 - auc)
    return ceilings


def _leakage(window: _Window, settings: ScreenSettings):
    """Days on which no feature's AUC can reach the leak bound."""
    labels = window.labels
    # The reference joins one to one: days with repeated or missing ids are its to judge.
    usable = labels.readable & labels.unique & window.unique_ids & (labels.bad == 0)
    if labels.y is None or not usable.any():
        return {}
    labelled = labels.y.is_not_null().to_numpy() & usable[window.day_of_row]
    if not labelled.any():
        return {}
    every_row = bool(labelled.all())
    y = labels.y.fill_null(False).to_numpy().astype(np.float64)
    if not every_row:
        y = y[labelled]
    groups = window.day_of_row if every_row else window.day_of_row[labelled]
    n_days = len(window.days)
    frame = window.frame if every_row else window.frame.filter(pl.Series(labelled))
    # The reference scores a missing value at its day's median.
    numeric = finite_scores(
        frame,
        {
            c: pl.col(c).fill_null(pl.col(c).median().over(DAY)) if frame[c].null_count() else c
            for c in window.numeric
        },
    )
    categorical = {}
    for name in window.categorical:
        codes, categories = window.codes(name)
        codes = codes if every_row else codes[labelled]
        if not (codes == len(categories)).any():  # nulls are the reference's to score
            categorical[name] = (codes, len(categories))
    ceilings = auc_ceilings(numeric, categorical, groups, y, n_days)
    rows = np.bincount(groups, minlength=n_days)
    positives = np.bincount(groups, weights=y, minlength=n_days)
    complete = len(ceilings) == len(window.numeric) + len(window.categorical)
    names = list(ceilings)
    stacked = np.vstack([ceilings[n] for n in names]) if names else np.zeros((0, n_days))
    with np.errstate(invalid="ignore"):
        top = stacked.max(axis=0) if names else np.full(n_days, np.nan)
    bound = settings.max_single_feature_auc
    passing = (
        usable & complete & (positives > 0) & (positives < rows) & (top <= bound * (1 - MARGIN))
    )
    reports = _cleared(
        "leakage",
        window.days,
        passing,
        rows,
        top,
        bound,
        [],
        lambda i, day: f"best single-feature ROC AUC at most {top[i]:.4f} (screened)",
    )
    for i, day in enumerate(window.days):
        if day in reports:
            order = np.argsort(-stacked[:, i])[:10]
            table = pd.DataFrame(
                {
                    "feature": [names[k] for k in order],
                    "single_feature_auc_at_most": stacked[order, i],
                }
            )
            reports[day] = dataclasses.replace(reports[day], failure_cases=table)
    return reports


# --- the training window ------------------------------------------------------------------------


def read_examples(path: Path, columns: list[str], categorical: list[str]) -> pl.DataFrame:
    """The columns of the training dataset file the window gates read.

    Text columns of few values (`categorical`) stay dictionary-encoded, as stored: a fraction of
    the memory of a million strings each, and the same equalities and hashes within the frame.
    """
    import pyarrow.parquet as pq

    return pl.from_arrow(pq.read_table(path, columns=columns, read_dictionary=categorical))


def _crosses_splits(keys: pl.Series, splits: pl.Series) -> bool:
    """Whether any key value occurs in two different splits."""
    if keys.n_unique() == len(keys):
        return False  # no value occurs twice at all (the usual case, and the cheap one)
    parts = [keys.filter(splits == name) for name in splits.unique().to_list()]
    return any(
        parts[i].is_in(parts[j].implode()).any()
        for i in range(len(parts))
        for j in range(i + 1, len(parts))
    )


def splits_clear(examples: pl.DataFrame, contract: DataContract, split_column: str) -> bool:
    """True when provably no id and no identical feature row sits in two splits.

    Ids and feature rows are compared by 64-bit hash: equal values have equal hashes, so no
    shared hash means nothing shared (a collision only sends the check to the exact reference).
    """
    splits = examples[split_column]
    if splits.null_count():
        return False
    columns = [c for c in contract.feature_columns if c in examples.columns]
    features = examples.select(columns)
    # pandas, which the reference compares in, treats NaN as missing: so does the hash here.
    nans = [c for c in columns if features[c].dtype.is_float() and features[c].is_nan().any()]
    if nans:
        features = features.with_columns(pl.col(nans).fill_nan(None))
    return not _crosses_splits(examples[contract.id_column].hash(), splits) and not (
        _crosses_splits(features.hash_rows(), splits)
    )


def labels_per_class(
    examples: pl.DataFrame, contract: DataContract, split_column: str
) -> dict[str, dict[str, int]]:
    """Label counts per split and class (every contract class listed, zero when absent)."""
    counts = examples.group_by(split_column, contract.target_column).len()
    table: dict[str, dict[str, int]] = {}
    for split, label, n in counts.iter_rows():
        table.setdefault(str(split), {})[str(label)] = int(n)
    for split in table:
        for label in contract.label_values:
            table[split].setdefault(str(label), 0)
    return dict(sorted((k, dict(sorted(v.items()))) for k, v in table.items()))


def window_auc_ceiling(
    examples: pl.DataFrame, contract: DataContract
) -> tuple[float, pd.DataFrame] | None:
    """Upper bound of the best single-feature AUC over `examples`, with each feature's bound.

    None when some feature cannot be bounded here (a null category, an infinite value, one class).
    """
    y = (examples[contract.target_column] == contract.positive_label).fill_null(False)
    y = y.to_numpy().astype(np.float64)
    if y.sum() in (0, len(y)):
        return None
    present = [c for c in contract.numeric_columns if c in examples.columns]
    values = {c: pl.col(c).cast(pl.Float64).fill_nan(None) for c in present}
    # The reference scores a missing value at the column's median.
    numeric = finite_scores(examples, {c: v.fill_null(v.median()) for c, v in values.items()})
    if numeric.width != len(present):
        return None
    groups = np.zeros(len(y), dtype=np.int64)
    ceilings = {k: float(v[0]) for k, v in auc_ceilings(numeric, {}, groups, y, 1).items()}
    if len(ceilings) != len(present):
        return None  # a column the bins cannot scale: the exact AUCs decide
    positive = (pl.col(contract.target_column) == contract.positive_label).fill_null(False)
    for name in contract.categorical_columns:
        if name not in examples.columns:
            continue
        if examples[name].null_count() or examples[name].dtype not in (pl.String, pl.Categorical):
            return None
        # Scored by its category's positive rate: only the counts per category matter.
        counts = examples.group_by(name).agg(positive.sum().alias("pos"), pl.len().alias("n"))
        positives = counts["pos"].to_numpy().astype(np.float64)[None, :]
        negatives = counts["n"].to_numpy().astype(np.float64)[None, :] - positives
        auc = float(_category_auc_from_counts(negatives, positives)[0])
        ceilings[name] = max(auc, 1 - auc)
    table = pd.DataFrame(
        sorted(ceilings.items(), key=lambda kv: -kv[1])[:10],
        columns=["feature", "single_feature_auc_at_most"],
    )
    return max(ceilings.values()), table
