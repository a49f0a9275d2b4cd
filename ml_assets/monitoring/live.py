"""Production's live performance per labelled batch, and when a breach is sustained.

A batch's performance is production's ROC AUC and log loss on the batch's rows whose labels
have landed. A breach is sustained when the newest `window_batches` batches with enough labels
all fall more than `max_roc_auc_drop` below the AUC the serving version had on its test rows:
one noisy batch never rolls production back.
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


@dataclass(frozen=True)
class Breach:
    version: str
    batches: tuple[str, ...]
    values: tuple[float, ...]
    threshold: float
    reference: float

    @property
    def reason(self) -> str:
        shown = ", ".join(f"{b}: {v:.3f}" for b, v in zip(self.batches, self.values, strict=True))
        return (
            f"v{self.version}'s live ROC AUC below {self.threshold:.3f} (test AUC "
            f"{self.reference:.3f} minus the tolerated drop) on {len(self.batches)} labelled "
            f"batches in a row ({shown})"
        )


def sustained_breach(
    records: Sequence[Mapping], version: str, reference_auc: float, policy: RollbackSettings
) -> Breach | None:
    """The breach of `version` over its newest labelled batches, or None.

    `records` are per-batch performance records (batch, version, labelled_rows, roc_auc), any
    order; only the version's batches with at least `min_labels` labelled rows count."""
    threshold = reference_auc - policy.max_roc_auc_drop
    mine = sorted(
        (
            r
            for r in records
            if str(r["version"]) == str(version)
            and r["roc_auc"] is not None
            and r["labelled_rows"] >= policy.min_labels
        ),
        key=lambda r: r["batch"],
    )
    window = mine[-policy.window_batches :]
    if len(window) < policy.window_batches or any(r["roc_auc"] >= threshold for r in window):
        return None
    return Breach(
        str(version),
        tuple(r["batch"] for r in window),
        tuple(float(r["roc_auc"]) for r in window),
        threshold,
        reference_auc,
    )
