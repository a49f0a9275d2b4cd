"""Known answers for confidence-based performance estimation (monitoring/estimation)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ml_assets.monitoring.estimation import estimate, expected_roc_auc


def test_the_expected_roc_curve_of_two_score_groups():
    # Half the rows at 0.8, half at 0.2, n each: expected positives 0.8n + 0.2n = n, negatives
    # n. At threshold 0.8: TPR 0.8, FPR 0.2; at 0.2: (1, 1). Area: 0.08 + 0.8 * 1.8 / 2 = 0.80.
    scores = np.array([0.8] * 50 + [0.2] * 50)
    assert expected_roc_auc(scores) == pytest.approx(0.80)
    assert expected_roc_auc(scores[::-1]) == pytest.approx(0.80)  # order does not matter


def test_the_expected_confusion_matrix_at_a_threshold():
    e = estimate(np.array([0.9, 0.6, 0.3, 0.1, np.nan]), threshold=0.5)
    assert e.rows == 4  # a row without a score is not counted
    assert (e.true_positives, e.false_positives) == pytest.approx((1.5, 0.5))
    assert (e.false_negatives, e.true_negatives) == pytest.approx((0.4, 1.6))
    assert e.precision == pytest.approx(0.75)
    assert e.recall == pytest.approx(1.5 / 1.9)
    assert e.accuracy == pytest.approx(3.1 / 4)
    assert e.expected_positive_rate == pytest.approx(0.475)


def test_it_matches_the_mean_auc_of_labels_drawn_from_calibrated_scores():
    rng = np.random.default_rng(0)
    scores = rng.beta(2, 5, size=3000)
    realized = [roc_auc_score(rng.random(len(scores)) < scores, scores) for _ in range(200)]
    assert expected_roc_auc(scores) == pytest.approx(np.mean(realized), abs=0.003)


def test_ties_count_half_as_in_roc_auc_score():
    # Every row at 0.5: the model ranks nothing, so the expected AUC is 0.5.
    assert expected_roc_auc(np.full(10, 0.5)) == pytest.approx(0.5)


def test_nothing_to_rank_gives_no_auc():
    assert expected_roc_auc(np.array([0.7])) is None
    assert expected_roc_auc(np.zeros(5)) is None  # no expected positive
    assert expected_roc_auc(np.ones(5)) is None  # no expected negative
    assert estimate(np.zeros(3), threshold=0.5).precision is None


def test_the_estimate_cannot_see_concept_drift():
    # Calibrated scores estimate the realized AUC; labels flipped upstream (concept drift) do
    # not move the estimate, only the realized AUC: why CBPE warns early and never decides.
    rng = np.random.default_rng(1)
    scores = rng.beta(2, 5, size=5000)
    labels = rng.random(len(scores)) < scores
    estimated = expected_roc_auc(scores)
    assert abs(roc_auc_score(labels, scores) - estimated) < 0.02
    assert roc_auc_score(~labels, scores) < 0.35 < estimated
