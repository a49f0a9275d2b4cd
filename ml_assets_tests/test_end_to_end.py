"""The whole loop through `make run`'s driver, on a small demo, then a corrupted batch."""

import datetime as dt
import json

import dagster as dg
import pandas as pd
import pytest
import yaml

from ml_assets.cli import run
from ml_assets.training.registry import read_audit, version_for_alias
from ml_assets_tests.conftest import START, code_location, make_project


@pytest.fixture
def driver(tmp_path, monkeypatch):
    """A small project run exactly as `make run` runs it: env-selected config and instance."""
    project = make_project(tmp_path / "project")
    project.write_days(START, 12)
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("ML_ASSETS_CONFIG", str(project.config_path))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return project


def _aliases(project):
    client = project.pipeline.mlflow_client()
    name = project.settings.training.registered_model_name
    found = {a: version_for_alias(client, name, a) for a in ("staging", "production")}
    return {a: (str(v.version) if v else None) for a, v in found.items()}


def _versions(project):
    client = project.pipeline.mlflow_client()
    name = project.settings.training.registered_model_name
    return sorted(str(v.version) for v in client.search_model_versions(f"name='{name}'"))


@pytest.mark.long(19)
def test_whole_loop_then_a_corrupted_batch_changes_nothing(driver, capsys):
    project = driver
    assert run.main([]) == 0
    first = capsys.readouterr().out
    assert "batches ingested: 12, passed 12, quarantined 0" in first
    assert "candidate: credit_default_risk v1" in first
    assert "gate candidate_meets_metric_floors: PASS" in first
    assert "alias staging: none -> v1" in first
    assert _aliases(project) == {"staging": "1", "production": None}

    # A second run finds everything up to date and starts no Dagster run.
    assert run.main([]) == 0
    assert "everything is up to date" in capsys.readouterr().out
    assert _versions(project) == ["1"]

    # A refused promotion says why in one line, without Dagster's wrapper.
    assert run.main(["promote", "--version", "7", "--approver", "ana"]) == 1
    refused = capsys.readouterr().err
    assert "approval refused: credit_default_risk has no version '7' in the registry" in refused
    assert "Error occurred while executing" not in refused

    # The human approval gate moves production.
    assert run.main(["promote", "--version", "1", "--approver", "ana"]) == 0
    assert _aliases(project) == {"staging": "1", "production": "1"}
    assert [
        e["event"] for e in read_audit(project.pipeline.audit_dir, "credit_default_risk", "1")
    ] == ["registered", "staged", "approved", "promoted"]

    # A schema-corrupted batch arrives: quarantined, no model trained, no alias moved.
    (bad,) = project.write_days(dt.date(2026, 1, 13), 1, scenario="schema_corruption")
    assert run.main([]) == 1  # a gate blocked: CI sees it
    out = capsys.readouterr().out
    assert "quarantined 1 (2026-01-13" in out
    assert "aliases: unchanged" in out
    quarantine = project.pipeline.quarantine_dir / bad
    (folder,) = quarantine.iterdir()
    assert (folder / f"{bad}.parquet").exists()
    assert (folder / "raw_batches_match_schema_failure_cases.csv").exists()
    assert _versions(project) == ["1"]
    assert _aliases(project) == {"staging": "1", "production": "1"}
    assert run.main([]) == 0  # and the failed batch is not retried while its file is unchanged
    assert "everything is up to date" in capsys.readouterr().out

    # An automated retrain in a later run (as the schedule or drift sensor would request) never
    # trains on the batch whose gate failed in the earlier run.
    instance = dg.DagsterInstance.get()
    result = (
        code_location()
        .resolve_job_def("training_job")
        .execute_in_process(
            instance=instance, tags={"ml_assets/trigger": "schedule"}, raise_on_error=False
        )
    )
    trained = {
        e.materialization.asset_key.path[-1] for e in result.get_asset_materialization_events()
    }
    assert "candidate_model" in trained
    # Same passing data as the champion, so no significant gain: the default `superior` rule
    # keeps this retrain off staging.
    blocking = {
        e.check_name
        for e in result.get_asset_check_evaluations()
        if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
    }
    assert blocking == {"candidate_passes_champion_challenger_test"}
    assert "staging_model" not in trained
    window = json.loads((project.pipeline.features_dir / "training_window.json").read_text())
    assert bad in window["excluded"] and bad not in window["days"]
    rows = pd.read_parquet(project.pipeline.features_dir / "training_dataset.parquet")
    assert bad not in set(rows["batch_day"])
    client = project.pipeline.mlflow_client()
    assert client.get_model_version("credit_default_risk", "2").tags["excluded_batches"] == bad


def _edit(project, section: str, **values) -> None:
    raw = yaml.safe_load(project.config_path.read_text())
    target = raw
    for key in section.split("."):
        target = target[key]
    target.update(values)
    project.config_path.write_text(yaml.safe_dump(raw, sort_keys=False))


def _verdict_files(project) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in project.pipeline.ledger_dir.rglob("*.json")}


@pytest.mark.long(26)
def test_make_run_redoes_exactly_what_a_change_affects(driver, capsys, monkeypatch):
    """Retrain on a training change, re-evaluate on a gate change or after a crash, and
    nothing on a change no stage reads (#10 E)."""
    project = driver
    assert run.main([]) == 0
    capsys.readouterr()
    judged = _verdict_files(project)

    # A key that neither the gates, training nor the evaluation read: nothing is redone.
    _edit(project, "drift", reference_sample_rows=400)
    assert run.main([]) == 0
    out = capsys.readouterr().out
    assert "everything is up to date" in out and "0 Dagster run(s)" in out
    assert _verdict_files(project) == judged  # no batch judged again

    # A gate threshold changes and the evaluation crashes: exit 2 with its cause, no retrain.
    from ml_assets.evaluation import operational

    def broken(*args, **kwargs):
        raise RuntimeError("scoring harness lost its workdir")

    _edit(project, "gates.floors", min_roc_auc=0.69)
    with monkeypatch.context() as patch:
        patch.setattr(operational, "measure_scoring", broken)
        assert run.main([]) == 2
    out = capsys.readouterr().out
    assert "re-evaluated without retraining: the gate policy changed" in out
    assert "ERROR evaluation_report: RuntimeError: scoring harness lost its workdir" in out
    assert _versions(project) == ["1"]

    # The next run retries what errored, still without retraining.
    assert run.main([]) == 0
    out = capsys.readouterr().out
    assert "re-evaluated without retraining: the gate policy changed" in out
    assert "gate candidate_meets_metric_floors: PASS" in out
    assert _versions(project) == ["1"]
    assert run.main([]) == 0
    assert "everything is up to date" in capsys.readouterr().out

    # A LightGBM parameter changes: a new model is trained on the same window; its evaluation
    # crashes, and the next run evaluates it without training a third.
    _edit(project, "training.lightgbm", num_leaves=15)
    with monkeypatch.context() as patch:
        patch.setattr(operational, "measure_scoring", broken)
        assert run.main([]) == 2
    out = capsys.readouterr().out
    assert "retrained: training settings" in out
    assert _versions(project) == ["1", "2"]
    run.main([])
    out = capsys.readouterr().out
    assert "re-evaluated without retraining: version 2 has no finished evaluation" in out
    assert _versions(project) == ["1", "2"]
    assert _verdict_files(project) == judged  # the batches' verdicts still stand
