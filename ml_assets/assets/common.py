"""Helpers shared by assets and checks: batch partitions and the batches of a run."""

import dagster as dg
import pandas as pd

from ml_assets.core.batches import BatchFileError, BatchFiles, locate_batches
from ml_assets.resources import PipelineResource

batch_partitions = dg.DynamicPartitionsDefinition(name="batches")

# The per-batch data gates, in the order they are judged. A batch enters training only when
# each of them has a verdict on its current content and no ERROR gate failed.
BATCH_GATES = (
    "raw_batches_match_schema",
    "raw_batches_timestamps_not_in_future",
    "raw_batches_match_reference_profile",
    "raw_labels_join_raw_batches",
    "raw_labels_positive_rate_matches_reference",
    "raw_labels_not_leaked_into_features",
)

TRIGGER_TAG = "ml_assets/trigger"
EVIDENCE_TAG = "ml_assets/evidence"


def batches_of_run(
    context: dg.OpExecutionContext, pipeline: PipelineResource
) -> dict[str, BatchFiles]:
    """The batch files targeted by this run: its partition(s), else every batch present."""
    dataset = pipeline.settings.dataset
    present = locate_batches(dataset.features_dir, dataset.labels_dir)
    if not (context.has_partition_key or context.has_partition_key_range):
        return present
    keys = list(context.partition_keys)
    missing = [k for k in keys if k not in present]
    if missing:
        raise BatchFileError(
            f"partition(s) {missing} have no YYYY-MM-DD.parquet or .csv file "
            f"in {dataset.features_dir}"
        )
    return {k: present[k] for k in keys}


def markdown_table(frame: pd.DataFrame, max_rows: int = 20) -> dg.MetadataValue:
    """A DataFrame as a markdown table for the UI (the first `max_rows` rows)."""
    if frame.empty:
        return dg.MetadataValue.md("(none)")
    return dg.MetadataValue.md(frame.head(max_rows).to_markdown(index=False))
