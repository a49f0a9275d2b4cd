"""Evaluation gate decisions: pure functions from metrics and thresholds to a verdict."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GateDecision:
    """A gate's verdict with its evidence: value, threshold, reference value and why."""

    gate: str
    passed: bool
    value: float
    threshold: float
    reference: float | None
    reason: str


def auc_floor(candidate_auc: float, floor: float) -> GateDecision:
    """The candidate's test ROC AUC must reach an absolute floor."""
    passed = candidate_auc >= floor
    verb = "reaches" if passed else "is below"
    return GateDecision(
        gate="auc_floor",
        passed=passed,
        value=candidate_auc,
        threshold=floor,
        reference=None,
        reason=f"ROC AUC {candidate_auc:.4f} {verb} the floor {floor:.4f}",
    )


def auc_regression(
    candidate_auc: float, champion_auc: float | None, tolerance: float
) -> GateDecision:
    """The candidate may not lose more than `tolerance` ROC AUC against the production model.

    Both are scored on the same test rows. With no production model the gate passes and says so.
    """
    if champion_auc is None:
        return GateDecision(
            gate="auc_regression",
            passed=True,
            value=0.0,
            threshold=tolerance,
            reference=None,
            reason="no champion: no model holds the production alias yet",
        )
    drop = champion_auc - candidate_auc
    passed = drop <= tolerance
    verb = "within" if passed else "beyond"
    return GateDecision(
        gate="auc_regression",
        passed=passed,
        value=drop,
        threshold=tolerance,
        reference=champion_auc,
        reason=(
            f"ROC AUC {candidate_auc:.4f} vs champion {champion_auc:.4f}: drop {drop:+.4f} "
            f"{verb} tolerance {tolerance:.4f}"
        ),
    )
