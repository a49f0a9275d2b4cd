"""The training job's steps on two real dagster-celery workers, over the machine's RabbitMQ.

Without RabbitMQ (127.0.0.1:5672 unless ML_ASSETS_TEST_RABBITMQ_HOST / _PORT say otherwise) the
test skips naming it; with CI=true it fails instead.
Each run uses a queue of its own, so concurrent test runs (or a developer's workers on the same
broker) never take each other's tasks.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from ml_assets.settings import PROJECT_ROOT
from ml_assets.training.registry import version_for_alias
from ml_assets_tests.conftest import START, failed_checks, ingest, make_project
from ml_assets_tests.services import RABBITMQ_HOST, RABBITMQ_PORT, require_service

BROKER = f"pyamqp://guest@{RABBITMQ_HOST}:{RABBITMQ_PORT}//"
STOP_SECONDS = 30
RUN_SECONDS = 300  # 25 to 35 s here


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (a worker's pool processes)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # The command name (field 2) may hold spaces; the parent follows its ')'.
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def stop(workers: list[subprocess.Popen]) -> None:
    """Warm shutdown of each worker by its PID (SIGTERM: it finishes its step and stops its
    pool); one still running after STOP_SECONDS is killed, and its pool processes with it."""
    running = [w for w in workers if w.poll() is None]
    pools = {w.pid: _children(w.pid) for w in running}
    for worker in running:
        worker.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    for worker in running:
        try:
            worker.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            for pid in pools[worker.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            worker.kill()
            worker.wait()


@contextlib.contextmanager
def celery_workers(names: list[str], env: dict, folder: Path) -> Iterator[list]:
    """`python -m ml_assets.cli.celery_worker --name NAME` per name, each logging to
    folder/NAME.log; all stopped on leaving the block, whatever happened."""
    workers = []
    try:
        for name in names:
            log = folder / f"{name}.log"
            with log.open("w") as sink:
                worker = subprocess.Popen(
                    [sys.executable, "-m", "ml_assets.cli.celery_worker", "--name", name],
                    env=env,
                    cwd=folder,
                    stdin=subprocess.DEVNULL,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                )
            worker.name, worker.log = name, log
            workers.append(worker)
        yield workers
    finally:
        stop(workers)


def wait_until_ready(workers: list, timeout: float = 120) -> None:
    """Until each worker has logged "NAME@host ready." (connected, consuming its queue)."""
    deadline = time.monotonic() + timeout
    waiting = list(workers)
    while waiting:
        for worker in list(waiting):
            text = worker.log.read_text()
            if f"{worker.name}@" in text and " ready." in text:
                waiting.remove(worker)
            elif worker.poll() is not None:
                pytest.fail(f"worker {worker.name} exited {worker.returncode}:\n{text[-3000:]}")
        if waiting and time.monotonic() > deadline:
            logs = "\n".join(w.log.read_text()[-2000:] for w in waiting)
            pytest.fail(f"workers not ready after {timeout} s:\n{logs}")
        time.sleep(0.2)


def execute_with_deadline(job, instance, seconds: float) -> tuple[dg.ExecuteJobResult, dict]:
    """dg.execute_job in a thread, given up after `seconds`, and the failed checks: a run whose
    step's worker died would otherwise poll for its result for ever (a revoke needs a live
    worker too)."""
    import threading

    outcome = {}

    def execute() -> None:
        try:
            with dg.execute_job(job, instance=instance, raise_on_error=False) as result:
                outcome["result"] = result
                outcome["failures"] = failed_checks(result)
        except BaseException as error:  # re-raised below, in the test's thread
            outcome["error"] = error

    thread = threading.Thread(target=execute, name="celery-run", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"the run did not finish in {seconds} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"], outcome["failures"]


def _delete_queue(queue: str) -> None:
    """The test's queue and its exchange, so the broker keeps nothing of the test."""
    from kombu import Connection

    with Connection(BROKER) as connection:
        channel = connection.default_channel
        channel.queue_delete(queue)
        channel.exchange_delete(queue)


def test_celery_gives_the_training_and_evaluation_jobs_its_executor(tmp_path, monkeypatch):
    """The executor setting changes the two jobs' executor and nothing else about them, and a
    broker URL from the environment is named in the executor config, never copied into it."""
    from dagster._serdes import serialize_value

    from ml_assets import definitions
    from ml_assets.execution import CELERY_JOBS, celery_app_args, celery_executor_config
    from ml_assets.retraining import jobs

    project = make_project(
        tmp_path / "p", execution={"executor": "celery", "celery": {"queue": "q1"}}
    )
    secret = "pyamqp://ml:s3cret@rabbit.internal:5672//"
    monkeypatch.setenv("ML_ASSETS_CONFIG", str(project.config_path))
    monkeypatch.setenv("ML_ASSETS_CELERY_BROKER_URL", secret)
    location = definitions.defs()
    executors = {
        j.name: j.executor_def.name
        for j in location.resolve_all_job_defs()
        if not j.name.startswith("__")
    }
    assert executors == {n: "celery" if n in CELERY_JOBS else "in_process" for n in executors}
    for name in CELERY_JOBS:
        (celery_job,) = [j for j in location.jobs if j.name == name]
        stage_job = getattr(jobs, name)
        # Only the executor differs from the stage's definition, whatever fields Dagster adds.
        fields = [f for f in type(stage_job)._fields if f != "executor_def"]
        assert {f: getattr(celery_job, f) for f in fields} == {
            f: getattr(stage_job, f) for f in fields
        }
        snapshot = serialize_value(location.resolve_job_def(name).get_job_snapshot())
        assert "s3cret" not in snapshot
    celery = project.settings.execution.celery
    assert celery_executor_config(celery) == {
        "broker": {"env": "ML_ASSETS_CELERY_BROKER_URL"},
        "backend": "rpc://",
        "config_source": {"task_default_queue": "q1"},
    }
    assert celery_app_args(celery)["broker"] == secret  # the workers read it at start


@pytest.mark.long(40)
def test_the_training_job_runs_its_steps_on_two_celery_workers(tmp_path, monkeypatch):
    require_service("RabbitMQ", RABBITMQ_HOST, RABBITMQ_PORT)
    queue = f"ml_assets_test_{uuid.uuid4().hex[:12]}"
    project = make_project(
        tmp_path / "p",
        execution={"executor": "celery", "celery": {"broker": BROKER, "queue": queue}},
    )
    days = project.write_days(START, 6)
    # A real instance both sides open: the run passes its reference to each celery task.
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").symlink_to(PROJECT_ROOT / "dagster.yaml")
    for key, value in {
        "ML_ASSETS_CONFIG": str(project.config_path),
        "DAGSTER_HOME": str(home),
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("ML_ASSETS_CELERY_BROKER_URL", "ML_ASSETS_CELERY_BACKEND_URL"):
        monkeypatch.delenv(key, raising=False)
    env = dict(os.environ)
    names = [f"w{i}_{queue[-6:]}" for i in (1, 2)]
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        with celery_workers(names, env, tmp_path) as workers:
            # Ingestion stays in process (as every job but training and evaluation does),
            # while the workers start.
            assert ingest(project, instance, days).success
            wait_until_ready(workers)
            from dagster._core.definitions.reconstruct import ReconstructableRepository

            repository = ReconstructableRepository.for_module(
                "ml_assets.definitions", "defs", str(PROJECT_ROOT)
            )
            job = repository.get_reconstructable_job("training_job")
            result, failures = execute_with_deadline(job, instance, RUN_SECONDS)
            records = instance.all_logs(result.run_id)
            step_pids = {
                r.dagster_event.step_key: r.dagster_event.pid
                for r in records
                if r.dagster_event and r.dagster_event.event_type == dg.DagsterEventType.STEP_START
            }
            # Read while the workers live: which worker's pool each step ran in.
            parents = {step: _parent(pid) for step, pid in step_pids.items()}
            worker_pids = {w.pid: w.name for w in workers}
    finally:
        instance.dispose()
        _delete_queue(queue)

    logs = "\n".join(w.log.read_text()[-3000:] for w in workers)
    assert result.success, f"{failures}\n{logs}"
    client = project.pipeline.mlflow_client()
    staged = version_for_alias(client, project.settings.training.registered_model_name, "staging")
    assert staged is not None and str(staged.version) == "1"
    # Every step ran in a worker's pool process, none in this one.
    assert {"training_dataset", "candidate_model", "evaluation_report", "staging_model"} <= set(
        step_pids
    )
    assert os.getpid() not in step_pids.values()
    assert set(parents.values()) <= set(worker_pids), (parents, worker_pids)
    # And dagster-celery names the worker that took each step: both did.
    hosts = {
        r.dagster_event.step_key: r.dagster_event.engine_event_data.metadata["Celery worker"].value
        for r in records
        if r.dagster_event
        and r.dagster_event.is_engine_event
        and "Celery worker" in r.dagster_event.engine_event_data.metadata
    }
    assert set(hosts) == set(step_pids)
    assert {host.split("@")[0] for host in hosts.values()} == set(names)
    assert {worker_pids[p] for p in parents.values()} == set(names)
    for step, host in hosts.items():
        assert host.startswith(f"{worker_pids[parents[step]]}@"), (step, host, parents[step])
