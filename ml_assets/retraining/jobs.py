"""The jobs that automation requests: ingestion, retraining, and everything end to end.

They span stages (ingestion ends with the drift report, retraining ends with staging), so they
live here, above the stages they select.
"""

import dagster as dg

from ml_assets.data.assets import batch_partitions, raw_batches, raw_labels
from ml_assets.delivery.assets import (
    batch_predictions,
    canary_analysis,
    production_model,
    staging_model,
)
from ml_assets.evaluation.assets import evaluation_report
from ml_assets.features.assets import reference_profile, training_dataset
from ml_assets.monitoring.assets import drift_report, production_performance
from ml_assets.retraining.assets import retraining_ledger
from ml_assets.training.assets import candidate_model

ml_pipeline_job = dg.define_asset_job(
    "ml_pipeline_job",
    # production_model moves only with a human approver; batch_predictions and canary_analysis
    # score each batch with the models already deployed (scoring_job); gate_history reviews
    # past runs and has its own job and schedule.
    selection=dg.AssetSelection.all()
    - dg.AssetSelection.assets(
        production_model.key, batch_predictions, canary_analysis, production_performance
    )
    - dg.AssetSelection.groups("governance"),
    description="Everything end to end: ingest and gate batches, train, evaluate, stage, monitor.",
)
ingestion_job = dg.define_asset_job(
    "ingestion_job",
    selection=dg.AssetSelection.assets(raw_batches, raw_labels, drift_report),
    description="Ingest and gate new batches, then measure the newest passing batch's drift.",
)
training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.assets(
        training_dataset,
        reference_profile,
        candidate_model,
        evaluation_report,
        staging_model,
        retraining_ledger,
    ),
    description="Retrain on the passing batches of the window, evaluate, and stage if gates pass.",
    # deploy/production/dagster.yaml runs one at a time (tag_concurrency_limits on stage).
    tags={"stage": "training"},
)
evaluation_job = dg.define_asset_job(
    "evaluation_job",
    selection=dg.AssetSelection.assets(evaluation_report, staging_model, retraining_ledger),
    description=(
        "Evaluate the latest candidate again (after a crash, or when the gate policy changed) "
        "and stage it if the gates pass; nothing is retrained."
    ),
)

scoring_job = dg.define_asset_job(
    "scoring_job",
    selection=dg.AssetSelection.assets(batch_predictions, canary_analysis, production_performance),
    partitions_def=batch_partitions,
    description=(
        "Score a batch with production and the staged candidate's canary share, then measure "
        "the canary and production's live performance on it."
    ),
    tags={"stage": "delivery"},
)
