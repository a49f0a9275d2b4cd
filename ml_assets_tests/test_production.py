"""The production instance (deploy/production/dagster.yaml) on the real local PostgreSQL.

Each test gets a database of its own (services.postgres_database); without PostgreSQL the tests
skip naming it, and with CI=true they fail instead.
"""

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from ml_assets.cli.instance import prepare_pools
from ml_assets.data.ledger import read_verdict
from ml_assets.settings import PROJECT_ROOT
from ml_assets_tests.conftest import START, add_partitions, make_project, range_tags
from ml_assets_tests.services import postgres_database

PRODUCTION_CONFIG = PROJECT_ROOT / "deploy" / "production" / "dagster.yaml"


@pytest.fixture
def production_home(tmp_path, monkeypatch):
    """A DAGSTER_HOME holding the production instance config, on a new Postgres database."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").symlink_to(PRODUCTION_CONFIG)
    with postgres_database() as env:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield home, env


def test_the_production_instance_stores_runs_and_events_in_postgres(production_home):
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

    home, _ = production_home
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 8
        assert [(t["key"], t["value"], t["limit"]) for t in queue.tag_concurrency_limits] == [
            ("stage", "training", 1)
        ]
        # The alias pool exists with one slot before any step claims it.
        prepare_pools(instance)
        info = instance.event_log_storage.get_concurrency_info("model_aliases")
        assert info.slot_count == 1
    finally:
        instance.dispose()


@pytest.mark.long(20)
def test_four_ingestion_runs_at_once_finish_without_lock_errors(production_home, tmp_path):
    """Four `dagster job execute` processes ingest four batches at the same moment, as four
    sensor requests would: every run succeeds, nothing says "database is locked", and each
    batch has its verdicts."""
    home, env = production_home
    project = make_project(tmp_path / "p")
    days = project.write_days(START, 4)
    instance = dg.DagsterInstance.from_config(str(home))
    add_partitions(instance, days)
    child_env = {
        **os.environ,
        **env,
        "DAGSTER_HOME": str(home),
        "ML_ASSETS_CONFIG": str(project.config_path),
    }
    child_env.pop("MLFLOW_TRACKING_URI", None)
    dagster = Path(sys.executable).parent / "dagster"
    runs = [
        subprocess.Popen(
            [
                str(dagster),
                "job",
                "execute",
                "-m",
                "ml_assets.definitions",
                "-j",
                "ingestion_job",
                "--tags",
                json.dumps(range_tags(day, day)),
            ],
            env=child_env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for day in days
    ]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    try:
        assert [run.returncode for run in runs] == [0] * 4, "\n".join(o[-2000:] for o in outputs)
        for output in outputs:
            assert "database is locked" not in output
        records = instance.get_runs()
        assert len(records) == 4
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in records)
        for day in days:
            verdict = read_verdict(project.pipeline.ledger_dir, "raw_batches_match_schema", day)
            assert verdict is not None and verdict.passed, day
    finally:
        instance.dispose()


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.long(70)
def test_the_pipeline_runs_on_postgres_with_the_mlflow_server_and_only_its_user_moves_aliases(
    tmp_path,
):
    """`make prod-up`'s MLflow server (Postgres store, served artefacts, basic auth) and the
    Postgres instance: `make run` and `make promote` as the pipeline's user stage and promote
    v1; a reader of the same server cannot move production's alias; `prod-down` stops it."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth.client import AuthServiceClient

    from ml_assets.cli import prod

    with postgres_database() as dagster_db, postgres_database() as mlflow_db:
        secrets = {
            "MLFLOW_AUTH_ADMIN_PASSWORD": "admin-test-password",
            "MLFLOW_PIPELINE_PASSWORD": "pipeline-test-password",
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-session-key",
        }
        deployment = prod.Deployment(
            state_dir=tmp_path / "prod",
            mlflow_port=_free_port(),
            pg_host=dagster_db["DAGSTER_PG_HOST"],
            pg_port=int(dagster_db["DAGSTER_PG_PORT"]),
            pg_user=dagster_db["DAGSTER_PG_USER"],
            pg_password=dagster_db["DAGSTER_PG_PASSWORD"],
            dagster_db=dagster_db["DAGSTER_PG_DB"],
            mlflow_db=mlflow_db["DAGSTER_PG_DB"],
            secrets=secrets,
        )
        try:
            assert prod.up(deployment, servers=("mlflow",)) == {"mlflow": True}
            project = make_project(tmp_path / "p")
            project.write_days(START, 6)
            env = {
                **os.environ,
                **deployment.pipeline_env(),
                "ML_ASSETS_CONFIG": str(project.config_path),
            }

            def cli(*args):
                done = subprocess.run(
                    [sys.executable, "-m", "ml_assets.cli.run", *args],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
                assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
                return done.stdout

            assert "alias staging: none -> v1" in cli()
            cli("promote", "--version", "1", "--approver", "ana")

            name = project.settings.training.registered_model_name
            pipeline = MlflowClient(tracking_uri=deployment.tracking_uri)
            with _as_user("pipeline", secrets["MLFLOW_PIPELINE_PASSWORD"]):
                assert pipeline.get_model_version_by_alias(name, "production").version == "1"
            # The model's files went through the server into its artefact folder.
            served = deployment.state_dir / "mlflow-artifacts"
            assert any(p.name == "MLmodel" for p in served.rglob("MLmodel"))
            assert not (project.root / "data" / "mlflow" / "artifacts").exists()
            # A reader (the UI's default) cannot move production's alias.
            with _as_user("admin", secrets["MLFLOW_AUTH_ADMIN_PASSWORD"]):
                AuthServiceClient(deployment.tracking_uri).create_user("viewer", "viewer-password")
            with _as_user("viewer", "viewer-password"):
                reader = MlflowClient(tracking_uri=deployment.tracking_uri)
                assert reader.get_model_version_by_alias(name, "production").version == "1"
                with pytest.raises(MlflowException, match=r"PERMISSION_DENIED|Permission denied"):
                    reader.set_registered_model_alias(name, "production", "1")
            # Without credentials the server refuses.
            with pytest.raises(MlflowException):
                MlflowClient(tracking_uri=deployment.tracking_uri).search_registered_models()
        finally:
            stopped = prod.down(deployment)
        assert "mlflow" in stopped and prod.status(deployment) == {}


@contextlib.contextmanager
def _as_user(user: str, password: str):
    """MLflow's client reads basic-auth credentials from these variables at each request."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_TRACKING_USERNAME", user)
        env.setenv("MLFLOW_TRACKING_PASSWORD", password)
        yield
