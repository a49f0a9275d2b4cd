"""Performance before labels land: confidence-based performance estimation (CBPE).

CBPE, as NannyML describes it, treats a calibrated score as the probability that the row is
positive. Each row then contributes its expected share to every cell of the confusion matrix:
a row scored p that the model calls positive adds p to the true positives and 1 - p to the
false positives, and a row it calls negative adds p to the false negatives and 1 - p to the
true negatives. Metrics follow from the expected matrix. For ROC AUC, the expected true- and
false-positive rates at every score threshold trace an expected ROC curve, and its area is the
estimate.

The estimate holds while the scores stay calibrated on the new rows. That is true under
covariate shift (the inputs move, P(y | x) does not) and false under concept drift, which only
labels reveal. So this is an early warning before labels land, never a replacement for the
realized performance (monitoring/live.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """Expected performance of `rows` calibrated scores, at a decision threshold."""

    rows: int
    expected_positive_rate: float  # mean score: the positive rate the model expects
    roc_auc: float | None  # None when there is nothing to rank (fewer than two rows, or all
    # scores 0 or all 1: no expected positives or no expected negatives)
    true_positives: float
    false_positives: float
    false_negatives: float
    true_negatives: float

    @property
    def precision(self) -> float | None:
        called = self.true_positives + self.false_positives
        return self.true_positives / called if called > 0 else None

    @property
    def recall(self) -> float | None:
        actual = self.true_positives + self.false_negatives
        return self.true_positives / actual if actual > 0 else None

    @property
    def accuracy(self) -> float | None:
        return (self.true_positives + self.true_negatives) / self.rows if self.rows else None


def expected_roc_auc(scores: np.ndarray) -> float | None:
    """The area under the expected ROC curve of calibrated `scores` (CBPE's ROC AUC).

    Rows with equal scores share one threshold, so ties count half, as in roc_auc_score.
    """
    p = np.asarray(scores, dtype="float64")
    p = p[~np.isnan(p)]
    positives, negatives = p.sum(), (1.0 - p).sum()
    if len(p) < 2 or positives <= 0 or negatives <= 0:
        return None
    # Thresholds from the highest score down; one point per distinct score.
    order = np.argsort(-p, kind="stable")
    ordered = p[order]
    last_of_each = np.r_[np.nonzero(np.diff(ordered))[0], len(ordered) - 1]
    tpr = np.r_[0.0, np.cumsum(ordered)[last_of_each] / positives]
    fpr = np.r_[0.0, np.cumsum(1.0 - ordered)[last_of_each] / negatives]
    return float(np.trapezoid(tpr, fpr))


def estimate(scores: np.ndarray, threshold: float) -> Estimate:
    """CBPE's expected confusion matrix at `threshold` (scores at or above it are called
    positive, as the evaluation gates call them) and its expected ROC AUC."""
    p = np.asarray(scores, dtype="float64")
    p = p[~np.isnan(p)]
    called = p >= threshold
    return Estimate(
        rows=len(p),
        expected_positive_rate=float(p.mean()) if len(p) else float("nan"),
        roc_auc=expected_roc_auc(p),
        true_positives=float(p[called].sum()),
        false_positives=float((1.0 - p[called]).sum()),
        false_negatives=float(p[~called].sum()),
        true_negatives=float((1.0 - p[~called]).sum()),
    )
