"""The per-batch data gates, in the order they are judged.

A batch enters training only when each of them has a verdict on its current content and no
ERROR gate failed.
"""

BATCH_GATES = (
    "raw_batches_match_schema",
    "raw_batches_timestamps_not_in_future",
    "raw_batches_match_reference_profile",
    "raw_labels_join_raw_batches",
    "raw_labels_positive_rate_matches_reference",
    "raw_labels_not_leaked_into_features",
)
