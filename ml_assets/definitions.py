"""The Dagster code location: wires assets, checks, jobs, sensors, schedules and resources."""

import dagster as dg

from ml_assets.assets import (
    delivery,
    evaluation,
    features,
    gate_history,
    ingestion,
    monitoring,
    training,
)
from ml_assets.automation import (
    build_automation,
    ingestion_job,
    ml_pipeline_job,
    promote_to_production_job,
    training_job,
)
from ml_assets.checks import data_checks, model_gates
from ml_assets.resources import PipelineResource, mlflow_tracking
from ml_assets.settings import load_settings

sensors, schedules = build_automation(load_settings())

defs = dg.Definitions(
    assets=dg.load_assets_from_modules(
        [ingestion, features, training, evaluation, delivery, monitoring, gate_history]
    ),
    asset_checks=[
        *data_checks.BATCH_GATE_CHECKS,
        *data_checks.WINDOW_CHECKS,
        *model_gates.PROMOTION_GATES,
    ],
    jobs=[
        ml_pipeline_job,
        ingestion_job,
        training_job,
        promote_to_production_job,
        gate_history.gate_history_job,
    ],
    sensors=sensors,
    schedules=schedules,
    resources={"pipeline": PipelineResource(), "mlflow": mlflow_tracking},
    # Measured: the multiprocess executor costs 2 s or more per step here; steps are short.
    executor=dg.in_process_executor,
)
