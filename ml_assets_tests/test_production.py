"""The production instance (deploy/production/dagster.yaml) on the real local PostgreSQL.

Each test gets a database of its own (services.postgres_database); without PostgreSQL the tests
skip naming it, and with CI=true they fail instead.
"""

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
