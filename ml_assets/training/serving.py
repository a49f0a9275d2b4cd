"""The scoring path: records as a serving endpoint receives them, through the same features.

Training calls `build_features` on a DataFrame read from parquet; a service receives JSON
records one at a time. `RecordEncoder` is that second path: it turns a record straight into the
row of numbers LightGBM reads (numbers as float64, a category as its position in the contract's
list, anything else missing), with no DataFrame per request, so a single-row request costs tens
of microseconds rather than the milliseconds a DataFrame costs. `model_matrix` is the same row as
LightGBM derives it from `build_features`' frame; the parity check runs a sample of rows through
both paths and demands identical matrices and scores.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ml_assets.data.contract import DataContract

if TYPE_CHECKING:
    import lightgbm as lgb


def to_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as a client would send them: a JSON round trip (NaN becomes null, times ISO text).

    Python's json writes floats with repr, which round-trips exactly; pandas' to_json would
    round them to 15 digits and fake a training/serving difference.
    """
    rows = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    for row in rows:
        for key, value in row.items():
            if isinstance(value, pd.Timestamp):
                row[key] = value.isoformat()
            elif isinstance(value, np.generic):
                row[key] = value.item()
    return json.loads(json.dumps(rows))


def model_matrix(features: pd.DataFrame) -> np.ndarray:
    """The float matrix LightGBM reads from `build_features`' frame.

    LightGBM replaces a categorical column by its codes and a missing code (-1) by NaN
    (lightgbm.basic._data_from_pandas); numeric columns are read as they are.
    """
    columns = []
    for name in features.columns:
        column = features[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            codes = column.cat.codes.to_numpy().astype("float64")
            codes[codes < 0] = np.nan
            columns.append(codes)
        else:
            columns.append(column.to_numpy(dtype="float64"))
    return np.column_stack(columns) if columns else np.empty((len(features), 0))


class ContractViolation(ValueError):
    """A request record breaks the data contract; the message names the field and the rule."""


class RecordEncoder:
    """JSON records to the model's matrix, one list of floats per record, without pandas.

    With `check` (what the served model does), a record that breaks the data contract is
    refused with a `ContractViolation` naming the field, in the schema gate's words: a missing
    feature, text where a number belongs, a number outside the contract's range, a category
    outside its list, a null where the contract allows none. These are the rules the schema gate
    applies to a batch (data/validation.contract_schema), checked here one record at a time so a
    request costs microseconds; a test holds the two to the same answers. Without `check`, the
    encoder reads a record as LightGBM reads `build_features`' frame (the parity check's
    reference): anything outside a category list or missing becomes NaN.
    """

    def __init__(self, contract: DataContract, *, check: bool = True) -> None:
        self.columns = list(contract.model_features)
        self.check = check
        # None for a numeric feature, the category -> code table for a categorical one.
        self._codes: list[dict[Any, int] | None] = [
            None
            if name in contract.numeric_columns
            else {value: code for code, value in enumerate(contract.categorical_columns[name])}
            for name in self.columns
        ]
        # (min, max, nullable) of a numeric feature; None for a categorical one (never null).
        self._bounds: list[tuple[float, float, bool] | None] = [
            (
                -math.inf if spec.min is None else spec.min,
                math.inf if spec.max is None else spec.max,
                spec.nullable,
            )
            if (spec := contract.numeric_columns.get(name)) is not None
            else None
            for name in self.columns
        ]

    def row(self, record: Mapping[str, Any]) -> list[float]:
        """One record's model row; KeyError names a missing feature, ValueError a bad number,
        ContractViolation (with `check`) a value the contract does not allow."""
        out = []
        for name, codes, bounds in zip(self.columns, self._codes, self._bounds, strict=True):
            try:
                value = record[name]
            except KeyError:
                raise KeyError(f"request record lacks feature {name!r}") from None
            if codes is not None:
                # A value outside the contract's categories is missing, as pd.Categorical has it
                # (an unhashable one, a list say, cannot be a category either).
                try:
                    code = codes.get(value)
                except TypeError:
                    code = None
                if code is None and self.check:
                    raise ContractViolation(
                        f"request field {name!r}: "
                        + (
                            "missing value; the contract does not allow nulls"
                            if value is None
                            else f"{_short(value)} is outside the contract's categories"
                        )
                    )
                out.append(math.nan if code is None else float(code))
            elif value is None:
                if self.check and bounds is not None and not bounds[2]:
                    raise ContractViolation(
                        f"request field {name!r}: missing value; the contract does not allow nulls"
                    )
                out.append(math.nan)
            else:
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    raise ValueError(f"request field {name!r}: {value!r} is not a number") from None
                if self.check and bounds is not None:
                    low, high, nullable = bounds
                    if math.isnan(number) and not nullable:
                        raise ContractViolation(
                            f"request field {name!r}: missing value; the contract does not "
                            "allow nulls"
                        )
                    if number < low:
                        raise ContractViolation(
                            f"request field {name!r}: {number:g} is below the minimum {low:g}"
                        )
                    if number > high:
                        raise ContractViolation(
                            f"request field {name!r}: {number:g} is above the maximum {high:g}"
                        )
                out.append(number)
        return out

    def matrix(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The model's matrix for `records`, one row per record; an error on a record of
        several says which (counted from 0)."""
        rows = []
        for i, record in enumerate(records):
            try:
                rows.append(self.row(record))
            except (KeyError, ValueError) as error:
                if len(records) == 1:
                    raise
                raise type(error)(f"record {i}: {error.args[0]}") from None
        return np.array(rows, dtype="float64").reshape(len(records), len(self.columns))


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def score_record(booster: lgb.Booster, encoder: RecordEncoder, record: Mapping[str, Any]) -> float:
    """One request: one record encoded and scored on one thread."""
    return float(booster.predict(np.array([encoder.row(record)]), num_threads=1)[0])


def feature_differences(batch: np.ndarray, served: np.ndarray, columns: list[str]) -> pd.DataFrame:
    """Cells where the batch path's and the serving path's matrices disagree (NaN equals NaN)."""
    same = (batch == served) | (np.isnan(batch) & np.isnan(served))
    rows, cols = np.nonzero(~same)
    return pd.DataFrame(
        {
            "row": rows.astype(int),
            "column": [columns[c] for c in cols],
            "batch": batch[rows, cols],
            "serving": served[rows, cols],
        },
        columns=["row", "column", "batch", "serving"],
    )
