"""The data contract: which columns a batch has, their types, ranges and roles."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


class NumericColumn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    min: float | None = None
    max: float | None = None
    nullable: bool = False


class DataContract(BaseModel):
    """Columns of a daily batch and the role of each (id, timestamp, target, slice, sensitive)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    name: str
    id_column: str
    timestamp_column: str
    target_column: str
    positive_label: int | str = 1
    label_values: list[int | str] = Field(default_factory=lambda: [0, 1])
    numeric_columns: dict[str, NumericColumn]
    categorical_columns: dict[str, list[str]]
    slice_columns: list[str] = Field(default_factory=list)
    sensitive_columns: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _columns_are_declared(self) -> DataContract:
        declared = set(self.numeric_columns) | set(self.categorical_columns)
        for key in ("slice_columns", "sensitive_columns"):
            unknown = sorted(set(getattr(self, key)) - declared)
            if unknown:
                raise ValueError(f"{key} names undeclared columns {unknown}")
        if self.positive_label not in self.label_values:
            raise ValueError(f"positive_label {self.positive_label!r} is not in label_values")
        return self

    @property
    def feature_columns(self) -> list[str]:
        """Every declared column of a batch besides the id and timestamp."""
        return [*self.numeric_columns, *self.categorical_columns]

    @property
    def model_features(self) -> list[str]:
        """Columns the model sees: every declared column except the sensitive ones."""
        return [c for c in self.feature_columns if c not in self.sensitive_columns]


def labels_to_binary(labels: pd.Series, positive_label: int | str) -> np.ndarray:
    """1 where the label is the positive class, else 0."""
    import numpy as np

    return (labels == positive_label).to_numpy(dtype=np.int8)
