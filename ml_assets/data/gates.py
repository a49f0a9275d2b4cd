"""The per-batch data gates, in the order they are judged, spelled once.

A batch enters training only when each of them has a verdict on its current content and no
ERROR gate failed. `data/checks.py` builds one asset check per entry of `DATA_GATES`; the ledger,
the training window, the sensors and the command line read the names through `BATCH_GATES`; the
settings accept a `validation.severity` key only for a name of this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# ERROR: a failure blocks (and, for a data gate, quarantines). WARN: recorded and shown only.
# The stages' policy blocks import it through data/policy.py.
Severity = Literal["ERROR", "WARN"]


@dataclass(frozen=True)
class GateSpec:
    """One gate: its check's name, the key of the asset it checks, its UI description, and the
    severity of a failure when pipeline.yaml does not set one."""

    name: str
    asset: str
    description: str
    default_severity: Severity


DATA_GATES: tuple[GateSpec, ...] = (
    GateSpec(
        "raw_batches_match_schema",
        "raw_batches",
        "Each batch has the contract's columns, types, nullability, ranges, categories, "
        "unique ids.",
        "ERROR",
    ),
    GateSpec(
        "raw_batches_timestamps_not_in_future",
        "raw_batches",
        "No application is stamped after the end of its batch's day.",
        "ERROR",
    ),
    GateSpec(
        "raw_batches_match_reference_profile",
        "raw_batches",
        "Means, spreads, tails, category mix and null rates match the training window's profile.",
        "ERROR",
    ),
    GateSpec(
        "raw_batches_not_redelivered",
        "raw_batches",
        "No batch repeats an earlier batch's rows under new ids, beyond what chance explains.",
        "ERROR",
    ),
    GateSpec(
        "raw_labels_join_raw_batches",
        "raw_labels",
        "Every batch row has a label and every label has a batch row; label values are allowed.",
        "ERROR",
    ),
    GateSpec(
        "raw_labels_positive_rate_matches_reference",
        "raw_labels",
        "The batch's default rate matches the training window's, allowing for the batch's size.",
        "ERROR",
    ),
    GateSpec(
        "raw_labels_not_leaked_into_features",
        "raw_labels",
        "No single feature of the batch predicts the label almost perfectly on its own.",
        "ERROR",
    ),
)

BATCH_GATES: tuple[str, ...] = tuple(g.name for g in DATA_GATES)
