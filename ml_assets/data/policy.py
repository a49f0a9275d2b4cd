"""The data stage's policy: where batches live, and how the data gates judge them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ml_assets.data.contract import DataContract
from ml_assets.data.gates import DATA_GATES, Severity

# What each data gate's failure is when validation.severity does not name it.
DEFAULT_SEVERITY: dict[str, Severity] = {gate.name: gate.default_severity for gate in DATA_GATES}


class StrictModel(BaseModel):
    """A policy block: unknown keys are errors, values never change after loading."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


# The contract's own keys, without where the batches live.
CONTRACT_KEYS = frozenset(DataContract.model_fields)


class DatasetSettings(DataContract):
    """The data contract plus where the batches live, and the dataset's behaviour cases."""

    features_dir: Path
    labels_dir: Path | None = None
    demo: bool = False
    # YAML file of behaviour cases for this dataset (minimum functionality, invariance,
    # directional; relative to the config's folder), or none: the behaviour gate then passes
    # with "no behaviour cases configured". Checked to exist when the settings load.
    behaviour_cases: Path | None = None

    @field_validator("behaviour_cases")
    @classmethod
    def _cases_exist(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"no behaviour cases file at {path}")
        return path


class HardBounds(StrictModel):
    """Beyond these a significant shift is an ERROR whatever validation.severity says: the
    batch is quarantined and kept out of training. Ordinary drift stays below them."""

    # A mean this many reference standard deviations away (a unit change, say).
    max_mean_shift_std: float = Field(3.0, gt=0)
    # Standard deviation this many times larger or smaller; a column collapsed to a constant
    # where the reference varies has an infinite ratio.
    max_std_ratio: float = Field(10.0, gt=1)
    # Share of rows outside the reference's 0.1%..99.9% range, beyond the reference's own.
    max_tail_excess: float = Field(0.5, gt=0, le=1)
    # Total variation distance of a categorical column's proportions.
    max_category_distance: float = Field(0.5, gt=0, le=1)
    max_unseen_category_share: float = Field(0.2, gt=0, le=1)
    # Null share of a nullable column.
    max_null_rate: float = Field(0.5, gt=0, le=1)
    # Positive-label rate this far from the reference's (labels flipped upstream, say).
    max_positive_rate_shift: float = Field(0.25, gt=0, le=1)


class StatisticsSettings(StrictModel):
    """Statistical expectations: significance for the batch's size and a floor on the effect."""

    alpha: float = Field(1e-6, gt=0, lt=1)
    min_mean_shift_std: float = Field(0.25, ge=0)
    min_std_ratio: float = Field(1.5, ge=1)
    min_tail_excess: float = Field(0.02, ge=0, le=1)
    min_category_distance: float = Field(0.1, ge=0, le=1)
    max_unseen_category_share: float = Field(0.01, ge=0, le=1)
    min_null_rate_excess: float = Field(0.02, ge=0, le=1)
    max_null_rate: float = Field(0.2, ge=0, le=1)
    min_positive_rate_shift: float = Field(0.05, ge=0, le=1)
    hard: HardBounds = Field(default_factory=HardBounds)

    @model_validator(mode="after")
    def _hard_bounds_beyond_the_floors(self) -> StatisticsSettings:
        pairs = [
            ("min_mean_shift_std", "max_mean_shift_std"),
            ("min_std_ratio", "max_std_ratio"),
            ("min_tail_excess", "max_tail_excess"),
            ("min_category_distance", "max_category_distance"),
            ("max_unseen_category_share", "max_unseen_category_share"),
            ("max_null_rate", "max_null_rate"),
            ("min_positive_rate_shift", "max_positive_rate_shift"),
        ]
        for soft, hard in pairs:
            if getattr(self.hard, hard) < getattr(self, soft):
                raise ValueError(
                    f"hard.{hard} ({getattr(self.hard, hard)}) is below {soft} "
                    f"({getattr(self, soft)}): a hard bound lies beyond the ordinary one"
                )
        return self


class ValidationSettings(StrictModel):
    # full: every row (production, nightly); sample: a seeded fraction of each batch (CI on
    # large data). Label joinability always reads every id.
    depth: Literal["full", "sample"] = "full"
    sample_fraction: float = Field(0.1, gt=0, le=1)
    sample_seed: int = 0
    max_failing_row_share: float = Field(0.0, ge=0, le=1)
    min_label_join_rate: float = Field(0.99, ge=0, le=1)
    label_delay_days: int = Field(0, ge=0)
    failing_rows_sample: int = Field(10, ge=1)
    max_single_feature_auc: float = Field(0.98, gt=0.5, le=1)
    # A batch whose rows are at least this share of one earlier batch's rows, well beyond how
    # often its rows repeat by chance, is a re-delivery (data/redelivery).
    min_redelivered_share: float = Field(0.9, gt=0, le=1)
    leakage_sample_rows: int = Field(200_000, ge=1000)
    # The per-batch leakage gate scores a seeded sample of at most this many rows of each
    # batch, half from each class (all of a rarer class's rows when it has fewer): a leaked
    # feature's AUC is near 1, where a few thousand rows measure it closely, and the gate
    # decides on the AUC's lower confidence bound from the rows it scored.
    batch_leakage_sample_rows: int = Field(5000, ge=500)
    min_labels_per_class: int = Field(50, ge=1)
    parity_sample_rows: int = Field(200, ge=1)
    statistics: StatisticsSettings = Field(default_factory=StatisticsSettings)
    # Per data gate (data/gates.DATA_GATES); a gate not listed keeps its default severity.
    severity: dict[str, Severity] = Field(default_factory=dict)

    @field_validator("severity")
    @classmethod
    def _names_data_gates(cls, severity: dict[str, Severity]) -> dict[str, Severity]:
        """Only the per-batch data gates read this block: any other key is a mistake."""
        unknown = [key for key in severity if key not in DEFAULT_SEVERITY]
        if unknown:
            raise ValueError(
                f"unknown data gate {', '.join(map(repr, unknown))}; "
                f"the gates whose severity is set here are {', '.join(DEFAULT_SEVERITY)}"
            )
        return severity

    def severity_of(self, check: str) -> Severity:
        """pipeline.yaml's severity for this data gate, else the gate's default (data/gates)."""
        if check not in DEFAULT_SEVERITY:
            raise KeyError(f"{check!r} is not a data gate (data/gates.DATA_GATES)")
        return self.severity.get(check, DEFAULT_SEVERITY[check])
