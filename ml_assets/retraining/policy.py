"""The retraining stage's policy: when schedules fire and how often sensors look."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from ml_assets.data.policy import StrictModel


class ScheduleSettings(StrictModel):
    retraining_cron: str
    # When gate_history_schedule reviews the gates' history (pass rates, margins).
    gate_history_cron: str = "0 6 * * *"
    timezone: str = "UTC"
    # The daemon evaluates sensors on a loop of about 5 s: a minimum interval of 5 s or less
    # means every pass (an interval of exactly 5 s can miss every other pass by a few ms).
    sensor_interval_seconds: int = Field(60, ge=1)
    # The sensors and schedules that start RUNNING when the daemon first sees them; every other
    # one starts STOPPED (turn it on in the UI, or list it here). Names are checked when the
    # definitions load.
    running: list[str] = Field(default_factory=list)


class PerformanceTrigger(StrictModel):
    """Retrain when production's ROC AUC stays more than `max_roc_auc_drop` below the AUC its
    version had on its test rows, on `window_batches` batches in a row with at least
    `min_rows` rows each (labelled rows for the realized AUC, scored rows for the estimate)."""

    retrain: bool
    max_roc_auc_drop: float = Field(0.03, gt=0, le=1)
    window_batches: int = Field(3, ge=1)
    min_rows: int = Field(200, ge=10)


class RealizedPerformanceTrigger(PerformanceTrigger):
    """The realized trigger also watches the log loss: a change that keeps the ranking but moves
    the default rate (the simulator's concept drift does) shows in the log loss, not the AUC."""

    # More than this above the version's test log loss, on the same window; null: AUC only.
    max_log_loss_increase: float | None = Field(0.03, gt=0)


class RetrainingSettings(StrictModel):
    # Realized: production's ROC AUC and log loss on each batch's labelled rows, once its
    # labels landed.
    realized_performance: RealizedPerformanceTrigger = Field(
        default_factory=lambda: RealizedPerformanceTrigger(retrain=True)
    )
    # Estimated (CBPE, monitoring/estimation): the ROC AUC production's scores imply if they
    # are calibrated, before any label lands. Blind to concept drift and fooled by a model that
    # is no longer calibrated, so by default it only warns (retrain: false).
    estimated_performance: PerformanceTrigger = Field(
        default_factory=lambda: PerformanceTrigger(retrain=False)
    )


# Gate verdicts (delivery.assets.gate_verdicts) that are settled: anything else (errored, never
# ran, not run on the latest evaluation) means the evaluation did not finish.
SETTLED_VERDICTS = frozenset({"passed", "warned", "failed"})


@dataclass(frozen=True)
class Redo:
    """The job that brings the model up to date (None when it is), and why."""

    job: str | None
    reason: str


def what_to_redo(
    *,
    window_version: str,
    training_policy: str,
    evaluation_policy: str,
    candidate: Mapping[str, Any] | None,
    evaluation: Mapping[str, Any] | None,
    verdicts: Mapping[str, str],
    staged_version: str | None,
) -> Redo:
    """Retrain when the window or the training settings changed; re-evaluate (no retraining)
    when the last evaluation did not finish, its gates did not all run, the gate policy
    changed, or a candidate that passed was not staged; else nothing.

    `candidate` and `evaluation` are the latest materializations' metadata of candidate_model
    and evaluation_report, `verdicts` the promotion gates' latest verdicts.
    """
    if candidate is None:
        return Redo("training_job", "no model trained yet")
    version = candidate.get("model_version")
    if candidate.get("data_version") != window_version:
        return Redo("training_job", f"the training window changed since version {version}")
    if candidate.get("training_policy") != training_policy:
        return Redo(
            "training_job",
            f"training settings (training, or the contract's columns) changed since version "
            f"{version} was trained",
        )
    if evaluation is None or evaluation.get("model_version") != version:
        return Redo("evaluation_job", f"version {version} has no finished evaluation")
    if evaluation.get("evaluation_policy") != evaluation_policy:
        return Redo(
            "evaluation_job", f"the gate policy changed since version {version} was evaluated"
        )
    unsettled = {name: v for name, v in verdicts.items() if v not in SETTLED_VERDICTS}
    if unsettled:
        listed = ", ".join(f"{name} ({v})" for name, v in sorted(unsettled.items()))
        return Redo("evaluation_job", f"gates of version {version} did not finish: {listed}")
    if "failed" not in verdicts.values() and staged_version != version:
        return Redo("evaluation_job", f"version {version} passed its gates but was not staged")
    return Redo(None, f"version {version} is trained, evaluated and judged on the current window")
