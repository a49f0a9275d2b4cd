"""The monitoring stage's policy: how drift is measured and when it calls for a retrain."""

from __future__ import annotations

from pydantic import Field

from ml_assets.data.policy import StrictModel


class DriftSettings(StrictModel):
    reference_sample_rows: int = Field(20000, ge=100)
    drifted_columns_share: float = Field(gt=0, le=1)
    retrain_on_drift: bool = True
