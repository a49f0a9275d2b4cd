"""Statistical expectations: a batch judged against the reference profile of the training window.

Every expectation fires only when the difference is both significant for the batch's size
(p-value below `alpha`) and large enough to matter (effect above its floor), so a 200-row batch
needs a much larger shift than a 20,000-row batch before it fails.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ml_assets.data.contract import DataContract


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


@dataclass(frozen=True)
class Expectation:
    """One expectation on one column: the evidence and the verdict."""

    column: str
    expectation: str
    passed: bool
    value: float
    reference: float
    threshold: float
    p_value: float | None
    failing_rows: int = 0
    detail: str = ""
    failing_index: list = field(default_factory=list, repr=False)


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


def mean_shift_test(values: np.ndarray, ref: NumericProfile) -> tuple[float, float]:
    """(effect in reference standard deviations, two-sided p-value of a z-test on the mean)."""
    from scipy import stats

    n = len(values)
    if n == 0 or ref.std == 0:
        return 0.0, 1.0
    diff = float(np.mean(values)) - ref.mean
    z = diff / (ref.std / math.sqrt(n))
    return abs(diff) / ref.std, float(2 * stats.norm.sf(abs(z)))


def std_ratio_test(values: np.ndarray, ref: NumericProfile) -> tuple[float, float]:
    """(ratio of standard deviations, larger over smaller; two-sided chi-square p-value)."""
    from scipy import stats

    n = len(values)
    if n < 3 or ref.std == 0:
        return 1.0, 1.0
    s = float(np.std(values, ddof=1))
    if s == 0:
        return math.inf, 0.0
    statistic = (n - 1) * s**2 / ref.std**2
    cdf = stats.chi2.cdf(statistic, n - 1)
    return max(s / ref.std, ref.std / s), float(2 * min(cdf, 1 - cdf))


def rate_excess_test(count: int, n: int, expected: float) -> tuple[float, float]:
    """(observed rate minus expected, one-sided binomial p-value that the rate is higher)."""
    from scipy import stats

    if n == 0:
        return 0.0, 1.0
    expected = min(max(expected, 1e-6), 1 - 1e-6)
    return count / n - expected, float(
        stats.binomtest(count, n, expected, alternative="greater").pvalue
    )


def rate_shift_test(count: int, n: int, expected: float) -> tuple[float, float]:
    """(absolute difference of a rate from `expected`, two-sided binomial p-value)."""
    from scipy import stats

    if n == 0:
        return 0.0, 1.0
    expected = min(max(expected, 1e-6), 1 - 1e-6)
    return abs(count / n - expected), float(stats.binomtest(count, n, expected).pvalue)


def category_shift_test(values: pd.Series, ref: CategoricalProfile) -> tuple[float, float]:
    """(total variation distance between proportions, chi-square goodness-of-fit p-value)."""
    from scipy import stats

    counts = values.astype(str).value_counts()
    categories = sorted(set(ref.proportions) | set(counts.index))
    observed = np.array([counts.get(c, 0) for c in categories], dtype=float)
    n = observed.sum()
    if n == 0:
        return 0.0, 1.0
    # A small floor keeps categories the reference never saw from dividing by zero.
    expected_p = np.array([ref.proportions.get(c, 0.0) for c in categories]) + 1e-4
    expected_p /= expected_p.sum()
    distance = 0.5 * float(np.abs(observed / n - expected_p).sum())
    p_value = float(stats.chisquare(observed, expected_p * n).pvalue)
    return distance, p_value


def check_against_profile(
    frame: pd.DataFrame, profile: Profile, contract: DataContract, policy: StatisticalPolicy
) -> list[Expectation]:
    """Every statistical expectation of every declared column present in `frame`."""
    results: list[Expectation] = []
    for name, ref in profile.numeric.items():
        if name not in frame.columns:
            continue
        # As floats: a nullable extension dtype (Int64) would give masks with NA in them.
        raw = pd.to_numeric(frame[name], errors="coerce").astype("float64")
        values = raw.dropna().to_numpy(dtype=float)
        effect, p = mean_shift_test(values, ref)
        results.append(
            Expectation(
                name,
                "mean",
                not (p < policy.alpha and effect > policy.min_mean_shift_std),
                float(values.mean()) if len(values) else math.nan,
                ref.mean,
                policy.min_mean_shift_std,
                p,
                detail=f"shift {effect:.3f} reference std",
            )
        )
        ratio, p = std_ratio_test(values, ref)
        results.append(
            Expectation(
                name,
                "std",
                not (p < policy.alpha and ratio > policy.min_std_ratio),
                float(values.std(ddof=1)) if len(values) > 1 else math.nan,
                ref.std,
                policy.min_std_ratio,
                p,
                detail=f"ratio {ratio:.3f}",
            )
        )
        outside = (raw < ref.q_low) | (raw > ref.q_high)
        excess, p = rate_excess_test(int(outside.sum()), int(raw.notna().sum()), ref.tail_share)
        results.append(
            Expectation(
                name,
                "quantile_bounds",
                not (p < policy.alpha and excess > policy.min_tail_excess),
                float(outside.mean()),
                ref.tail_share,
                policy.min_tail_excess,
                p,
                int(outside.sum()),
                detail=f"outside [{ref.q_low:.4g}, {ref.q_high:.4g}]",
                failing_index=list(frame.index[outside.to_numpy()]),
            )
        )
        results.append(_null_rate(name, raw, ref.null_rate, policy, frame))
    for name, ref in profile.categorical.items():
        if name not in frame.columns:
            continue
        values = frame[name]
        present = values.dropna()
        distance, p = category_shift_test(present, ref)
        results.append(
            Expectation(
                name,
                "category_proportions",
                not (p < policy.alpha and distance > policy.min_category_distance),
                distance,
                0.0,
                policy.min_category_distance,
                p,
                detail="total variation distance",
            )
        )
        unseen = ~present.astype(str).isin(list(ref.proportions))
        share = float(unseen.mean()) if len(present) else 0.0
        results.append(
            Expectation(
                name,
                "unseen_categories",
                share <= policy.max_unseen_category_share,
                share,
                0.0,
                policy.max_unseen_category_share,
                None,
                int(unseen.sum()),
                detail=", ".join(sorted(set(present[unseen].astype(str))))[:200],
                failing_index=list(present.index[unseen.to_numpy()]),
            )
        )
        results.append(_null_rate(name, values, ref.null_rate, policy, frame))
    return results


def _null_rate(
    name: str, values: pd.Series, reference: float, policy: StatisticalPolicy, frame: pd.DataFrame
) -> Expectation:
    nulls = values.isna()
    excess, p = rate_excess_test(int(nulls.sum()), len(values), reference)
    rate = float(nulls.mean()) if len(values) else 0.0
    significant = p < policy.alpha and excess > policy.min_null_rate_excess
    return Expectation(
        name,
        "null_rate",
        not significant and rate <= policy.max_null_rate,
        rate,
        reference,
        policy.max_null_rate,
        p,
        int(nulls.sum()),
        detail=f"ceiling {policy.max_null_rate}",
        failing_index=list(frame.index[nulls.to_numpy()]),
    )


def positive_rate_expectation(
    labels: pd.Series, positive_label: int | str, reference: float, policy: StatisticalPolicy
) -> Expectation:
    """The batch's positive-label rate against the reference rate, aware of the batch size."""
    positives = int((labels == positive_label).sum())
    shift, p = rate_shift_test(positives, len(labels), reference)
    return Expectation(
        "label",
        "positive_rate",
        not (p < policy.alpha and shift > policy.min_positive_rate_shift),
        positives / len(labels) if len(labels) else math.nan,
        reference,
        policy.min_positive_rate_shift,
        p,
        detail=f"shift {shift:.4f}",
    )
