"""Champion versus challenger on the same rows: paired bootstrap of ROC AUC and McNemar's test."""

from __future__ import annotations

import numpy as np

from ml_assets.evaluation.evidence import Bootstrap, McNemar

# Resamples scored at once: a (chunk x rows) weight matrix of float64, ~30 MB for 36k rows.
_CHUNK = 100


def weighted_aucs(y_true: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC of `scores` under each row of `weights` (k x n), ties counted as one half.

    A bootstrap resample is the original rows weighted by how often each was drawn, so the AUCs
    of k resamples are k weighted AUCs: sort once, sum the weights of each distinct score, and
    count for every positive the negative weight below it (Mann-Whitney). Rows whose resample has
    no positive or no negative are NaN.
    """
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    positive = (y_true[order] == 1).astype(float)
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    w = weights[:, order]
    pos = np.add.reduceat(w * positive, starts, axis=1)
    neg = np.add.reduceat(w * (1.0 - positive), starts, axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg
    pairs = pos.sum(axis=1) * neg.sum(axis=1)
    wins = np.sum(pos * (neg_below + 0.5 * neg), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, wins / pairs, np.nan)


def _resample_weights(rng: np.random.Generator, k: int, n: int) -> np.ndarray:
    """k bootstrap resamples of n rows as draw counts per row (k x n)."""
    draws = rng.integers(0, n, size=(k, n)) + (np.arange(k) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=k * n).reshape(k, n).astype(float)


def paired_bootstrap_auc(
    y_true: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray,
    *,
    samples: int,
    confidence: float,
    seed: int,
) -> Bootstrap:
    """Percentile interval of the AUC difference; both models see the same resampled rows."""
    from sklearn.metrics import roc_auc_score

    y_true = np.asarray(y_true)
    challenger, champion = np.asarray(challenger, float), np.asarray(champion, float)
    if not len(y_true) == len(challenger) == len(champion):
        raise ValueError("challenger, champion and labels must score the same rows")
    rng = np.random.default_rng(seed)
    differences = []
    for start in range(0, samples, _CHUNK):
        weights = _resample_weights(rng, min(_CHUNK, samples - start), len(y_true))
        differences.append(
            weighted_aucs(y_true, challenger, weights) - weighted_aucs(y_true, champion, weights)
        )
    diffs = np.concatenate(differences)
    valid = diffs[~np.isnan(diffs)]
    if len(valid) == 0:
        raise ValueError("no bootstrap resample had both classes; too few labelled rows")
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(valid, [tail, 1.0 - tail])
    return Bootstrap(
        difference=float(roc_auc_score(y_true, challenger) - roc_auc_score(y_true, champion)),
        low=float(low),
        high=float(high),
        confidence=confidence,
        samples=samples,
        valid_samples=len(valid),
    )


def mcnemar_exact(
    y_true: np.ndarray, challenger: np.ndarray, champion: np.ndarray, threshold: float
) -> McNemar:
    """Exact (binomial) McNemar test of the two models' error rates on the same rows."""
    from statsmodels.stats.contingency_tables import mcnemar

    y = np.asarray(y_true) == 1
    right_a = (np.asarray(challenger) >= threshold) == y
    right_b = (np.asarray(champion) >= threshold) == y
    table = [
        [int(np.sum(right_a & right_b)), int(np.sum(right_a & ~right_b))],
        [int(np.sum(~right_a & right_b)), int(np.sum(~right_a & ~right_b))],
    ]
    result = mcnemar(table, exact=True)
    return McNemar(
        both_right=table[0][0],
        only_challenger_right=table[0][1],
        only_champion_right=table[1][0],
        both_wrong=table[1][1],
        p_value=float(result.pvalue),
    )


def slice_comparison(
    slices: dict[str, np.ndarray],
    y_true: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray | None,
    *,
    min_rows: int,
    max_regression: float,
    samples: int,
    confidence: float,
    seed: int,
) -> list[dict]:
    """ROC AUC per slice value (with at least `min_rows` rows and both classes) for both models.

    A slice whose AUC drops by more than `max_regression` gets a paired bootstrap interval of the
    drop, so the gate can tell a real regression from the noise of a small slice; slices within
    tolerance need no test.
    """
    from sklearn.metrics import roc_auc_score

    out = []
    for column, values in slices.items():
        values = np.asarray(values).astype(str)
        for value in sorted(set(values)):
            rows = values == value
            y = y_true[rows]
            if rows.sum() < min_rows or len(np.unique(y)) < 2:
                continue
            entry = {
                "column": column,
                "value": value,
                "rows": int(rows.sum()),
                "positives": int(y.sum()),
                "candidate_roc_auc": float(roc_auc_score(y, challenger[rows])),
                "champion_roc_auc": None,
                "drop_low": None,
                "drop_high": None,
            }
            if champion is not None:
                entry["champion_roc_auc"] = float(roc_auc_score(y, champion[rows]))
                if entry["champion_roc_auc"] - entry["candidate_roc_auc"] > max_regression:
                    boot = paired_bootstrap_auc(
                        y,
                        champion[rows],
                        challenger[rows],
                        samples=samples,
                        confidence=confidence,
                        seed=seed,
                    )
                    entry["drop_low"], entry["drop_high"] = boot.low, boot.high
            out.append(entry)
    return out
