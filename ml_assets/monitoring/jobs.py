"""Monitoring jobs: the gate-hygiene review."""

import dagster as dg

from ml_assets.monitoring.assets import gate_history

gate_history_job = dg.define_asset_job(
    "gate_history_job",
    selection=[gate_history],
    description="Review every gate's history: which never come near, which fail most.",
)
