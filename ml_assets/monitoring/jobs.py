"""Monitoring jobs: the daily review of the gates' history and the pipeline's health."""

import dagster as dg

from ml_assets.monitoring.assets import gate_history, pipeline_health

gate_history_job = dg.define_asset_job(
    "gate_history_job",
    selection=[gate_history, pipeline_health],
    description=(
        "Review every gate's history (which never come near, which fail most) and the "
        "pipeline's health (a stage much slower, an artefact much larger than recently)."
    ),
)
