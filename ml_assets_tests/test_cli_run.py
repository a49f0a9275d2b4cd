"""`make run`'s exit codes, which CI reads: 0 every blocking gate passed, 1 a gate blocked,
2 an error. The command runs as a user runs it, in a child process on a temporary project."""

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ml_assets_tests.conftest import START, make_project


def _make_run(project, home: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "ML_ASSETS_CONFIG": str(project.config_path),
        "DAGSTER_HOME": str(home),
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, "-m", "ml_assets.cli.run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.long(28)
def test_exit_0_when_every_gate_passes_then_1_when_a_batch_is_quarantined(tmp_path):
    project = make_project(tmp_path / "p")
    project.write_days(START, 8)
    home = tmp_path / "dagster_home"
    home.mkdir()

    done = _make_run(project, home)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "exit 0: every blocking gate passed" in done.stdout
    assert "alias staging: none -> v1" in done.stdout

    day = (START + dt.timedelta(days=8)).isoformat()
    project.write_days(START + dt.timedelta(days=8), 1)
    (project.settings.dataset.features_dir / f"{day}.parquet").write_bytes(b"")
    done = _make_run(project, home)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"FAIL on {day}" in done.stdout and "unreadable" in done.stdout
    (outcome,) = (line for line in done.stdout.splitlines() if "exit 1: blocked by" in line)
    assert "raw_batches_match_schema" in outcome
    # An ordinary gate failure prints no stack trace (it stays in the run's event log).
    assert "Stack Trace" not in done.stderr and "Traceback" not in done.stderr

    # `make score` with no batch named takes the newest batch that passed, naming the skipped.
    env = {**os.environ, "ML_ASSETS_CONFIG": str(project.config_path), "DAGSTER_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    scored = subprocess.run(
        [sys.executable, "-m", "ml_assets.cli.run", "score"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert scored.returncode == 0, scored.stdout + scored.stderr
    assert f"skipped batch {day}: failed raw_batches_match_schema" in scored.stderr
    newest_passing = (START + dt.timedelta(days=7)).isoformat()
    assert f"batch {newest_passing}: nothing scored" in scored.stdout


def test_exit_2_on_a_configuration_error_naming_the_key(tmp_path):
    project = make_project(tmp_path / "p")
    text = project.config_path.read_text().replace("training:", "training:\n  windw_days: 3", 1)
    project.config_path.write_text(text)
    home = tmp_path / "dagster_home"
    home.mkdir()
    done = _make_run(project, home)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "windw_days" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 3
