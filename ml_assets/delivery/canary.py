"""The canary: the staging candidate scores a share of each batch beside production.

Rows are chosen by a hash of their id, so the same row is in the canary at any share at or
above the one that first took it (raising the share only adds rows). Each batch is one
measurement, as in Argo Rollouts' analysis and Flagger: pass, fail, or inconclusive when too few
rows or labels. The state folds the measurements in order: a failure limit and a count of
consecutive failures abort it; an inconclusive measurement holds it for a person; passing
measurements raise the share step by step; passing the last step completes it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ml_assets.delivery.policy import CanarySettings

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
RUNNING, HELD, FAILED, PASSED = "running", "held", "failed", "passed"


def canary_rows(ids: Iterable[object], share: float) -> np.ndarray:
    """A boolean mask: which rows (by id) the canary scores at `share`."""
    limit = share * 2**64
    return np.array(
        [
            int.from_bytes(hashlib.blake2b(str(i).encode(), digest_size=8).digest(), "big") < limit
            for i in ids
        ],
        dtype=bool,
    )


@dataclass(frozen=True)
class Criterion:
    """One comparison of a measurement: its value, the bound, and whether it held."""

    name: str
    value: float | None
    threshold: float
    passed: bool | None  # None: not measurable on this batch (too few rows or labels)
    detail: str


@dataclass(frozen=True)
class Measurement:
    """One batch's canary measurement."""

    batch: str
    version: str  # the candidate's
    production_version: str
    share: float
    rows: int  # canary rows scored by both models
    labelled_rows: int
    verdict: str  # pass, fail, inconclusive
    reason: str
    criteria: tuple[Criterion, ...] = field(default=())

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> Measurement:
        criteria = tuple(Criterion(**c) for c in raw.get("criteria", ()))
        return cls(**{**raw, "criteria": criteria})


def _log_loss_rows(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    p = np.clip(scores, 1e-15, 1 - 1e-15)
    return -(labels * np.log(p) + (1 - labels) * np.log(1 - p))


def measure(
    *,
    batch: str,
    version: str,
    production_version: str,
    share: float,
    production_scores: np.ndarray,
    canary_scores: np.ndarray,
    labels: np.ndarray | None,
    production_cpu_per_row: float,
    canary_cpu_per_row: float,
    production_errors: int,
    canary_errors: int,
    policy: CanarySettings,
) -> Measurement:
    """Compare the candidate with production on the same canary rows of one batch.

    `production_scores` and `canary_scores` are aligned (NaN where a model refused the row);
    `labels` holds 0/1 per row (NaN where no label landed), or None. Criteria: the divergence
    of the two score distributions (two-sample Kolmogorov-Smirnov statistic), scoring cost (CPU
    seconds per row, candidate over production), errors (rows refused by the candidate beyond
    those production refused, as a share), and once labels land, paired log loss: the
    candidate fails when even the lower 95% bound of its mean increase exceeds the tolerance.
    """
    from scipy import stats

    both = ~np.isnan(production_scores) & ~np.isnan(canary_scores)
    rows = int(both.sum())
    total = len(production_scores)
    criteria = []
    excess = (canary_errors - production_errors) / total if total else 0.0
    criteria.append(
        Criterion(
            "error_rate_excess",
            round(excess, 6),
            policy.max_error_rate_excess,
            excess <= policy.max_error_rate_excess,
            f"candidate refused {canary_errors}, production {production_errors} of {total} rows",
        )
    )
    if rows < policy.min_rows:
        return Measurement(
            batch,
            version,
            production_version,
            share,
            rows,
            0,
            FAIL if not criteria[0].passed else INCONCLUSIVE,
            f"{rows} canary rows scored by both models, fewer than min_rows {policy.min_rows}",
            tuple(criteria),
        )
    ks = float(stats.ks_2samp(production_scores[both], canary_scores[both]).statistic)
    criteria.append(
        Criterion(
            "score_divergence_ks",
            round(ks, 4),
            policy.max_score_divergence,
            ks <= policy.max_score_divergence,
            "two-sample KS statistic of the two models' scores on the same rows",
        )
    )
    ratio = canary_cpu_per_row / production_cpu_per_row if production_cpu_per_row > 0 else 1.0
    criteria.append(
        Criterion(
            "scoring_cost_ratio",
            round(ratio, 3),
            policy.max_cost_ratio,
            ratio <= policy.max_cost_ratio,
            f"CPU per row: candidate {canary_cpu_per_row * 1e6:.2f} us, production "
            f"{production_cpu_per_row * 1e6:.2f} us",
        )
    )
    labelled = both & (~np.isnan(labels) if labels is not None else np.zeros_like(both))
    n_labelled = int(labelled.sum())
    if n_labelled >= policy.min_labelled_rows:
        y = labels[labelled]
        delta = _log_loss_rows(canary_scores[labelled], y) - _log_loss_rows(
            production_scores[labelled], y
        )
        mean = float(delta.mean())
        half = 1.96 * float(delta.std(ddof=1)) / math.sqrt(n_labelled)
        low = mean - half
        criteria.append(
            Criterion(
                "paired_log_loss_increase",
                round(mean, 5),
                policy.max_log_loss_increase,
                low <= policy.max_log_loss_increase,
                f"candidate minus production on {n_labelled} labelled rows: {mean:+.4f} "
                f"(95% interval {low:+.4f} to {mean + half:+.4f})",
            )
        )
    else:
        criteria.append(
            Criterion(
                "paired_log_loss_increase",
                None,
                policy.max_log_loss_increase,
                None,
                f"{n_labelled} labelled canary rows, fewer than min_labelled_rows "
                f"{policy.min_labelled_rows}",
            )
        )
    failed = [c for c in criteria if c.passed is False]
    unknown = [c for c in criteria if c.passed is None]
    if failed:
        verdict = FAIL
        reason = "; ".join(f"{c.name} {c.value} beyond {c.threshold}" for c in failed)
    elif unknown:
        verdict = INCONCLUSIVE
        reason = "; ".join(c.detail for c in unknown)
    else:
        verdict, reason = PASS, "every criterion within its bound"
    return Measurement(
        batch,
        version,
        production_version,
        share,
        rows,
        n_labelled,
        verdict,
        reason,
        tuple(criteria),
    )


@dataclass(frozen=True)
class CanaryState:
    """Where a candidate's canary stands after its measurements."""

    status: str  # running, held, failed, passed
    step: int  # index into policy.steps
    share: float  # the share the next batch is scored at
    passes_in_step: int
    failures: int
    consecutive_failures: int
    measurements: int
    reason: str

    def summary(self, policy: CanarySettings) -> str:
        step = f"step {self.step + 1} of {len(policy.steps)} (share {self.share:g})"
        return f"{self.status} at {step}: {self.reason}"


def canary_state(measurements: Sequence[Measurement], policy: CanarySettings) -> CanaryState:
    """Fold the measurements (oldest first) into the canary's state. A failed or passed canary
    is final; a held one stays held (later measurements are recorded, not counted) until a
    person approves it (accepting the inconclusive measurement) or rejects it."""
    steps = policy.steps
    status, step, passes, failures, consecutive = RUNNING, 0, 0, 0, 0
    reason = "no measurement yet"
    for m in measurements:
        if status != RUNNING:
            break
        if m.verdict == FAIL:
            failures += 1
            consecutive += 1
            reason = f"batch {m.batch} failed: {m.reason}"
            if failures > policy.failure_limit:
                status = FAILED
                reason += f" ({failures} failures, more than failure_limit {policy.failure_limit})"
            elif consecutive >= policy.consecutive_failure_limit:
                status = FAILED
                reason += f" ({consecutive} failures in a row)"
        elif m.verdict == INCONCLUSIVE:
            consecutive = 0
            status = HELD
            reason = f"batch {m.batch} inconclusive: {m.reason}; held for a person"
        else:
            consecutive = 0
            passes += 1
            reason = f"batch {m.batch} passed"
            if passes >= policy.passes_per_step:
                if step == len(steps) - 1:
                    status = PASSED
                    reason = f"every step passed (last: batch {m.batch})"
                else:
                    step, passes = step + 1, 0
    return CanaryState(
        status, step, steps[step], passes, failures, consecutive, len(measurements), reason
    )


def save_measurement(folder: Path, measurement: Measurement) -> Path:
    """Write one batch's measurement under folder/v<version>/<batch>.json (a re-measured batch,
    once its labels landed, replaces its earlier measurement)."""
    path = folder / f"v{measurement.version}" / f"{measurement.batch}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(measurement.to_dict(), indent=1))
    return path


def load_measurements(folder: Path, version: str) -> list[Measurement]:
    """A candidate's measurements in batch order."""
    mine = folder / f"v{version}"
    if not mine.is_dir():
        return []
    return [
        Measurement.from_dict(json.loads(path.read_text())) for path in sorted(mine.glob("*.json"))
    ]


def approval_refusal(
    state: CanaryState, policy: CanarySettings, accept_inconclusive: bool
) -> str | None:
    """Why an approval of the candidate is refused because of its canary, or None."""
    if state.status == FAILED:
        return f"its canary failed: {state.reason}"
    if state.status == HELD and not accept_inconclusive:
        return (
            f"its canary is held: {state.reason}. Review canary_analysis, then approve with "
            "accept_inconclusive_canary set, or reject"
        )
    if state.status == RUNNING and policy.required_for_approval:
        return (
            f"its canary has not passed yet ({state.summary(policy)}); production moves once "
            "it passes every step (delivery.canary.required_for_approval)"
        )
    return None
