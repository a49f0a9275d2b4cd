"""Monitoring schedules: the daily review of every gate's history."""

import dagster as dg

from ml_assets.monitoring.jobs import gate_history_job


def build_gate_history_schedule(cron: str, timezone: str) -> dg.ScheduleDefinition:
    """gate_history_job on `cron` (pipeline.yaml: schedules.gate_history_cron)."""
    return dg.ScheduleDefinition(
        name="gate_history_schedule",
        job=gate_history_job,
        cron_schedule=cron,
        execution_timezone=timezone,
        description="Reviews every gate's history: which never come near, which fail most.",
    )
