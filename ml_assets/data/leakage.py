"""Label leakage: how well a single feature ranks the label, and a conservative bound on it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml_assets.data.contract import DataContract, labels_to_binary


def rank_auc(scores: np.ndarray, y: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney rank sum (ties share their average rank).

    The same number as sklearn's roc_auc_score, without its per-call input validation, which
    dominates when dozens of columns of many batches are scored.
    """
    from scipy.stats import rankdata

    positives = int(y.sum())
    negatives = len(y) - positives
    ranks = rankdata(scores)
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def single_feature_aucs(frame: pd.DataFrame, contract: DataContract) -> dict[str, float]:
    """How well each feature alone ranks the label: ROC AUC folded to [0.5, 1].

    Numeric features score by value (nulls at the median); categorical features score by the
    positive rate of their category in `frame`. `frame` holds the features and the target.
    """
    y = labels_to_binary(frame[contract.target_column], contract.positive_label)
    if len(np.unique(y)) < 2:
        return {}
    aucs = {}
    for name in contract.feature_columns:
        if name not in frame.columns:
            continue
        if name in contract.numeric_columns:
            values = pd.to_numeric(frame[name], errors="coerce")
            score = values.fillna(values.median()).to_numpy(dtype=float)
        else:
            codes, _ = pd.factorize(frame[name].astype(str))
            rate = np.bincount(codes, weights=y) / np.bincount(codes)
            score = rate[codes]
        auc = 0.5 if np.all(score == score[0]) else rank_auc(score, y)
        aucs[name] = max(auc, 1 - auc)
    return aucs


def auc_lower_bound(auc: float, n_pos: int, n_neg: int, z: float = 3.0) -> float:
    """A conservative lower confidence bound of a ROC AUC (Hanley and McNeil, 1982).

    The AUC is first pulled below 1 by half a count of the smaller class, so a perfect ranking
    of 7 positives does not get a zero standard error: small batches need stronger evidence.
    """
    if n_pos == 0 or n_neg == 0:
        return 0.5
    a = min(auc, 1 - 0.5 / min(n_pos, n_neg))
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    variance = (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (
        n_pos * n_neg
    )
    return a - z * float(np.sqrt(max(variance, 0.0)))
