"""The scoring path: records as a serving endpoint receives them, through the same features.

Training calls `build_features` on a DataFrame read from parquet; a service receives JSON
records one at a time. `score_records` is that second path; the parity check runs a sample of
rows through both and demands identical feature matrices and scores.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ml_assets.data.contract import DataContract
from ml_assets.features.examples import build_features

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


def features_for_records(records: list[dict[str, Any]], contract: DataContract) -> pd.DataFrame:
    """The model's input matrix for JSON records, one row per record."""
    frame = pd.DataFrame.from_records(records)
    for name in contract.model_features:
        if name not in frame.columns:
            raise KeyError(f"request records lack feature {name!r}")
    return build_features(frame, contract)


def score_records(
    booster: lgb.Booster, records: list[dict[str, Any]], contract: DataContract
) -> np.ndarray:
    """Scores for JSON records, one record at a time, as a request-per-row service computes them."""
    return np.array(
        [booster.predict(features_for_records([r], contract), num_threads=1)[0] for r in records]
    )


def feature_differences(batch: pd.DataFrame, served: pd.DataFrame) -> pd.DataFrame:
    """Cells where the batch path and the serving path disagree (NaN equals NaN)."""
    rows = []
    for column in batch.columns:
        left, right = batch[column].reset_index(drop=True), served[column].reset_index(drop=True)
        if isinstance(left.dtype, pd.CategoricalDtype) or isinstance(
            right.dtype, pd.CategoricalDtype
        ):
            same = (left.astype(object) == right.astype(object)) | (left.isna() & right.isna())
            if (
                getattr(left.dtype, "categories", None) is not None
                and getattr(right.dtype, "categories", None) is not None
                and list(left.cat.categories) != list(right.cat.categories)
            ):
                same[:] = False
        else:
            same = (left == right) | (left.isna() & right.isna())
        for i in np.flatnonzero(~same.to_numpy()):
            rows.append(
                {"row": int(i), "column": column, "batch": left.iloc[i], "serving": right.iloc[i]}
            )
    return pd.DataFrame(rows, columns=["row", "column", "batch", "serving"])
