"""The window gates on the training dataset, spelled once.

They judge the whole training window after it is built: `features/checks.py` builds one asset
check per entry. Their severity is fixed (ERROR: a failure keeps the window from training);
pipeline.yaml's validation.severity does not apply to them.
"""

from __future__ import annotations

from ml_assets.data.gates import GateSpec

WINDOW_GATES: tuple[GateSpec, ...] = (
    GateSpec(
        "training_dataset_splits_are_disjoint",
        "training_dataset",
        "No id sits in two splits (identical feature rows in two splits are counted, not "
        "blocked: a re-delivered batch is raw_batches_not_redelivered's).",
        "ERROR",
    ),
    GateSpec(
        "training_dataset_has_enough_labels_per_class",
        "training_dataset",
        "Every split of the window holds at least the configured number of labels of each class.",
        "ERROR",
    ),
    GateSpec(
        "training_dataset_has_no_leaking_feature",
        "training_dataset",
        "No single feature ranks the label almost perfectly over the whole training window.",
        "ERROR",
    ),
)
