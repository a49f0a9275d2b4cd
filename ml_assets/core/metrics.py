"""Held-out metrics of a binary classifier's scores."""

from __future__ import annotations

import numpy as np


def classification_metrics(
    y_true: np.ndarray, scores: np.ndarray, threshold: float
) -> dict[str, float]:
    """ROC AUC, log loss, Brier score and accuracy at `threshold`, with counts and rates."""
    from sklearn import metrics

    if len(np.unique(y_true)) < 2:
        raise ValueError(f"metrics need both classes; got only {np.unique(y_true).tolist()}")
    predicted = (scores >= threshold).astype(int)
    return {
        "roc_auc": float(metrics.roc_auc_score(y_true, scores)),
        "log_loss": float(metrics.log_loss(y_true, scores, labels=[0, 1])),
        "brier": float(metrics.brier_score_loss(y_true, scores)),
        "accuracy": float(metrics.accuracy_score(y_true, predicted)),
        "positive_rate": float(np.mean(y_true)),
        "mean_score": float(np.mean(scores)),
        "rows": float(len(y_true)),
    }
