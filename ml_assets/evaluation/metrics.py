"""Held-out metrics of a binary classifier's scores: aggregate, calibration, slices, fairness."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml_assets.evaluation.evidence import Calibration


def _both_classes(y_true: np.ndarray, what: str = "metrics") -> None:
    if len(np.unique(y_true)) < 2:
        raise ValueError(f"{what} need both classes; got only {np.unique(y_true).tolist()}")


def classification_metrics(
    y_true: np.ndarray, scores: np.ndarray, threshold: float
) -> dict[str, float]:
    """ROC AUC, PR AUC, log loss, Brier, and accuracy/F1/precision/recall at `threshold`."""
    from sklearn import metrics

    _both_classes(y_true)
    predicted = (scores >= threshold).astype(int)
    return {
        "roc_auc": float(metrics.roc_auc_score(y_true, scores)),
        "pr_auc": float(metrics.average_precision_score(y_true, scores)),
        "log_loss": float(metrics.log_loss(y_true, scores, labels=[0, 1])),
        "brier": float(metrics.brier_score_loss(y_true, scores)),
        "accuracy": float(metrics.accuracy_score(y_true, predicted)),
        "f1": float(metrics.f1_score(y_true, predicted, zero_division=0)),
        "precision": float(metrics.precision_score(y_true, predicted, zero_division=0)),
        "recall": float(metrics.recall_score(y_true, predicted, zero_division=0)),
        "positive_rate": float(np.mean(y_true)),
        "predicted_positive_rate": float(np.mean(predicted)),
        "mean_score": float(np.mean(scores)),
        "rows": float(len(y_true)),
    }


def calibration(y_true: np.ndarray, scores: np.ndarray, bins: int) -> Calibration:
    """Expected calibration error over `bins` equal-width bins, and the curve behind it.

    ECE = sum over bins of (rows in bin / rows) * |mean score in bin - positive rate in bin|.
    scikit-learn has the curve (calibration_curve) but not the error, so the error is computed
    here from the same equal-width bins; empty bins contribute nothing.
    """
    from sklearn.metrics import brier_score_loss

    scores = np.asarray(scores, dtype=float)
    y_true = np.asarray(y_true, dtype=float)
    if len(scores) == 0:
        raise ValueError("calibration needs at least one scored row")
    index = np.minimum((scores * bins).astype(int), bins - 1)
    rows = np.bincount(index, minlength=bins)
    score_sum = np.bincount(index, weights=scores, minlength=bins)
    positive_sum = np.bincount(index, weights=y_true, minlength=bins)
    filled = rows > 0
    mean_score = score_sum[filled] / rows[filled]
    positive_rate = positive_sum[filled] / rows[filled]
    ece = float(np.sum(rows[filled] / len(scores) * np.abs(mean_score - positive_rate)))
    return Calibration(
        ece=ece,
        brier=float(brier_score_loss(y_true, scores)),
        bin_mean_score=mean_score.round(6).tolist(),
        bin_positive_rate=positive_rate.round(6).tolist(),
        bin_rows=rows[filled].astype(int).tolist(),
    )


def group_fairness(
    y_true: np.ndarray,
    scores: np.ndarray,
    groups: pd.Series,
    threshold: float,
    min_group_rows: int = 1,
) -> dict:
    """Demographic parity and equalized odds differences across `groups` (fairlearn).

    Groups with fewer than `min_group_rows` rows or a single class are left out (listed under
    "excluded_groups"). Also the per-group selection rate, true and false positive rates.
    """
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )

    y_true = np.asarray(y_true)
    predicted = (np.asarray(scores) >= threshold).astype(int)
    groups = groups.astype(str).to_numpy()
    excluded = sorted(
        g
        for g in set(groups)
        if np.sum(groups == g) < min_group_rows or len(np.unique(y_true[groups == g])) < 2
    )
    kept = ~np.isin(groups, excluded)
    y_true, predicted, groups = y_true[kept], predicted[kept], groups[kept]
    if len(set(groups)) < 2:
        return {
            "demographic_parity_difference": 0.0,
            "equalized_odds_difference": 0.0,
            "groups": [],
            "excluded_groups": excluded,
        }
    frame = MetricFrame(
        metrics={
            "selection_rate": selection_rate,
            "true_positive_rate": true_positive_rate,
            "false_positive_rate": false_positive_rate,
        },
        y_true=y_true,
        y_pred=predicted,
        sensitive_features=groups,
    )
    by_group = frame.by_group.reset_index().rename(columns={"sensitive_feature_0": "group"})
    by_group["rows"] = [int(np.sum(groups == g)) for g in by_group["group"]]
    return {
        "demographic_parity_difference": float(
            demographic_parity_difference(y_true, predicted, sensitive_features=groups)
        ),
        "equalized_odds_difference": float(
            equalized_odds_difference(y_true, predicted, sensitive_features=groups)
        ),
        "groups": by_group.round(4).to_dict(orient="records"),
        "excluded_groups": excluded,
    }
