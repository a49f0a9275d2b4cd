"""The retraining stage's policy: when schedules fire and how often sensors look."""

from __future__ import annotations

from pydantic import Field

from ml_assets.data.policy import StrictModel


class ScheduleSettings(StrictModel):
    retraining_cron: str
    # When gate_history_schedule reviews the gates' history (pass rates, margins).
    gate_history_cron: str = "0 6 * * *"
    timezone: str = "UTC"
    sensor_interval_seconds: int = Field(60, ge=5)
