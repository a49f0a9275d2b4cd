"""The evaluation gates' policy: every threshold, tolerance and budget of the nine gates."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from ml_assets.data.policy import Severity, StrictModel

# Metrics where lower is better; every other metric is better when higher.
LOWER_IS_BETTER = frozenset({"log_loss", "brier"})
GATE_METRICS = frozenset({"roc_auc", "pr_auc", "log_loss", "brier", "accuracy", "f1"})


class _Gate(StrictModel):
    # ERROR: a failure keeps the candidate off staging. WARN: recorded and shown, not blocking.
    severity: Severity = "ERROR"


class FloorGate(_Gate):
    min_roc_auc: float = Field(0.7, ge=0, le=1)
    min_pr_auc: float = Field(0.0, ge=0, le=1)
    max_log_loss: float = Field(1.0, gt=0)
    min_f1: float = Field(0.0, ge=0, le=1)
    min_accuracy: float = Field(0.0, ge=0, le=1)


class ChampionGate(_Gate):
    # Largest tolerated regression per metric against the production model (absolute units).
    max_regression: dict[str, float] = Field(default_factory=lambda: {"roc_auc": 0.01})

    @field_validator("max_regression")
    @classmethod
    def _known_metrics(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - GATE_METRICS)
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; known: {sorted(GATE_METRICS)}")
        if any(v < 0 for v in value.values()):
            raise ValueError("tolerances must be >= 0")
        return value


class SliceGate(_Gate):
    min_rows: int = Field(200, ge=10)
    min_roc_auc: float = Field(0.6, ge=0, le=1)
    # A slice fails against the champion when its ROC AUC drops by more than this AND the drop
    # is significant at significance.confidence (paired bootstrap on the slice's rows).
    max_regression: float = Field(0.03, ge=0, le=1)


class FairnessGate(_Gate):
    # Groups with fewer test rows, or with one class only, are left out: their rates are noise
    # (fairlearn counts the true-positive rate of a group without positives as 0).
    min_group_rows: int = Field(200, ge=1)
    max_demographic_parity_difference: float = Field(0.1, ge=0, le=1)
    max_equalized_odds_difference: float = Field(0.1, ge=0, le=1)
    # Largest tolerated increase of either difference against the champion.
    max_regression: float = Field(0.02, ge=0, le=1)


class CalibrationGate(_Gate):
    max_brier: float = Field(0.25, gt=0, le=1)
    max_ece: float = Field(0.05, gt=0, le=1)
    bins: int = Field(10, ge=2, le=100)


class OperationalGate(_Gate):
    max_p50_ms: float = Field(20.0, gt=0)
    max_p99_ms: float = Field(50.0, gt=0)
    min_rows_per_second: float = Field(20_000.0, gt=0)
    max_model_mb: float = Field(20.0, gt=0)
    max_peak_memory_mb: float = Field(1024.0, gt=0)
    single_row_requests: int = Field(200, ge=10)
    batch_rows: int = Field(20_000, ge=100)


class BehaviourGate(_Gate):
    # YAML file of behaviour cases (minimum functionality, invariance, directional), relative to
    # this file; null skips the gate with a recorded reason.
    cases: Path | None = None
    # Test rows that the invariance and directional perturbations are applied to.
    sample_rows: int = Field(1000, ge=10)
    # Score change that counts as "unchanged" (invariance) or "not lower" (directional).
    score_tolerance: float = Field(0.02, ge=0, le=1)
    # Share of perturbed rows allowed to break an invariance or directional expectation.
    max_failure_rate: float = Field(0.01, ge=0, le=1)


class SignificanceGate(_Gate):
    # non_inferior: the AUC difference's lower confidence bound is above -margin.
    # superior: additionally the lower bound is above 0 (a significant improvement).
    rule: Literal["non_inferior", "superior"] = "superior"
    confidence: float = Field(0.95, gt=0.5, lt=1)
    non_inferiority_margin: float = Field(0.01, ge=0, le=1)
    bootstrap_samples: int = Field(1000, ge=100)
    seed: int = 0


class ReproducibilityGate(_Gate):
    # Largest score difference on the test rows between the candidate and a retrain.
    max_score_difference: float = Field(0.0, ge=0)


class GateSettings(StrictModel):
    # Scores at or above it count as predicted defaults (F1, accuracy, fairness, McNemar).
    decision_threshold: float = Field(gt=0, lt=1)
    floors: FloorGate = Field(default_factory=FloorGate)
    champion: ChampionGate = Field(default_factory=ChampionGate)
    slices: SliceGate = Field(default_factory=SliceGate)
    fairness: FairnessGate = Field(default_factory=FairnessGate)
    calibration: CalibrationGate = Field(default_factory=CalibrationGate)
    operational: OperationalGate = Field(default_factory=OperationalGate)
    behaviour: BehaviourGate = Field(default_factory=BehaviourGate)
    significance: SignificanceGate = Field(default_factory=SignificanceGate)
    reproducibility: ReproducibilityGate = Field(default_factory=ReproducibilityGate)
