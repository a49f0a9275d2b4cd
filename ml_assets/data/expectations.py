"""Statistical expectations: a batch judged against the reference profile of the training window.

Every expectation fires only when the difference is both significant for the batch's size
(p-value below `alpha`) and large enough to matter (effect above its floor), so a 200-row batch
needs a much larger shift than a 20,000-row batch before it fails.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ml_assets.data.contract import DataContract
from ml_assets.data.policy import HardBounds


@dataclass(frozen=True)
class NumericProfile:
    rows: int
    mean: float
    std: float
    q_low: float
    q_high: float
    tail_share: float
    null_rate: float


@dataclass(frozen=True)
class CategoricalProfile:
    rows: int
    proportions: dict[str, float]
    null_rate: float


@dataclass(frozen=True)
class Profile:
    """Per-column statistics of the reference data, and its positive-label rate."""

    rows: int
    numeric: dict[str, NumericProfile]
    categorical: dict[str, CategoricalProfile]
    positive_rate: float | None
    quantiles: tuple[float, float]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> Profile:
        raw = json.loads(path.read_text())
        return cls(
            rows=raw["rows"],
            numeric={k: NumericProfile(**v) for k, v in raw["numeric"].items()},
            categorical={k: CategoricalProfile(**v) for k, v in raw["categorical"].items()},
            positive_rate=raw["positive_rate"],
            quantiles=tuple(raw["quantiles"]),
        )


@dataclass(frozen=True)
class StatisticalPolicy:
    """Thresholds of the statistical expectations (pipeline.yaml: validation.statistics)."""

    alpha: float = 1e-6
    min_mean_shift_std: float = 0.25
    min_std_ratio: float = 1.5
    min_tail_excess: float = 0.02
    min_category_distance: float = 0.1
    max_unseen_category_share: float = 0.01
    min_null_rate_excess: float = 0.02
    max_null_rate: float = 0.2
    min_positive_rate_shift: float = 0.05
    # Beyond these a significant shift blocks whatever the gate's severity
    # (validation.statistics.hard).
    hard: HardBounds = field(default_factory=HardBounds)


def build_profile(
    frame: pd.DataFrame, contract: DataContract, quantiles: tuple[float, float] = (0.001, 0.999)
) -> Profile:
    """Profile `frame` (the reference rows) column by column, as declared by the contract."""
    numeric = {}
    for name in contract.numeric_columns:
        values = pd.to_numeric(frame[name], errors="coerce")
        present = values.dropna()
        low, high = (float(q) for q in present.quantile(list(quantiles)))
        numeric[name] = NumericProfile(
            rows=len(values),
            mean=float(present.mean()),
            std=float(present.std(ddof=1)),
            q_low=low,
            q_high=high,
            tail_share=float(((present < low) | (present > high)).mean()),
            null_rate=float(values.isna().mean()),
        )
    categorical = {}
    for name in contract.categorical_columns:
        values = frame[name]
        counts = values.dropna().astype(str).value_counts(normalize=True)
        categorical[name] = CategoricalProfile(
            rows=len(values),
            proportions={str(k): float(v) for k, v in counts.items()},
            null_rate=float(values.isna().mean()),
        )
    positive = None
    if contract.target_column in frame.columns:
        positive = float((frame[contract.target_column] == contract.positive_label).mean())
    return Profile(
        rows=len(frame),
        numeric=numeric,
        categorical=categorical,
        positive_rate=positive,
        quantiles=quantiles,
    )


# The tests below decide every day of a stack at once: arrays in, arrays out. An expectation
# fails only when its p-value is below alpha and its effect above its floor, so a p-value is
# computed only where the effect exceeds the floor (or `also` asks for it); elsewhere it is NaN,
# not computed and not needed. Clean data thus never even imports scipy.stats.


def fires(p_value: np.ndarray, effect: np.ndarray, alpha: float, floor: float) -> np.ndarray:
    """Where an expectation fails: its difference is both significant (p-value below alpha)
    and large enough to matter (effect above its floor). A p-value not computed never fires."""
    with np.errstate(invalid="ignore"):
        return (np.asarray(p_value) < alpha) & (np.asarray(effect) > floor)


def _clip(rate: float) -> float:
    return min(max(rate, 1e-6), 1 - 1e-6)


def _p_values(mask: np.ndarray, test) -> np.ndarray:
    """`test(mask)` (the p-values of the days in `mask`) where `mask`, NaN elsewhere."""
    p = np.full(mask.shape, np.nan)
    if mask.any():
        p[mask] = test(mask)
    return p


def mean_shift(
    mean: np.ndarray, n: np.ndarray, ref: NumericProfile, floor: float
) -> tuple[np.ndarray, np.ndarray]:
    """(effect in reference standard deviations, two-sided p-value of a z-test on the mean)."""
    n = np.asarray(n, dtype=np.float64)
    mean = np.asarray(mean, dtype=np.float64)
    tested = (n > 0) & (ref.std > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        effect = np.where(tested, np.abs(mean - ref.mean) / ref.std, 0.0)

    def test(mask):
        from scipy import stats

        z = (mean[mask] - ref.mean) / (ref.std / np.sqrt(n[mask]))
        return 2 * stats.norm.sf(np.abs(z))

    return effect, _p_values(tested & (effect > floor), test)


def std_ratio(
    std: np.ndarray, n: np.ndarray, ref: NumericProfile, floor: float
) -> tuple[np.ndarray, np.ndarray]:
    """(ratio of standard deviations, larger over smaller; two-sided chi-square p-value).

    Fewer than three values (or a constant reference) are not tested; a constant batch has an
    infinite ratio and p-value 0.
    """
    n = np.asarray(n, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    tested = (n >= 3) & (ref.std > 0)
    constant = tested & (std == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(tested, np.maximum(std / ref.std, ref.std / std), 1.0)
    ratio = np.where(constant, np.inf, ratio)

    def test(mask):
        from scipy import stats

        cdf = stats.chi2.cdf((n[mask] - 1) * std[mask] ** 2 / ref.std**2, n[mask] - 1)
        return 2 * np.minimum(cdf, 1 - cdf)

    p = _p_values(tested & ~constant & (ratio > floor), test)
    return ratio, np.where(constant, 0.0, p)


def rate_excess(
    count: np.ndarray, n: np.ndarray, expected: float, floor: float, also: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(observed rate minus expected, one-sided binomial p-value that the rate is higher).

    `binom.sf(k - 1, n, p)` is exactly scipy's `binomtest(k, n, p, alternative="greater")`.
    """
    count = np.asarray(count, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    expected = _clip(expected)
    with np.errstate(invalid="ignore", divide="ignore"):
        excess = np.where(n > 0, count / np.maximum(n, 1) - expected, 0.0)

    def test(mask):
        from scipy import stats

        return stats.binom.sf(count[mask] - 1, n[mask], expected)

    wanted = (n > 0) & ((excess > floor) | (False if also is None else also))
    return excess, _p_values(wanted, test)


def rate_shift(
    count: np.ndarray, n: np.ndarray, expected: float, floor: float
) -> tuple[np.ndarray, np.ndarray]:
    """(absolute difference of a rate from `expected`, two-sided binomial p-value)."""
    count = np.asarray(count, dtype=np.int64)
    n = np.asarray(n, dtype=np.int64)
    expected = _clip(expected)
    with np.errstate(invalid="ignore", divide="ignore"):
        shift = np.where(n > 0, np.abs(count / np.maximum(n, 1) - expected), 0.0)

    def test(mask):
        from scipy import stats

        return [
            stats.binomtest(int(k), int(m), expected).pvalue
            for k, m in zip(count[mask], n[mask], strict=True)
        ]

    return shift, _p_values((n > 0) & (shift > floor), test)


def category_shift(
    counts: list[dict[str, int]], ref: CategoricalProfile, floor: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per day: (total variation distance between proportions, chi-square goodness-of-fit
    p-value), from each day's count of every category it holds."""
    distance = np.zeros(len(counts))
    p = np.full(len(counts), np.nan)
    for i, observed_of in enumerate(counts):
        n = sum(observed_of.values())
        if n == 0:
            continue
        categories = sorted(set(ref.proportions) | set(observed_of))
        observed = np.array([observed_of.get(c, 0) for c in categories], dtype=float)
        # A small floor keeps categories the reference never saw from dividing by zero.
        expected = np.array([ref.proportions.get(c, 0.0) for c in categories]) + 1e-4
        expected /= expected.sum()
        distance[i] = 0.5 * float(np.abs(observed / n - expected).sum())
        if distance[i] > floor:
            from scipy import stats

            p[i] = float(stats.chisquare(observed, expected * n).pvalue)
    return distance, p


def auc_lower_bounds(auc, n_pos: int, n_neg: int, z: float = 3.0) -> np.ndarray:
    """A conservative lower confidence bound of ROC AUCs (Hanley and McNeil, 1982).

    The AUC is first pulled below 1 by half a count of the smaller class, so a perfect ranking
    of 7 positives does not get a zero standard error: small batches need stronger evidence.
    """
    auc = np.asarray(auc, dtype=np.float64)
    if n_pos == 0 or n_neg == 0:
        return np.full(auc.shape, 0.5)
    a = np.minimum(auc, 1 - 0.5 / min(n_pos, n_neg))
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    variance = (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (
        n_pos * n_neg
    )
    return a - z * np.sqrt(np.maximum(variance, 0.0))
