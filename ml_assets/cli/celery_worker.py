"""A dagster-celery worker for the training and evaluation jobs: `make celery-worker NAME=w1`.

It builds the Celery app the run's celery_executor builds (ml_assets/execution.py: broker,
result backend and queue from pipeline.yaml's `execution.celery`, the broker's URL from
$ML_ASSETS_CELERY_BROKER_URL when set) and runs the worker in this process. Unlike `dagster-celery
worker start`, it writes no config module holding the broker's URL under DAGSTER_HOME, puts no
URL on a command line, and this process is the worker: stopping its PID stops the worker (the
CLI runs `celery` as a child that outlives it). Each step runs in a child process of the
worker's pool, one at a time per `--concurrency`; it loads the code location from the worker's
environment (ML_ASSETS_CONFIG, MLFLOW_TRACKING_URI) and the Dagster instance the run names.
"""

from __future__ import annotations

import argparse
import sys

from ml_assets.execution import celery_app_args
from ml_assets.settings import SettingsError, config_path, load_settings


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ml_assets.cli.celery_worker")
    parser.add_argument("--name", required=True, help="the worker's name (node name NAME@host)")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="steps at once (each LightGBM step already uses training.lightgbm.num_threads)",
    )
    parser.add_argument("--loglevel", default="INFO")
    args = parser.parse_args(argv)
    if not args.name.strip():
        parser.error("a worker needs a name: make celery-worker NAME=w1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    celery = settings.execution.celery
    if settings.execution.executor != "celery":
        print(
            f"note: execution.executor is {settings.execution.executor!r} in {config_path()}: "
            "no run sends steps to this worker until it is celery",
            file=sys.stderr,
        )

    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.make_app import make_app
    from dagster_celery.tasks import create_task

    app = make_app(CeleryExecutor.for_cli(**celery_app_args(celery)).app_args())
    create_task(app)
    app.worker_main(
        [
            "worker",
            f"--hostname={args.name}@%h",
            f"--queues={celery.queue}",
            f"--concurrency={args.concurrency}",
            # One task at a time per pool process: a long training step never holds a second
            # step back that another worker could run.
            "--prefetch-multiplier=1",
            f"--loglevel={args.loglevel}",
        ]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
