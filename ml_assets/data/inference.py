"""Schema inference: propose a data contract from a trusted window of batches.

The batches of the window are profiled into a proposed contract: numeric columns get observed
ranges widened by `margin` times the observed span and rounded outward, text columns with few
values become categorical, and the configured roles (id, timestamp, target, positive label,
slices, sensitive columns) are kept where their columns exist. `diff_contracts` says how a
proposal differs from the current contract; `render_dataset_yaml` writes it in the shape of the
`dataset:` section of pipeline.yaml. The command line is `python -m ml_assets.cli.schema infer`.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import yaml

from ml_assets.data.contract import DataContract, NumericColumn

MAX_CATEGORIES = 50
"""A text column with at most this many distinct values is proposed as categorical."""
ID_UNIQUE_SHARE = 0.99
"""Share of distinct non-null values above which a text column counts as (nearly) unique."""
MIN_NUMERIC_SHARE = 0.5
"""A column whose values are mostly numbers is proposed as numeric (the rest is reported)."""
HEADER_MARK = "# ml_assets schema proposal"
"""First line of every proposal; an existing file without it is never overwritten."""

_ISO_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?$"
)
_WINDOW_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:\.\.(\d{4}-\d{2}-\d{2}))?$")
_WINDOW_LAST = re.compile(r"^last:(\d+)$")
_EXAMPLES = 3


# --- windows -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """Which batches are trusted: the inclusive range start..end, or the newest `last` batches."""

    start: dt.date | None = None
    end: dt.date | None = None
    last: int | None = None

    def __str__(self) -> str:
        return f"last:{self.last}" if self.last is not None else f"{self.start}..{self.end}"


def parse_window(text: str) -> Window:
    """Parse `YYYY-MM-DD..YYYY-MM-DD` (inclusive), `YYYY-MM-DD` (one day) or `last:N`."""
    value = text.strip()
    last = _WINDOW_LAST.match(value)
    if last:
        count = int(last.group(1))
        if count < 1:
            raise ValueError(f"window {text!r}: last:N needs N >= 1")
        return Window(last=count)
    dates = _WINDOW_RANGE.match(value)
    if not dates:
        raise ValueError(
            f"window {text!r} is not YYYY-MM-DD..YYYY-MM-DD (inclusive), YYYY-MM-DD or last:N"
        )
    try:
        start = dt.date.fromisoformat(dates.group(1))
        end = dt.date.fromisoformat(dates.group(2) or dates.group(1))
    except ValueError as error:
        raise ValueError(f"window {text!r} names an impossible date: {error}") from None
    if start > end:
        raise ValueError(f"window {text!r} starts after it ends")
    return Window(start=start, end=end)


def select_days(days: Sequence[str], window: Window) -> list[str]:
    """The batch dates (YYYY-MM-DD) of `days` that fall in `window`, oldest first."""
    ordered = sorted(days)
    if window.last is not None:
        return ordered[-window.last :]
    assert window.start is not None and window.end is not None
    first, last = window.start.isoformat(), window.end.isoformat()
    return [day for day in ordered if first <= day <= last]


# --- profiling -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proposal:
    """A proposed contract and what the profile could not express in it."""

    contract: DataContract
    unrepresented: dict[str, str] = field(default_factory=dict)
    """Columns of the batches that are not in the proposal, with the reason."""
    warnings: list[str] = field(default_factory=list)


def nice_bounds(
    low: float, high: float, margin: float, *, integral: bool = False
) -> tuple[float, float]:
    """Observed [low, high] widened by `margin` x the span on each side and rounded outward.

    Bounds round to a power of ten no larger than the widening (so the result contains the
    observed values with at least the margin and at most about twice the margin), to whole
    numbers for integral data, and never go below 0 when `low` is not negative. A constant
    column widens by `margin` x its magnitude (or 1 at 0). `margin` 0 keeps the observed bounds.
    """
    span = high - low
    pad = margin * span if span > 0 else margin * max(abs(high), abs(low), 1.0)
    lower, upper = low - pad, high + pad
    if pad > 0:
        exponent = math.floor(math.log10(pad))
        if integral:
            exponent = max(exponent, 0)
        step = 10.0**exponent
        lower = math.floor(lower / step) * step
        upper = math.ceil(upper / step) * step
        if exponent < 0:
            lower, upper = round(lower, -exponent), round(upper, -exponent)
        # Rounding to the step's digits may land a hair inside the observed values: never allow it.
        lower, upper = min(lower, low), max(upper, high)
    if low >= 0:
        lower = max(lower, 0.0)
    return lower, upper


def _number(value: float | None) -> int | float | None:
    """A bound as YAML should show it: whole numbers as ints."""
    if value is None:
        return None
    number = float(value)
    if number.is_integer() and abs(number) < 2**53:
        return int(number)
    return number


def _column(batches: Mapping[str, pd.DataFrame], name: str) -> pd.Series:
    """One column over every batch that has it (batches without it contribute nothing)."""
    parts = [frame[name] for frame in batches.values() if name in frame.columns]
    if len(parts) == 1:
        return parts[0].reset_index(drop=True)
    return pd.concat(parts, ignore_index=True)


def _is_text(series: pd.Series) -> bool:
    if pd.api.types.is_string_dtype(series.dtype) and not pd.api.types.is_object_dtype(
        series.dtype
    ):
        return True
    if not pd.api.types.is_object_dtype(series.dtype):
        return False
    values = series.dropna()
    return len(values) > 0 and bool(values.map(lambda v: isinstance(v, str)).all())


def _is_datetime_like(series: pd.Series) -> bool:
    """A datetime dtype, or text whose every value is an ISO date or date-time."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return True
    if not _is_text(series):
        return False
    values = series.dropna().astype(str)
    if not values.map(lambda v: bool(_ISO_DATETIME.match(v))).all():
        return False
    parsed = pd.to_datetime(values, errors="coerce", format="ISO8601", utc=True)
    return bool(parsed.notna().all())


def _nearly_unique(series: pd.Series) -> bool:
    values = series.dropna()
    return len(values) > 0 and values.nunique() >= ID_UNIQUE_SHARE * len(values)


def _looks_like_id(name: str, id_column: str) -> bool:
    lowered = name.lower()
    return lowered == id_column.lower() or lowered == "id" or lowered.endswith(("_id", "id"))


def _examples(values: pd.Series) -> str:
    shown = [repr(v) for v in pd.unique(values)[:_EXAMPLES]]
    return ", ".join(shown)


def _numeric_values(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(numbers, non-numeric non-null values) of a column, whatever its dtype."""
    if pd.api.types.is_bool_dtype(series.dtype):
        series = series.astype("float64")
    if pd.api.types.is_numeric_dtype(series.dtype):
        return series.dropna().astype("float64"), series.iloc[0:0]
    values = series.dropna()
    if len(values) and values.map(lambda v: isinstance(v, bool)).any():
        values = values.map(lambda v: float(v) if isinstance(v, bool) else v)
    numbers = pd.to_numeric(values, errors="coerce")
    return numbers.dropna().astype("float64"), values[numbers.isna()]


def _profile_numeric(
    name: str, series: pd.Series, margin: float, warnings: list[str]
) -> NumericColumn:
    numbers, other = _numeric_values(series)
    nulls = int(series.isna().sum())
    if len(other):
        warnings.append(
            f"{name}: {len(other)} of {len(series)} values are not numbers "
            f"(e.g. {_examples(other)}); batches holding them fail the proposed schema"
        )
    finite = numbers[numbers.map(math.isfinite)]
    if len(finite) < len(numbers):
        warnings.append(f"{name}: {len(numbers) - len(finite)} infinite values left out of range")
    if finite.empty:
        warnings.append(f"{name}: no numeric value observed; proposed without bounds")
        return NumericColumn(nullable=nulls > 0)
    integral = bool((finite % 1 == 0).all())
    low, high = nice_bounds(float(finite.min()), float(finite.max()), margin, integral=integral)
    return NumericColumn(min=_number(low), max=_number(high), nullable=nulls > 0)


def _label_value(value: Any) -> int | str:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if hasattr(value, "item"):  # numpy scalars
        return _label_value(value.item())
    return str(value)


def observed_label_values(labels: pd.Series) -> list[int | str]:
    """Distinct non-null label values, as ints where they are whole numbers, sorted."""
    values = {_label_value(v) for v in labels.dropna().tolist()}
    return sorted(values, key=lambda v: (isinstance(v, str), v))


def _pick_role(
    role: str,
    configured: str,
    candidates: list[str],
    present: Sequence[str],
    warnings: list[str],
) -> str:
    """The configured column when present; else the first candidate (reported); else configured."""
    if configured in present:
        return configured
    if candidates:
        chosen = candidates[0]
        others = f" (other candidates: {', '.join(candidates[1:])})" if candidates[1:] else ""
        warnings.append(
            f"{role} {configured!r} is absent from the window; {chosen!r} is proposed instead"
            f"{others}"
        )
        return chosen
    warnings.append(f"{role} {configured!r} is absent from the window and nothing replaces it")
    return configured


def propose_contract(
    batches: Mapping[str, pd.DataFrame],
    current: DataContract,
    *,
    labels: pd.Series | None = None,
    margin: float = 0.1,
) -> Proposal:
    """Profile the batches of a trusted window (day -> raw frame) into a proposed contract.

    Numeric columns get bounds from `nice_bounds` and `nullable` only when nulls were seen; text
    columns with at most MAX_CATEGORIES values are categorical (sorted observed values); a
    (nearly) unique text column named like the configured id column is the id; a datetime-like
    column is the timestamp. Roles of `current` are kept where their columns exist. `labels`
    holds the target values of a separate labels folder; without it the target is taken from
    the batches when they have the target column.
    """
    if not batches:
        raise ValueError("no batch to profile")
    if margin < 0:
        raise ValueError(f"margin must be non-negative, got {margin}")
    warnings: list[str] = []
    unrepresented: dict[str, str] = {}
    columns: list[str] = []
    for frame in batches.values():
        columns.extend(str(c) for c in frame.columns if str(c) not in columns)
    for name in columns:
        missing = [day for day, frame in batches.items() if name not in frame.columns]
        if missing:
            shown = ", ".join(missing[:_EXAMPLES]) + (" ..." if len(missing) > _EXAMPLES else "")
            warnings.append(
                f"{name}: absent from {len(missing)} of {len(batches)} batches ({shown}); "
                "batches without it fail the proposed schema"
            )
    series = {name: _column(batches, name) for name in columns}

    target = current.target_column
    if labels is None and target in series:
        labels = series[target]
    elif labels is not None and target in series:
        warnings.append(
            f"target {target!r} is both a batch column and in the labels folder; "
            "the batch column is left out of the proposal"
        )
    profiled = [c for c in columns if c != target]

    id_candidates = [
        c
        for c in profiled
        if _looks_like_id(c, current.id_column)
        and _is_text(series[c])
        and _nearly_unique(series[c])
    ]
    id_column = _pick_role("id column", current.id_column, id_candidates, profiled, warnings)
    if id_column in series:
        ids = series[id_column]
        if not _is_text(ids):
            warnings.append(f"id column {id_column!r} holds {ids.dtype} values; ids must be text")
        if ids.isna().any():
            warnings.append(f"id column {id_column!r} has {int(ids.isna().sum())} null ids")
        if not _nearly_unique(ids):
            warnings.append(f"id column {id_column!r} is not (nearly) unique over the window")

    rest = [c for c in profiled if c != id_column]
    datetimes = [c for c in rest if _is_datetime_like(series[c])]
    timestamp = _pick_role("timestamp column", current.timestamp_column, datetimes, rest, warnings)
    if timestamp in series and not _is_datetime_like(series[timestamp]):
        warnings.append(f"timestamp column {timestamp!r} is not datetime-like")

    numeric: dict[str, NumericColumn] = {}
    categorical: dict[str, list[str]] = {}
    for name in rest:
        if name == timestamp:
            continue
        values = series[name]
        if name in datetimes:
            unrepresented[name] = "datetime-like, and the contract has a single timestamp column"
            continue
        numbers, other = _numeric_values(values)
        non_null = int(values.notna().sum())
        if non_null == 0 or len(numbers) >= MIN_NUMERIC_SHARE * non_null:
            numeric[name] = _profile_numeric(name, values, margin, warnings)
            continue
        distinct = sorted({str(v) for v in values.dropna().tolist()})
        if len(distinct) <= MAX_CATEGORIES:
            categorical[name] = distinct
            if values.isna().any():
                warnings.append(
                    f"{name}: {int(values.isna().sum())} nulls, but categorical columns cannot "
                    "be null in the contract"
                )
            continue
        unrepresented[name] = (
            f"{len(distinct)} distinct text values (e.g. {_examples(other)}): too many for a "
            f"categorical column (max {MAX_CATEGORIES}) and not the id"
        )
    for name, reason in unrepresented.items():
        warnings.append(f"{name}: left out of the proposal, {reason}")

    if labels is not None and len(labels.dropna()):
        label_values = observed_label_values(labels)
        if labels.isna().any():
            warnings.append(f"target {target!r}: {int(labels.isna().sum())} null labels")
    else:
        label_values = list(current.label_values)
        warnings.append(f"no value of target {target!r} observed; label_values kept as configured")
    positive = current.positive_label
    if positive not in label_values:
        warnings.append(
            f"positive_label {positive!r} was never observed; kept in label_values anyway"
        )
        label_values.append(positive)

    declared = set(numeric) | set(categorical)
    roles: dict[str, list[str]] = {}
    for key in ("slice_columns", "sensitive_columns"):
        configured = list(getattr(current, key))
        roles[key] = [c for c in configured if c in declared]
        dropped = [c for c in configured if c not in declared]
        if dropped:
            warnings.append(f"{key}: {', '.join(dropped)} dropped (not a declared column)")

    contract = DataContract(
        name=current.name,
        id_column=id_column,
        timestamp_column=timestamp,
        target_column=target,
        positive_label=positive,
        label_values=label_values,
        numeric_columns=numeric,
        categorical_columns=categorical,
        slice_columns=roles["slice_columns"],
        sensitive_columns=roles["sensitive_columns"],
    )
    return Proposal(contract=contract, unrepresented=unrepresented, warnings=warnings)


# --- diffing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContractDiff:
    """How a proposed contract differs from the current one (column name -> detail)."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kind_changed: dict[str, str] = field(default_factory=dict)
    widened: dict[str, str] = field(default_factory=dict)
    narrowed: dict[str, str] = field(default_factory=dict)
    shifted: dict[str, str] = field(default_factory=dict)
    nullability: dict[str, str] = field(default_factory=dict)
    categories_added: dict[str, list[str]] = field(default_factory=dict)
    categories_removed: dict[str, list[str]] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not any(getattr(self, name) for name in self.__dataclass_fields__)

    def lines(self, unrepresented: Mapping[str, str] | None = None) -> list[str]:
        """One line per kind of change; removed columns that are in the batches but could not be
        declared (`unrepresented`) are named separately."""
        left_out = set(unrepresented or ())
        removed = [c for c in self.removed if c not in left_out]
        not_declared = [c for c in self.removed if c in left_out]
        out: list[str] = []
        if self.added:
            out.append(f"columns added: {', '.join(self.added)}")
        if removed:
            out.append(f"columns removed: {', '.join(removed)}")
        if not_declared:
            out.append(
                f"columns removed (present but cannot be declared, see warnings): "
                f"{', '.join(not_declared)}"
            )
        for label, changes in (
            ("kind changed", self.kind_changed),
            ("range widened", self.widened),
            ("range narrowed", self.narrowed),
            ("range shifted (wider and narrower)", self.shifted),
            ("nullable changed", self.nullability),
            ("role changed", self.roles),
        ):
            out.extend(f"{label}: {name} {detail}" for name, detail in changes.items())
        for label, sign, categories in (
            ("categories added", "+", self.categories_added),
            ("categories removed", "-", self.categories_removed),
        ):
            out.extend(
                f"{label}: {name} {sign}[{', '.join(values)}]"
                for name, values in categories.items()
            )
        return out or ["no change"]


def _fmt(value: float | None) -> str:
    return "none" if value is None else str(_number(value))


def _bound_change(old: float | None, new: float | None, *, lower: bool) -> str | None:
    """'wider', 'narrower' or None for one bound (None means unbounded)."""
    if old == new:
        return None
    if old is None:
        return "narrower"
    if new is None:
        return "wider"
    return "wider" if (new < old) == lower else "narrower"


def diff_contracts(current: DataContract, proposed: DataContract) -> ContractDiff:
    """Columns added/removed, kinds, ranges, nullability, categories and roles that changed."""
    diff = ContractDiff(
        added=[c for c in proposed.feature_columns if c not in current.feature_columns],
        removed=[c for c in current.feature_columns if c not in proposed.feature_columns],
    )
    for name in proposed.feature_columns:
        if name not in current.feature_columns:
            continue
        was_numeric, is_numeric = name in current.numeric_columns, name in proposed.numeric_columns
        if was_numeric != is_numeric:
            kinds = ("categorical", "numeric")
            diff.kind_changed[name] = f"{kinds[was_numeric]} -> {kinds[is_numeric]}"
        elif is_numeric:
            old, new = current.numeric_columns[name], proposed.numeric_columns[name]
            changes = {
                _bound_change(old.min, new.min, lower=True),
                _bound_change(old.max, new.max, lower=False),
            } - {None}
            detail = f"[{_fmt(old.min)}, {_fmt(old.max)}] -> [{_fmt(new.min)}, {_fmt(new.max)}]"
            if changes == {"wider"}:
                diff.widened[name] = detail
            elif changes == {"narrower"}:
                diff.narrowed[name] = detail
            elif changes:
                diff.shifted[name] = detail
            if old.nullable != new.nullable:
                diff.nullability[name] = (
                    f"{str(old.nullable).lower()} -> {str(new.nullable).lower()}"
                )
        else:
            old_values = current.categorical_columns[name]
            new_values = proposed.categorical_columns[name]
            added = [v for v in new_values if v not in old_values]
            removed = [v for v in old_values if v not in new_values]
            if added:
                diff.categories_added[name] = added
            if removed:
                diff.categories_removed[name] = removed
    for key in ("id_column", "timestamp_column", "target_column", "positive_label"):
        if getattr(current, key) != getattr(proposed, key):
            diff.roles[key] = f"{getattr(current, key)!r} -> {getattr(proposed, key)!r}"
    for key in ("label_values", "slice_columns", "sensitive_columns"):
        old_list, new_list = list(getattr(current, key)), list(getattr(proposed, key))
        if set(map(repr, old_list)) != set(map(repr, new_list)):
            diff.roles[key] = f"{old_list} -> {new_list}"
    return diff


# --- rendering -----------------------------------------------------------------------------------


def dataset_block(
    contract: DataContract,
    *,
    features_dir: str,
    labels_dir: str | None,
    demo: bool,
    behaviour_cases: str | None = None,
) -> dict[str, Any]:
    """The proposal as the `dataset:` section of pipeline.yaml: same keys, same order."""
    numeric: dict[str, dict[str, Any]] = {}
    for name, spec in contract.numeric_columns.items():
        entry: dict[str, Any] = {}
        if spec.min is not None:
            entry["min"] = _number(spec.min)
        if spec.max is not None:
            entry["max"] = _number(spec.max)
        if spec.nullable:
            entry["nullable"] = True
        numeric[name] = entry
    return {
        "name": contract.name,
        "features_dir": features_dir,
        "labels_dir": labels_dir,
        "demo": demo,
        "behaviour_cases": behaviour_cases,
        "id_column": contract.id_column,
        "timestamp_column": contract.timestamp_column,
        "target_column": contract.target_column,
        "positive_label": contract.positive_label,
        "label_values": list(contract.label_values),
        "numeric_columns": numeric,
        "categorical_columns": {k: list(v) for k, v in contract.categorical_columns.items()},
        "slice_columns": list(contract.slice_columns),
        "sensitive_columns": list(contract.sensitive_columns),
    }


def _flow(value: Any) -> str:
    """One YAML value on one line (flow style), quoted where YAML needs it."""
    text = yaml.safe_dump(
        value, default_flow_style=True, sort_keys=False, width=1_000_000, allow_unicode=True
    )
    if text.endswith("\n...\n"):
        text = text[: -len("\n...\n")]
    return text.strip()


def render_dataset_yaml(block: Mapping[str, Any]) -> str:
    """`dataset:` and its keys in the layout of pipeline.yaml (one line per column)."""
    lines = ["dataset:"]
    for key, value in block.items():
        if key in ("numeric_columns", "categorical_columns"):
            if not value:
                lines.append(f"  {key}: {{}}")
                continue
            lines.append(f"  {key}:")
            lines.extend(f"    {_flow(name)}: {_flow(spec)}" for name, spec in value.items())
        else:
            lines.append(f"  {key}: {_flow(value)}")
    return "\n".join(lines) + "\n"


def comment(lines: Sequence[str]) -> str:
    """Lines as a YAML comment block."""
    return "".join(f"# {line}".rstrip() + "\n" for line in lines)


# --- command line --------------------------------------------------------------------------------
