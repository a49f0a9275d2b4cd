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

import numpy as np

from ml_assets.delivery.policy import RollbackSettings


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


# What a breach is measured on: a record's field, the field counting its rows, and its name.
REALIZED = ("roc_auc", "labelled_rows", "live ROC AUC")
ESTIMATED = ("estimated_roc_auc", "scored_rows", "estimated ROC AUC (CBPE)")


@dataclass(frozen=True)
class Breach:
    version: str
    batches: tuple[str, ...]
    values: tuple[float, ...]
    threshold: float
    reference: float
    measure: str = REALIZED[2]

    @property
    def reason(self) -> str:
        shown = ", ".join(f"{b}: {v:.3f}" for b, v in zip(self.batches, self.values, strict=True))
        kind = "labelled" if self.measure == REALIZED[2] else "scored"
        return (
            f"v{self.version}'s {self.measure} below {self.threshold:.3f} (test AUC "
            f"{self.reference:.3f} minus the tolerated drop) on {len(self.batches)} {kind} "
            f"batches in a row ({shown})"
        )


def sustained_breach(
    records: Sequence[Mapping],
    version: str,
    reference_auc: float,
    *,
    max_drop: float,
    window_batches: int,
    min_rows: int,
    measure: tuple[str, str, str] = REALIZED,
) -> Breach | None:
    """The breach of `version` over its newest `window_batches` batches, or None.

    `records` are per-batch performance records (batch, version, and the `measure`'s value and
    row count), any order; only the version's batches with a value and at least `min_rows` rows
    count. Rollback reads the realized AUC; retraining reads it or the CBPE estimate."""
    field, count, name = measure
    threshold = reference_auc - max_drop
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
    if len(window) < window_batches or any(r[field] >= threshold for r in window):
        return None
    return Breach(
        str(version),
        tuple(r["batch"] for r in window),
        tuple(float(r[field]) for r in window),
        threshold,
        reference_auc,
        name,
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
