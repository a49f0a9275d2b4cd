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


@pytest.mark.long(8)
def test_exit_1_when_a_batch_is_quarantined(tmp_path, capsys, monkeypatch):
    """One child process, as CI runs `make run`: the unreadable day is quarantined, nothing
    trains on a blocked ingestion, and the exit code is 1 with no stack trace. (Exit 0 on the
    same driver is test_end_to_end's; the process maps main()'s return to its exit code.)"""
    project = make_project(tmp_path / "p")
    project.write_days(START, 8)
    day = (START + dt.timedelta(days=8)).isoformat()
    project.write_days(START + dt.timedelta(days=8), 1)
    (project.settings.dataset.features_dir / f"{day}.parquet").write_bytes(b"")
    home = tmp_path / "dagster_home"
    home.mkdir()

    done = _make_run(project, home)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"FAIL on {day}" in done.stdout and "unreadable" in done.stdout
    (outcome,) = (line for line in done.stdout.splitlines() if "exit 1: blocked by" in line)
    assert "raw_batches_match_schema" in outcome
    assert "aliases: unchanged" in done.stdout
    # An ordinary gate failure prints no stack trace (it stays in the run's event log).
    assert "Stack Trace" not in done.stderr and "Traceback" not in done.stderr

    # `make score` with no batch named takes the newest batch that passed, naming the skipped.
    from ml_assets.cli import run

    monkeypatch.setenv("ML_ASSETS_CONFIG", str(project.config_path))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    capsys.readouterr()
    assert run.main(["score"]) == 0
    scored = capsys.readouterr()
    assert f"skipped batch {day}: failed raw_batches_match_schema" in scored.err
    newest_passing = (START + dt.timedelta(days=7)).isoformat()
    assert f"batch {newest_passing}: nothing scored" in scored.out


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
