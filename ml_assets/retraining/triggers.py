"""When evidence calls for a retrain, and when a retrain has already answered it.

Drift retrains only when the newest `consecutive` measured batches all drifted against the
same reference (one odd day does not retrain). Performance retrains on a sustained breach
(monitoring/live.sustained_breach, the rule rollback uses, under retraining's own policy). Either
way, evidence that a model has already been trained on (its window reaches the evidence's first
batch) asks for nothing more: the retrain it called for happened, and waits for its gates or
its approval.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ml_assets.monitoring.live import Breach


@dataclass(frozen=True)
class DriftObservation:
    """One drift report: the batch measured, the reference it was measured against, the verdict."""

    batch: str
    reference: str
    drifted: bool
    drifted_share: float
    drifted_columns: str = ""

    @classmethod
    def from_metadata(cls, values: Mapping) -> DriftObservation | None:
        """From drift_report's metadata; None for a report that names no reference (older)."""
        if values.get("reference_version") is None or values.get("batch") is None:
            return None
        return cls(
            batch=str(values["batch"]),
            reference=str(values["reference_version"]),
            drifted=bool(values.get("dataset_drift")),
            drifted_share=float(values.get("drifted_share", 0.0)),
            drifted_columns=str(values.get("drifted_column_names", "")),
        )


@dataclass(frozen=True)
class Evidence:
    """What calls for a retrain: the trigger, the batches it rests on, and a sentence why."""

    trigger: str
    batches: tuple[str, ...]
    reason: str
    details: dict = field(default_factory=dict)

    @property
    def run_key(self) -> str:
        """The same evidence never requests a second retrain."""
        digest = hashlib.sha256(
            json.dumps(
                [self.trigger, self.batches, self.details], sort_keys=True, default=str
            ).encode()
        ).hexdigest()[:16]
        return f"{self.trigger}-{self.batches[-1]}-{digest}"

    def tags(self) -> dict:
        return {"reason": self.reason, "batches": list(self.batches), **self.details}


def newest_per_batch(observations: Iterable[DriftObservation]) -> list[DriftObservation]:
    """One observation per (batch, reference), the last given (pass them oldest first), sorted
    by batch."""
    latest: dict[tuple[str, str], DriftObservation] = {}
    for observation in observations:
        latest[(observation.batch, observation.reference)] = observation
    return sorted(latest.values(), key=lambda o: o.batch)


def sustained_drift(
    observations: Sequence[DriftObservation], reference: str, consecutive: int, threshold: float
) -> Evidence | None:
    """Drift evidence when the newest `consecutive` batches measured against `reference` all
    drifted (each report's own verdict: drifted share above `threshold`, the policy's, recorded
    in the evidence); None otherwise (too few measured yet, or one of them within policy)."""
    mine = [o for o in newest_per_batch(observations) if o.reference == reference]
    window = mine[-consecutive:]
    if len(window) < consecutive or not all(o.drifted for o in window):
        return None
    shown = ", ".join(f"{o.batch}: {o.drifted_share:.2f}" for o in window)
    return Evidence(
        trigger="drift",
        batches=tuple(o.batch for o in window),
        reason=(
            f"{len(window)} batch(es) in a row drifted against the reference of data version "
            f"{reference} (share of drifted columns {shown})"
        ),
        details={
            "reference_version": reference,
            "drifted_share": [round(o.drifted_share, 3) for o in window],
            "threshold": threshold,
            "drifted_columns": window[-1].drifted_columns,
        },
    )


def drift_progress(observations: Sequence[DriftObservation], reference: str) -> str:
    """How many of the newest batches in a row drifted against `reference`, as a sentence."""
    mine = [o for o in newest_per_batch(observations) if o.reference == reference]
    streak = 0
    for observation in reversed(mine):
        if not observation.drifted:
            break
        streak += 1
    if not mine:
        return f"no batch measured against the reference of data version {reference} yet"
    newest = mine[-1]
    return (
        f"batch {newest.batch} drift share {newest.drifted_share:.3f}; {streak} drifting "
        f"batch(es) in a row"
    )


def already_trained_on(window_end: str | None, evidence: Evidence) -> bool:
    """True when a model's window (ending on `window_end`) reaches the evidence's first batch:
    the retrain this evidence calls for has happened."""
    return window_end is not None and window_end >= evidence.batches[0]


def performance_evidence(breach: Breach, trigger: str) -> Evidence:
    """A sustained breach (realized or estimated) as retraining evidence."""
    return Evidence(
        trigger=trigger,
        batches=breach.batches,
        reason=breach.reason,
        details={
            "production_version": breach.version,
            "measure": breach.measure.name,
            "values": [round(v, 4) for v in breach.values],
            "threshold": round(breach.threshold, 4),
            "reference": round(breach.reference, 4),
        },
    )
