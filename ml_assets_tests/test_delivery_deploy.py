"""Desired state (deploy/<environment>.yaml), reconcile, drift of hand-moved aliases, rollback."""

import json
import os
import subprocess
import sys

import dagster as dg
import pytest
import yaml

from ml_assets.delivery.desired_state import (
    DesiredState,
    DesiredStateError,
    commit_state,
    read_state,
    replicas_for,
    write_state,
)
from ml_assets.delivery.rollback import production_history, rollback_target
from ml_assets.delivery.sensors import build_alias_drift_sensor
from ml_assets.training.registry import read_audit, verify_audit, version_for_alias
from ml_assets_tests.conftest import copy_project, decide, run_job


def test_replicas_are_sized_from_traffic_and_the_measured_cost():
    # 2 ms a request: 500 requests/s a replica; 600 requests/s with 50% headroom is 900 -> 2.
    assert replicas_for(600, 2.0, 0.5, 1) == 2
    assert replicas_for(1000, 2.0, 0.5, 1) == 3  # 1500 / 500
    assert replicas_for(10, 2.0, 0.5, 2) == 2  # the floor
    assert replicas_for(10, None, 0.5, 3) == 3  # unmeasured: the floor


def _events(*moves):
    return [
        {"event": event, "version": version, "at": f"2026-01-0{i + 1}T00:00:00+00:00"}
        for i, (event, version) in enumerate(moves)
    ]


def test_rollback_walks_back_promotions_never_forward():
    events = _events(("promoted", "1"), ("promoted", "2"), ("promoted", "3"))
    assert production_history(events) == ["1", "2", "3"]
    assert rollback_target(events, "3") == "2"
    rolled = [*events, *_events(("rolled_back", "2"))]
    assert production_history(rolled) == ["1", "2"]
    assert rollback_target(rolled, "2") == "1"  # a second rollback goes further back
    assert rollback_target(_events(("promoted", "1")), "1") is None  # nothing before the first
    # The alias was moved by hand to 4: back to the newest promoted version that is not 4.
    assert rollback_target(events, "4") == "3"


def _state(**fields):
    base = dict(
        environment="production",
        model="m",
        alias="production",
        version="2",
        model_sha256="ab" * 32,
        canary_share=0.1,
        expected_requests_per_second=50.0,
        single_row_p50_ms=0.5,
        replicas=2,
        change="promoted",
        changed_by="ana",
        changed_at="2026-01-01T00:00:00+00:00",
    )
    return DesiredState(**{**base, **fields})


def test_a_broken_desired_state_names_the_file_and_key(tmp_path):
    write_state(tmp_path, _state())
    assert read_state(tmp_path, "production") == _state()
    assert read_state(tmp_path, "staging") is None
    path = tmp_path / "production.yaml"
    raw = yaml.safe_load(path.read_text())
    del raw["model_sha256"]
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(DesiredStateError, match=r"production\.yaml: model_sha256: Field required"):
        read_state(tmp_path, "production")
    path.write_text("version: [")
    with pytest.raises(DesiredStateError, match=r"production\.yaml is not valid YAML"):
        read_state(tmp_path, "production")


def _git(repo, *args):
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def test_a_change_of_desired_state_is_a_commit_of_that_file_alone(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "README").write_text("x")
    _git(repo, "add", "README")  # someone's staged work, not part of the deployment
    folder = repo / "deploy"
    state = _state(lineage={"data_version": "d1", "approvers": ["ana", "olu"], "reason": "ok"})
    path = write_state(folder, state)
    from ml_assets.delivery.desired_state import commit_message

    commit = commit_state(path, commit_message(state))
    assert commit is not None
    assert _git(repo, "show", "--name-only", "--format=", commit).split() == [
        "deploy/production.yaml"
    ]
    message = _git(repo, "log", "-1", "--format=%B")
    assert message.startswith("deploy production: m v2 (promoted)")
    assert "approvers: ana, olu" in message and "data_version: d1" in message
    assert "A  README" in _git(repo, "status", "--short")  # still staged, not committed
    assert commit_state(path, commit_message(state)) is None  # unchanged: no empty commit
    outside = tmp_path / "not_a_repo"
    assert commit_state(write_state(outside, state), "m") is None


def _production(client, name):
    held = version_for_alias(client, name, "production")
    return str(held.version) if held else None


@pytest.fixture
def two_versions(trained_pair_root, tmp_path):
    """A project with v1 promoted to production and v2 staged (trained on two more days): the
    session's trained pair, copied for this test."""
    # What is under test here is the desired state and its moves, not the canary (its own
    # tests): a person may approve v2 before a canary ran.
    return copy_project(trained_pair_root, tmp_path / "p", canary={"required_for_approval": False})


def test_desired_state_rollback_and_a_hand_moved_alias(two_versions, instance):
    project = two_versions
    pipeline = project.pipeline
    client, name = pipeline.mlflow_client(), project.settings.training.registered_model_name
    folder = pipeline.desired_state_dir
    staged = read_state(folder, "staging")
    assert staged.version == "2" and staged.change == "staged"
    assert staged.model_sha256 == client.get_model_version(name, "2").tags["model_sha256"]
    assert staged.lineage.data_version == client.get_model_version(name, "2").tags["data_version"]
    assert staged.replicas >= 1 and staged.single_row_p50_ms > 0
    desired = read_state(folder, "production")
    assert (desired.version, desired.lineage.approvers) == ("1", ["ana"])
    assert desired.replicas >= 2  # production's min_replicas in pipeline.yaml

    # Someone moves production to v2 by hand in the MLflow UI, bypassing the approval.
    client.set_registered_model_alias(name, "production", "2")
    sensor = build_alias_drift_sensor(30)
    request = sensor(dg.build_sensor_context(instance=instance, resources={"pipeline": pipeline}))
    assert isinstance(request, dg.RunRequest)
    assert "production: production on v2, desired v1" in request.run_key
    reconciled = run_job("reconcile_job", project, instance)
    assert reconciled.success and _production(client, name) == "1"
    drift = read_audit(pipeline.audit_dir, name)[-1]
    assert (drift["event"], drift["found"], drift["action"]) == ("drift", "2", "restored")
    assert "MLflow records no author or time for alias moves" in drift["detail"]
    quiet = sensor(dg.build_sensor_context(instance=instance, resources={"pipeline": pipeline}))
    assert isinstance(quiet, dg.SkipReason)

    # Promote v2, then roll back: production serves v1 again, with a review and an audit entry.
    assert decide(project, instance, "2", "olu", reason="better").success
    assert _production(client, name) == "2"
    rollback = {"approver": "olu", "reason": "default rate alert", "from_version": "2"}
    config = {"ops": {"roll_back_production": {"config": rollback}}}
    rolled = run_job("rollback_job", project, instance, run_config=config)
    assert rolled.success and _production(client, name) == "1"
    state = read_state(folder, "production")
    assert (state.version, state.change, state.changed_by) == ("1", "rolled back", "olu")
    (review,) = (pipeline.data_dir / "reports" / "incidents").glob("*.md")
    text = review.read_text()
    assert "v2 rolled back to v1" in text and "default rate alert" in text
    assert "What did the gates miss?" in text and "| candidate_not_worse_than_production |" in text
    # A retry of the same rollback changes nothing; with nothing before v1 there is no rollback.
    assert run_job("rollback_job", project, instance, run_config=config).success
    assert _production(client, name) == "1"
    again = {"ops": {"roll_back_production": {"config": {**rollback, "from_version": ""}}}}
    refused = run_job("rollback_job", project, instance, run_config=again)
    assert not refused.success and _production(client, name) == "1"
    stranger = {"ops": {"roll_back_production": {"config": {**rollback, "approver": "eve"}}}}
    assert not run_job("rollback_job", project, instance, run_config=stranger).success
    events = [e["event"] for e in read_audit(pipeline.audit_dir, name)]
    assert events.count("rolled_back") == 1

    # The desired state names bits the registry does not hold: reconcile moves nothing.
    path = folder / "production.yaml"
    path.write_text(path.read_text().replace(state.model_sha256, "f" * 64))
    client.set_registered_model_alias(name, "production", "2")
    tampered = run_job("reconcile_job", project, instance)
    assert not tampered.success and _production(client, name) == "2"
    failure = next(e for e in tampered.all_events if e.is_step_failure)
    assert "the version's bits changed" in failure.step_failure_data.error.message
    assert verify_audit(pipeline.audit_dir, name) == []

    # Each version has a model card, updated at every deployment event and logged to MLflow.
    card = (pipeline.model_cards_dir / f"{name}-v1.md").read_text()
    for heading in (
        "Model details",
        "Intended use",
        "Training data",
        "Training parameters",
        "Evaluation",
        "Slices and fairness",
        "Limitations",
        "Approvals",
        "Deployment events",
    ):
        assert f"\n## {heading}\n" in card, heading
    window = json.loads(pipeline.training_window_path.read_text())  # v2's window
    assert "| approved | ana | data_science | first release |" in card
    assert "| rolled_back |" in card and "default rate alert" in card
    assert "| candidate_meets_metric_floors | passed |" in card
    run_id = client.get_model_version(name, "1").run_id
    logged = {a.path for a in client.list_artifacts(run_id, "model_card")}
    assert logged == {f"model_card/{name}-v1.md", f"model_card/{name}-v1.html"}
    # The lineage command: deployments and approvals back to the data files and the commit.
    env = {**os.environ, "ML_ASSETS_CONFIG": str(project.config_path)}
    printed = subprocess.run(
        [sys.executable, "-m", "ml_assets.lineage", "2"], env=env, capture_output=True, text=True
    )
    assert printed.returncode == 0, printed.stderr
    out = printed.stdout
    assert out.startswith(f"{name} v2") and "promoted" in out and "approved olu better" in out
    assert f"training run: {client.get_model_version(name, '2').run_id}" in out
    last = window["days"][-1]
    assert f"    {last}: {window['fingerprints'][last]}" in out
    missing = subprocess.run(
        [sys.executable, "-m", "ml_assets.lineage", "99"], env=env, capture_output=True, text=True
    )
    assert missing.returncode == 1 and "v99" in missing.stdout


def test_a_process_killed_between_desired_state_and_alias_is_repaired(
    two_versions, disk_instance, tmp_path
):
    instance = disk_instance
    project = two_versions
    pipeline = project.pipeline
    client, name = pipeline.mlflow_client(), project.settings.training.registered_model_name
    env = {
        **os.environ,
        "ML_ASSETS_CONFIG": str(project.config_path),
        "DAGSTER_HOME": str(instance.root_directory),
        "ML_ASSETS_FAILPOINT": "after_desired_state",
    }
    approve = [sys.executable, "-m", "ml_assets.cli.run", "approve", "--version", "2"]
    killed = subprocess.run([*approve, "--approver", "olu"], env=env, capture_output=True)
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    # The desired state says v2; MLflow still serves v1: the move was cut short.
    assert read_state(pipeline.desired_state_dir, "production").version == "2"
    assert _production(client, name) == "1"
    # The repair from a fresh process (`make reconcile`), in a folder of its own: it reads the
    # configured store, never MLflow's default ./mlflow.db (a regression: the model file's
    # models:/ URI was resolved against the global tracking URI).
    env.pop("ML_ASSETS_FAILPOINT")
    where = tmp_path / "elsewhere"
    where.mkdir()
    reconcile = [sys.executable, "-m", "ml_assets.cli.run", "reconcile"]
    repaired = subprocess.run(reconcile, env=env, cwd=where, capture_output=True, text=True)
    assert repaired.returncode == 0, repaired.stderr[-2000:]
    assert _production(client, name) == "2"
    assert read_audit(pipeline.audit_dir, name)[-1]["action"] == "restored"
    assert list(where.iterdir()) == []


def test_two_approvals_at_once_move_production_once(two_versions, tmp_path):
    """Two processes approve v2 at the same moment on an instance with the project's
    dagster.yaml: production moves once and the second finds it already serving. (The
    model_aliases pool should run the two steps one after the other, but on SQLite two claims
    at the same moment can both take its slot, seen twice on 2026-12-07: promote's own lock
    keeps the read and the move of the alias together.)"""
    import shutil

    from ml_assets.settings import PROJECT_ROOT

    project = two_versions
    pipeline = project.pipeline
    client, name = pipeline.mlflow_client(), project.settings.training.registered_model_name
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    # The instance exists before the two start (as after `make dev`): two processes creating
    # a new SQLite instance at the same moment would both stamp its schema version. Its pools
    # are created by each process under a lock (cli/instance.prepare_pools).
    dg.DagsterInstance.from_config(str(home)).dispose()
    env = {**os.environ, "ML_ASSETS_CONFIG": str(project.config_path), "DAGSTER_HOME": str(home)}
    approve = [sys.executable, "-m", "ml_assets.cli.run", "approve", "--version", "2"]
    runs = [
        subprocess.Popen([*approve, "--approver", who], env=env, stdout=subprocess.PIPE)
        for who in ("ana", "olu")
    ]
    outputs = [run.communicate(timeout=300)[0].decode() for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert _production(client, name) == "2"
    assert read_state(pipeline.desired_state_dir, "production").version == "2"
    promoted = [e for e in read_audit(pipeline.audit_dir, name, "2") if e["event"] == "promoted"]
    assert len(promoted) == 1, outputs
    assert sum("already serves production" in out for out in outputs) == 1, outputs
    assert verify_audit(pipeline.audit_dir, name) == []


def test_alias_moves_are_exclusive_across_holders(tmp_path):
    """A second holder of the production alias lock waits until the first lets go."""
    import threading
    import time

    from ml_assets.locking import exclusive

    lock, spans = tmp_path / "data" / "production_alias.lock", []

    def hold(seconds: float) -> None:
        with exclusive(lock):  # each opens the file: flock excludes the two
            start = time.monotonic()
            time.sleep(seconds)
            spans.append((start, time.monotonic()))

    first = threading.Thread(target=hold, args=(0.3,))
    first.start()
    time.sleep(0.05)
    second = threading.Thread(target=hold, args=(0.0,))
    second.start()
    first.join(5)
    second.join(5)
    (a, b) = sorted(spans)
    assert a[1] <= b[0], spans
