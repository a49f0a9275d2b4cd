"""The monitoring stage's policy: how drift is measured and when it calls for a retrain."""

from __future__ import annotations

from pydantic import Field

from ml_assets.data.policy import StrictModel


class DriftSettings(StrictModel):
    reference_sample_rows: int = Field(20000, ge=100)
    # A batch drifts when more than this share of its feature columns drifted.
    drifted_columns_share: float = Field(gt=0, le=1)
    # Per-column tests. None: evidently's choice by size: with 1,000 reference rows or more,
    # Wasserstein distance (numeric) and Jensen-Shannon distance (categorical), a column drifting
    # at 0.1 or more; below that, the KS and chi-square tests, drifting at p < 0.05 (on large
    # samples a p-value test flags shifts too small to matter; on small ones a distance is
    # noise). A fork may name any evidently method and its threshold.
    numeric_method: str | None = None
    categorical_method: str | None = None
    numeric_threshold: float | None = Field(None, gt=0)
    categorical_threshold: float | None = Field(None, gt=0)
    # Per-column overrides of the threshold above (a column that matters more, or less).
    column_thresholds: dict[str, float] = Field(default_factory=dict)
    retrain_on_drift: bool = True
    # Retrain only when this many newest measured batches in a row drifted against the same
    # reference: one odd day does not retrain.
    consecutive_batches: int = Field(2, ge=1)


class ObservabilitySettings(StrictModel):
    """pipeline_health: when a stage counts as much slower, or an artefact as much larger."""

    # Earlier runs of each stage its latest run is compared with (their median).
    history_runs: int = Field(20, ge=2)
    # Fewer earlier runs than this: no verdict yet, only the figures.
    min_history: int = Field(3, ge=1)
    max_seconds_ratio: float = Field(3.0, gt=1)
    max_bytes_ratio: float = Field(2.0, gt=1)
    # Stages faster than this are not flagged for slowness: their ratio is timer noise.
    min_seconds: float = Field(1.0, ge=0)
