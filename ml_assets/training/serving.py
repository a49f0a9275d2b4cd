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


class RecordEncoder:
    """JSON records to the model's matrix, one list of floats per record, without pandas."""

    def __init__(self, contract: DataContract) -> None:
        self.columns = list(contract.model_features)
        # None for a numeric feature, the category -> code table for a categorical one.
        self._codes: list[dict[Any, int] | None] = [
            None
            if name in contract.numeric_columns
            else {value: code for code, value in enumerate(contract.categorical_columns[name])}
            for name in self.columns
        ]

    def row(self, record: Mapping[str, Any]) -> list[float]:
        """One record's model row; KeyError names a missing feature, ValueError a bad number."""
        out = []
        for name, codes in zip(self.columns, self._codes, strict=True):
            try:
                value = record[name]
            except KeyError:
                raise KeyError(f"request record lacks feature {name!r}") from None
            if codes is not None:
                # A value outside the contract's categories is missing, as pd.Categorical has it
                # (an unhashable one, a list say, cannot be a category either).
                try:
                    out.append(float(codes.get(value, math.nan)))
                except TypeError:
                    out.append(math.nan)
            elif value is None:
                out.append(math.nan)
            else:
                try:
                    out.append(float(value))
                except (TypeError, ValueError):
                    raise ValueError(f"request field {name!r}: {value!r} is not a number") from None
        return out

    def matrix(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The model's matrix for `records`, one row per record."""
        return np.array([self.row(r) for r in records], dtype="float64").reshape(
            len(records), len(self.columns)
        )


def score_records(
    booster: lgb.Booster, records: Sequence[Mapping[str, Any]], contract: DataContract
) -> np.ndarray:
    """Scores for JSON records, one request per record, as a request-per-row service computes
    them."""
    encoder = RecordEncoder(contract)
    return np.array([score_record(booster, encoder, r) for r in records])


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
