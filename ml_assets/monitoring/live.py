"""Production's live performance per labelled batch, and when a breach is sustained.

A batch's performance is production's ROC AUC and log loss on the batch's rows whose labels
have landed. A breach is sustained when the newest `window_batches` batches with enough labels
all fall more than `max_roc_auc_drop` below the AUC the serving version had on its test rows:
one noisy batch never rolls production back. The same rule, with retraining's own policy, on
the realized AUC or on its CBPE estimate, requests a retrain (retraining/sensors).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml_assets.delivery.policy import RollbackSettings


def read_live_records(folder: Path) -> list[dict]:
    """The per-batch live records production_performance wrote to `folder`, by batch; none
    before the first."""
    import json

    return (
        [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
        if folder.is_dir()
        else []
    )


def labelled_performance(scores: np.ndarray, labels: np.ndarray) -> dict[str, float | int | None]:
    """ROC AUC and log loss of `scores` on the rows with a 0/1 label (NaN: not landed)."""
    from sklearn.metrics import log_loss, roc_auc_score

    landed = ~np.isnan(labels) & ~np.isnan(scores)
    y, p = labels[landed], scores[landed]
    n = int(landed.sum())
    if n == 0 or len(np.unique(y)) < 2:
        return {"labelled_rows": n, "roc_auc": None, "log_loss": None}
    return {
        "labelled_rows": n,
        "roc_auc": float(roc_auc_score(y, p)),
        "log_loss": float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1])),
    }


@dataclass(frozen=True)
class Measure:
    """What a breach is measured on: a record's field, the field counting its rows, its name,
    and which way is worse (a lower AUC, a higher log loss)."""

    field: str
    count: str
    name: str
    higher_is_better: bool = True


REALIZED = Measure("roc_auc", "labelled_rows", "live ROC AUC")
REALIZED_LOG_LOSS = Measure("log_loss", "labelled_rows", "live log loss", higher_is_better=False)
ESTIMATED = Measure("estimated_roc_auc", "scored_rows", "estimated ROC AUC (CBPE)")


@dataclass(frozen=True)
class Breach:
    version: str
    batches: tuple[str, ...]
    values: tuple[float, ...]
    threshold: float
    reference: float
    measure: Measure = REALIZED

    @property
    def reason(self) -> str:
        shown = ", ".join(f"{b}: {v:.3f}" for b, v in zip(self.batches, self.values, strict=True))
        kind = "labelled" if self.measure.count == "labelled_rows" else "scored"
        side, change = ("below", "minus the tolerated drop")
        if not self.measure.higher_is_better:
            side, change = ("above", "plus the tolerated rise")
        return (
            f"v{self.version}'s {self.measure.name} {side} {self.threshold:.3f} (its test value "
            f"{self.reference:.3f} {change}) on {len(self.batches)} {kind} batches in a row "
            f"({shown})"
        )


def sustained_breach(
    records: Sequence[Mapping],
    version: str,
    reference: float,
    *,
    max_drop: float,
    window_batches: int,
    min_rows: int,
    measure: Measure = REALIZED,
) -> Breach | None:
    """The breach of `version` over its newest `window_batches` batches, or None.

    `records` are per-batch performance records (batch, version, and the `measure`'s value and
    row count), any order; only the version's batches with a value and at least `min_rows` rows
    count, worse than the version's test value `reference` by more than `max_drop`. Rollback
    reads the realized AUC; retraining reads it, the realized log loss, or the CBPE estimate."""
    field, count = measure.field, measure.count
    better = measure.higher_is_better
    threshold = reference - max_drop if better else reference + max_drop
    mine = sorted(
        (
            r
            for r in records
            if str(r["version"]) == str(version)
            and r.get(field) is not None
            and r.get(count, 0) >= min_rows
        ),
        key=lambda r: r["batch"],
    )
    window = mine[-window_batches:]
    if len(window) < window_batches or any(
        (r[field] >= threshold) if better else (r[field] <= threshold) for r in window
    ):
        return None
    return Breach(
        str(version),
        tuple(r["batch"] for r in window),
        tuple(float(r[field]) for r in window),
        threshold,
        reference,
        measure,
    )


def rollback_breach(
    records: Sequence[Mapping], version: str, reference_auc: float, policy: RollbackSettings
) -> Breach | None:
    """The sustained breach of the live AUC that rolls production back (delivery.rollback)."""
    return sustained_breach(
        records,
        version,
        reference_auc,
        max_drop=policy.max_roc_auc_drop,
        window_batches=policy.window_batches,
        min_rows=policy.min_labels,
    )
