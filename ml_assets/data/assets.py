"""Ingestion: one daily partition per batch file present, fingerprinted for lineage."""

import warnings
from collections.abc import Callable

import dagster as dg

from ml_assets.data.batches import (
    BatchFileError,
    BatchFiles,
    locate_batches,
    read_labels,
    unrecognised_files,
)
from ml_assets.metadata import markdown_table
from ml_assets.resources import PipelineResource

batch_partitions = dg.DynamicPartitionsDefinition(name="batches")


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


def batch_asset(fn: Callable) -> dg.AssetsDefinition:
    """An ingestion asset with one partition per batch file, gated a whole range per run.

    Single-run backfills are chosen on purpose (one run gates a whole range of batches). Dagster
    marks the parameter beta; its warning is silenced here only, not in the global filters.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"Parameter `backfill_policy`", category=dg.BetaWarning
        )
        return dg.asset(
            group_name="ingestion",
            partitions_def=batch_partitions,
            backfill_policy=dg.BackfillPolicy.single_run(),
            code_version="1",
            kinds={"parquet", "polars", "pandera"},
            tags={"stage": "data"},
        )(fn)


@batch_asset
def raw_batches(
    context: dg.AssetExecutionContext, pipeline: PipelineResource
) -> dg.MaterializeResult:
    """Daily loan-application batches as delivered: one partition per YYYY-MM-DD file."""
    import pandas as pd

    batches = batches_of_run(context, pipeline)
    table = pd.DataFrame(
        {
            "day": list(batches),
            "file": [b.features.name for b in batches.values()],
            "bytes": [b.features.stat().st_size for b in batches.values()],
            "sha256": [b.features_sha256[:16] for b in batches.values()],
        }
    )
    dataset = pipeline.settings.dataset
    ignored = [
        str(p) for d in (dataset.features_dir, dataset.labels_dir) for p in unrecognised_files(d)
    ]
    if ignored:
        context.log.warning(f"files not named YYYY-MM-DD.parquet or .csv, not read: {ignored}")
    return dg.MaterializeResult(
        metadata={
            "batches": len(batches),
            # Files in the batch folders that no batch is read from (named otherwise).
            "ignored_files": dg.MetadataValue.json(ignored),
            "first_day": min(batches) if batches else "",
            "last_day": max(batches) if batches else "",
            "files": markdown_table(table, max_rows=50),
        }
    )


@batch_asset
def raw_labels(
    context: dg.AssetExecutionContext, pipeline: PipelineResource
) -> dg.MaterializeResult:
    """Default outcomes (the labels) of each batch's applications, keyed by application id."""
    import pandas as pd

    dataset = pipeline.settings.dataset
    batches = batches_of_run(context, pipeline)
    separate = dataset.labels_dir is not None
    counts, unreadable = [], {}
    for day, batch in batches.items():
        try:
            labels = read_labels(batch, dataset.id_column, dataset.target_column, separate)
        except BatchFileError as error:  # the label gates give this batch its verdict
            unreadable[day] = str(error)
            continue
        positives = int((labels[dataset.target_column] == dataset.positive_label).sum())
        counts.append({"day": day, "labels": len(labels), "positives": positives})
    table = pd.DataFrame(counts, columns=["day", "labels", "positives"])
    if unreadable:
        context.log.warning(f"label sources that cannot be read: {unreadable}")
    return dg.MaterializeResult(
        metadata={
            "batches": len(batches),
            "unreadable": dg.MetadataValue.json(unreadable),
            "labels": int(table["labels"].sum()),
            "positive_rate": float(table["positives"].sum() / max(table["labels"].sum(), 1)),
            "source": str(dataset.labels_dir or "target column of the batch"),
            "per_batch": markdown_table(table, max_rows=50),
        }
    )
