"""Monitoring: drift of the newest passing batch against the training reference."""

import dagster as dg
import pandas as pd

from ml_assets.assets.common import BATCH_GATES
from ml_assets.assets.features import REFERENCE_FILE, reference_profile
from ml_assets.assets.ingestion import raw_batches
from ml_assets.core.batches import locate_batches, read_batch
from ml_assets.core.drift import measure_drift
from ml_assets.core.ledger import batch_status
from ml_assets.resources import PipelineResource


@dg.asset(group_name="monitoring", deps=[raw_batches, reference_profile], code_version="1")
def drift_report(
    context: dg.AssetExecutionContext, pipeline: PipelineResource
) -> dg.MaterializeResult:
    """Evidently drift of the newest batch that passed the data gates, against the reference."""
    settings = pipeline.settings
    dataset = settings.dataset
    batches = locate_batches(dataset.features_dir, dataset.labels_dir)
    passing = [
        d for d, b in batches.items() if batch_status(pipeline.ledger_dir, b, BATCH_GATES).eligible
    ]
    if not passing:
        raise dg.Failure("no batch has passed the data gates yet; nothing to measure drift on")
    day = passing[-1]
    current = read_batch(batches[day].features)
    reference = pd.read_parquet(pipeline.features_dir / REFERENCE_FILE)
    html = pipeline.reports_dir / "drift" / f"{day}.html"
    summary = measure_drift(
        reference,
        current,
        dataset.feature_columns,
        drifted_share_threshold=settings.drift.drifted_columns_share,
        html_path=html,
    )
    return dg.MaterializeResult(
        metadata={
            "batch": day,
            "drifted_share": summary.drifted_share,
            "drifted_columns": summary.drifted_columns,
            "columns": summary.columns,
            "threshold": summary.threshold,
            "dataset_drift": summary.dataset_drift,
            "drifted_column_names": ", ".join(summary.drifted_column_names) or "none",
            "column_scores": dg.MetadataValue.json(summary.column_scores),
            "report": dg.MetadataValue.path(str(html)),
        }
    )
