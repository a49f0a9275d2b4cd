"""The evaluation gates' policy: every threshold, tolerance and budget of the ten gates.

Defaults are meant to hold on data other than the demo: log loss and Brier are judged as skill
against the base-rate predictor, the calibration error relative to the base rate, and the
decision threshold maximises F1 on the validation split; absolute ceilings are opt-in.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ml_assets.data.policy import Severity, StrictModel

# Metrics where lower is better; every other metric is better when higher.
LOWER_IS_BETTER = frozenset({"log_loss", "brier"})
GATE_METRICS = frozenset({"roc_auc", "pr_auc", "log_loss", "brier", "accuracy", "f1"})


class _Gate(StrictModel):
    # ERROR: a failure keeps the candidate off staging. WARN: recorded and shown, not blocking.
    severity: Severity = "ERROR"


class FloorGate(_Gate):
    min_roc_auc: float = Field(0.6, ge=0, le=1)
    min_pr_auc: float = Field(0.0, ge=0, le=1)
    # Skill against the base-rate predictor on the same test rows: 1 - log loss / its log loss.
    min_log_loss_skill: float = Field(0.0, le=1)
    max_log_loss: float | None = Field(None, gt=0)  # an absolute ceiling, opt-in
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
    # Skill against the base-rate predictor: 1 - Brier / its Brier.
    min_brier_skill: float = Field(0.0, le=1)
    # Expected calibration error as a share of the rarer class's rate (0.25: within a quarter).
    max_relative_ece: float = Field(0.25, gt=0)
    max_brier: float | None = Field(None, gt=0, le=1)  # absolute ceilings, opt-in
    max_ece: float | None = Field(None, gt=0, le=1)
    bins: int = Field(10, ge=2, le=100)


class BaselineGate(_Gate):
    # The candidate's test ROC AUC must exceed the logistic regression's by at least this.
    min_roc_auc_gain: float = Field(0.0, ge=-1, le=1)


class OperationalGate(_Gate):
    # Absolute budgets, in CPU time of the scoring thread (evaluation/operational.py).
    max_p50_ms: float = Field(20.0, gt=0)
    max_p99_ms: float = Field(50.0, gt=0)
    # Batch rows per CPU second on one thread.
    min_rows_per_second: float = Field(20_000.0, gt=0)
    max_model_mb: float = Field(20.0, gt=0)
    max_peak_memory_mb: float = Field(1024.0, gt=0)
    # Relative budget against the champion measured beside the candidate: its single-row p50
    # and its per-row batch cost may be at most this many times the champion's.
    max_slowdown: float = Field(3.0, ge=1)
    single_row_requests: int = Field(200, ge=10)
    batch_rows: int = Field(20_000, ge=100)
    # Measurement rounds, interleaved with the champion's; each figure is the minimum.
    rounds: int = Field(5, ge=1, le=100)


class BehaviourGate(_Gate):
    # The cases are the dataset's: dataset.behaviour_cases.
    @model_validator(mode="before")
    @classmethod
    def _cases_moved(cls, data: Any) -> Any:
        if isinstance(data, dict) and "cases" in data:
            raise ValueError(
                "gates.behaviour.cases moved to dataset.behaviour_cases (the cases belong to "
                "the dataset; leave it out when a dataset has none)"
            )
        return data

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
    # Scores at or above it count as positive (F1, accuracy, fairness, McNemar): a number, or
    # max_f1, the score that maximises F1 on the validation split.
    decision_threshold: float | Literal["max_f1"] = "max_f1"
    floors: FloorGate = Field(default_factory=FloorGate)
    baselines: BaselineGate = Field(default_factory=BaselineGate)
    champion: ChampionGate = Field(default_factory=ChampionGate)
    slices: SliceGate = Field(default_factory=SliceGate)
    fairness: FairnessGate = Field(default_factory=FairnessGate)
    calibration: CalibrationGate = Field(default_factory=CalibrationGate)
    operational: OperationalGate = Field(default_factory=OperationalGate)
    behaviour: BehaviourGate = Field(default_factory=BehaviourGate)
    significance: SignificanceGate = Field(default_factory=SignificanceGate)
    reproducibility: ReproducibilityGate = Field(default_factory=ReproducibilityGate)

    @field_validator("decision_threshold")
    @classmethod
    def _between_zero_and_one(cls, value: float | str) -> float | str:
        if isinstance(value, float) and not 0 < value < 1:
            raise ValueError("a fixed decision_threshold lies strictly between 0 and 1")
        return value


def propose_gates(
    rows_per_day: float, positive_rate: float | None, window_days: int, test_share: float
) -> dict:
    """The keys of `gates:` that depend on a dataset's size and base rate, for `schema infer`
    to propose: slice and group floors at 2% of the expected test rows (at least 50), as many
    calibration bins as the test positives fill with about 30 each (2 to 10), and the
    portable defaults for the rest (F1-maximising threshold, skill against the base rate)."""
    test_rows = rows_per_day * window_days * test_share
    positives = test_rows * (positive_rate if positive_rate is not None else 0.5)
    min_rows = max(50, int(round(test_rows * 0.02, -1)))
    return {
        "decision_threshold": "max_f1",
        "floors": {"min_roc_auc": 0.6, "min_log_loss_skill": 0.0},
        "baselines": {"min_roc_auc_gain": 0.0},
        "slices": {"min_rows": min_rows},
        "fairness": {"min_group_rows": min_rows},
        "calibration": {
            "min_brier_skill": 0.0,
            "max_relative_ece": 0.25,
            "bins": int(max(2, min(10, positives // 30))),
        },
    }
