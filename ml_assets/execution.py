"""Where a run's steps execute: in the run's own process (the embedded default), or on
dagster-celery workers for the training and evaluation jobs (`execution:` in pipeline.yaml).

The run (celery_executor) and the workers (cli/celery_worker.py) build their Celery app from
the same settings, so they always agree on broker, result backend and queue. dagster_celery and
celery are imported only when the celery executor is chosen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ml_assets.settings import CelerySettings, Settings

if TYPE_CHECKING:
    import dagster as dg

# The jobs whose steps go to the workers when `execution.executor` is celery: training the
# candidate and its evaluation report (bootstraps, the reproducibility retrain) are the
# pipeline's long steps. The others' steps last a second or less, less than a hand-over.
CELERY_JOBS = ("training_job", "evaluation_job")


def _config_source(celery: CelerySettings) -> dict[str, Any]:
    """Celery settings beyond the URLs: the executor sends each step to this queue, and the
    workers consume it (dagster-celery's default queue, "dagster", is never used)."""
    return {"task_default_queue": celery.queue}


def celery_app_args(celery: CelerySettings) -> dict[str, Any]:
    """The worker's Celery app arguments, as the executor's below, URLs resolved now."""
    return {
        "broker": celery.broker_url,
        "backend": celery.backend_url,
        "config_source": _config_source(celery),
    }


def celery_executor_config(celery: CelerySettings) -> dict[str, Any]:
    """dagster-celery's executor config. A URL set in the environment is named, not copied:
    Dagster reads it when a run starts, so it is never part of the definitions."""
    return {
        "broker": {"env": celery.broker_env} if celery.broker_env else celery.broker,
        "backend": {"env": celery.backend_env} if celery.backend_env else celery.backend,
        "config_source": _config_source(celery),
    }


def job_executor(settings: Settings) -> dg.ExecutorDefinition | None:
    """The executor of CELERY_JOBS: dagster-celery's, configured from the settings, or None
    for the code location's default (in process)."""
    if settings.execution.executor != "celery":
        return None
    from dagster_celery import celery_executor

    return celery_executor.configured(
        celery_executor_config(settings.execution.celery), name="celery"
    )
