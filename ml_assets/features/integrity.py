"""Split integrity of a training window: ids and identical feature rows shared between splits."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ml_assets.data.contract import DataContract
from ml_assets.features.examples import SPLIT_COLUMN


@dataclass(frozen=True)
class SplitIntegrity:
    ids_in_several_splits: list[str]
    duplicate_rows_across_splits: int
    duplicate_sample: pd.DataFrame


def split_integrity(examples: pd.DataFrame, contract: DataContract) -> SplitIntegrity:
    """Ids that sit in more than one split, and identical feature rows found in different splits."""
    per_id = examples.groupby(contract.id_column)[SPLIT_COLUMN].nunique()
    shared_ids = sorted(per_id[per_id > 1].index.astype(str))
    columns = [c for c in contract.feature_columns if c in examples.columns]
    keyed = pd.Series(pd.util.hash_pandas_object(examples[columns], index=False).to_numpy())
    # Only rows whose features occur more than once can cross splits; group just those.
    repeated = keyed.duplicated(keep=False).to_numpy()
    splits = examples[SPLIT_COLUMN].to_numpy()[repeated]
    splits_per_row = pd.Series(splits).groupby(keyed[repeated].to_numpy()).nunique()
    leaking_keys = splits_per_row[splits_per_row > 1].index
    duplicated = examples[keyed.isin(leaking_keys).to_numpy()]
    return SplitIntegrity(shared_ids, len(duplicated), duplicated.head(10))
