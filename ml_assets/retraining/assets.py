"""The retraining stage's asset: the ledger of every retrain's cost and gain."""

import dagster as dg

from ml_assets.evaluation.assets import evaluation_report
from ml_assets.metadata import TRIGGER_TAG, markdown_table
from ml_assets.resources import PipelineResource
from ml_assets.training.assets import candidate_model

# Trained versions the ledger reads back (newest first); older ones drop out of its table.
LEDGER_LIMIT = 500
# Steps of a run that are not the retrain's own work: ingestion (make run's ml_pipeline_job
# ingests first), monitoring, and the ledger itself.
NOT_TRAINING = ("raw_", "drift_report", "retraining_ledger", "gate_history")


@dg.asset(
    group_name="retraining",
    deps=[evaluation_report],
    kinds={"csv", "markdown"},
    tags={"stage": "retraining"},
)
def retraining_ledger(
    context: dg.AssetExecutionContext, pipeline: PipelineResource
) -> dg.MaterializeResult:
    """Every retrain: its trigger, compute seconds, rows, and its AUC gain over the champion."""
    import pandas as pd

    from ml_assets.evaluation.evidence import Evaluation
    from ml_assets.retraining.ledger import (
        Retrain,
        cadence_summary,
        compute_seconds,
        gain_over_champion,
        trigger_of,
    )

    instance = context.instance
    records = instance.fetch_materializations(candidate_model.key, limit=LEDGER_LIMIT).records
    rows = []
    for record in reversed(records):
        meta = record.asset_materialization.metadata if record.asset_materialization else {}
        version = meta.get("model_version")
        if version is None:
            continue
        version = str(version.value)
        run = instance.get_run_by_id(record.run_id)
        steps = [
            (s.step_key, s.start_time, s.end_time)
            for s in instance.get_run_step_stats(record.run_id)
            if not s.step_key.startswith(NOT_TRAINING)
        ]
        path = pipeline.reports_dir / "evaluation" / f"v{version}" / pipeline.evaluation_path.name
        evaluation = Evaluation.load(path) if path.exists() else None
        champion, gain, low, high, failed = gain_over_champion(evaluation)
        rows.append(
            Retrain(
                version=version,
                trained_at=pd.Timestamp(record.timestamp, unit="s", tz="UTC").strftime(
                    "%Y-%m-%d %H:%M"
                ),
                trigger=trigger_of(run.tags if run else {}, TRIGGER_TAG),
                window=str(meta["window_end"].value) if "window_end" in meta else "?",
                train_rows=int(meta["train_rows"].value) if "train_rows" in meta else None,
                compute_seconds=compute_seconds(steps),
                champion=champion,
                auc_gain=gain,
                gain_low=low,
                gain_high=high,
                gates_failed=failed,
            )
        )
    table = pd.DataFrame([r.row() for r in rows])
    path = pipeline.reports_dir / "retraining_ledger.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    newest = rows[-1] if rows else None
    return dg.MaterializeResult(
        metadata={
            "retrains": len(rows),
            "latest_version": newest.version if newest else "none",
            "latest_trigger": newest.trigger if newest else "none",
            "latest_compute_seconds": newest.compute_seconds if newest else 0.0,
            "latest_auc_gain": newest.auc_gain
            if newest and newest.auc_gain is not None
            else "no champion",
            "by_trigger": markdown_table(cadence_summary(rows)),
            "ledger": markdown_table(table.iloc[::-1], max_rows=20),
            "csv": dg.MetadataValue.path(str(path)),
        }
    )
