"""The training stage's policy: the window, the split, the model and where it is registered."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ml_assets.data.policy import StrictModel


class SplitSettings(StrictModel):
    validation: float = Field(gt=0, lt=0.5)
    test: float = Field(gt=0, lt=0.5)


class TrainingSettings(StrictModel):
    window_days: int = Field(ge=1)
    min_window_days: int = Field(1, ge=1)
    split: SplitSettings
    seed: int = 42
    registered_model_name: str
    experiment_name: str
    lightgbm: dict[str, Any]
    num_boost_round: int = Field(ge=1)
    early_stopping_rounds: int = Field(0, ge=0)
