"""Labelled examples: a deterministic split, and the one feature function that training and
scoring share."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ml_assets.data.contract import DataContract

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

SPLIT_COLUMN = "split"


def build_features(frame: pd.DataFrame, contract: DataContract) -> pd.DataFrame:
    """The model's input matrix from raw batch rows; training and scoring both call this.

    Numeric columns become float64; categorical columns become pandas categoricals with the
    contract's categories in the contract's order, so codes mean the same in training and serving.
    Sensitive columns are never model inputs.
    """
    import pandas as pd

    missing = [c for c in contract.model_features if c not in frame.columns]
    if missing:
        raise KeyError(f"rows lack model feature column(s) {missing}")
    out = pd.DataFrame(index=frame.index)
    for name in contract.model_features:
        if name in contract.numeric_columns:
            out[name] = pd.to_numeric(frame[name], errors="raise").astype("float64")
        else:
            out[name] = pd.Categorical(frame[name], categories=contract.categorical_columns[name])
    return out


def assign_split(ids: pd.Series, *, seed: int, validation: float, test: float) -> np.ndarray:
    """Deterministic train/validation/test assignment by a salted hash of each id.

    The same id always lands in the same split, whatever window it is read in, so no id can be in
    two splits and a retrained model never sees its predecessor's test rows in training.
    """
    import numpy as np
    import pandas as pd

    # siphash with a seed-derived key: vectorised, and stable across processes and machines.
    key = f"{seed:016d}"[-16:]
    buckets = pd.util.hash_pandas_object(ids.astype(str), index=False, hash_key=key).to_numpy()
    unit = buckets / np.float64(2**64)
    return np.where(unit < test, "test", np.where(unit < test + validation, "validation", "train"))
