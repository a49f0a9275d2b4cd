"""`make ci`: the pipeline on an ephemeral instance and a scratch registry, judged against the
production champion imported from the configured registry; nothing real is written."""

import datetime as dt

from ml_assets.cli import ci
from ml_assets.training.registry import version_for_alias
from ml_assets_tests.conftest import START, copy_project, make_project


def _registry_state(project):
    client = project.pipeline.mlflow_client()
    name = project.settings.training.registered_model_name
    versions = sorted(str(v.version) for v in client.search_model_versions(f"name='{name}'"))
    aliases = {
        a: str(version_for_alias(client, name, a).version) for a in ("staging", "production")
    }
    return versions, aliases


def _files(folder):
    return sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir())


def test_ci_judges_a_candidate_against_the_registrys_champion_and_writes_nothing_real(
    trained_pair_root, tmp_path, monkeypatch, capsys
):
    project = copy_project(trained_pair_root, tmp_path / "p")
    monkeypatch.setenv("ML_ASSETS_CONFIG", str(project.config_path))
    summary = tmp_path / "step_summary.md"
    monkeypatch.setenv(ci.SUMMARY_ENV_VAR, str(summary))
    before = _registry_state(project), _files(project.settings.dataset.features_dir)
    deploy = sorted(p.name for p in project.settings.desired_state_dir.iterdir())

    code = ci.main([])

    out = capsys.readouterr().out
    text = summary.read_text()
    assert code == 0, out
    assert "exit 0, every blocking gate passed" in text
    assert "champion: v1 here, from credit_default_risk v1@production in sqlite:///" in text
    # Every gate has a row, judged against the champion rather than alone.
    for gate in ("raw_batches_match_schema", "candidate_not_worse_than_production"):
        assert f"| {gate} " in text
    assert "no champion" not in text
    assert "validation depth: sample" in text
    # The real registry, desired state and batch folders are as they were.
    assert (_registry_state(project), _files(project.settings.dataset.features_dir)) == before
    assert sorted(p.name for p in project.settings.desired_state_dir.iterdir()) == deploy


def test_ci_exits_1_on_a_corrupted_batch_and_says_which_gate(tmp_path, monkeypatch, capsys):
    project = make_project(tmp_path / "p")
    project.write_days(START, 6)
    day = (START + dt.timedelta(days=6)).isoformat()
    project.write_days(START + dt.timedelta(days=6), 1)
    (project.settings.dataset.features_dir / f"{day}.parquet").write_bytes(b"not parquet")
    monkeypatch.setenv("ML_ASSETS_CONFIG", str(project.config_path))
    summary = tmp_path / "step_summary.md"
    monkeypatch.setenv(ci.SUMMARY_ENV_VAR, str(summary))

    assert ci.main(["--workdir", str(tmp_path / "ci")]) == 1
    text = summary.read_text()
    (outcome,) = (line for line in text.splitlines() if line.startswith("## "))
    assert "exit 1, blocked by" in outcome and "raw_batches_match_schema" in outcome
    assert "| raw_batches_match_schema " in text and day in text
    assert "champion: none" in text
    # The quarantine is in the kept work folder; the input folder still has the file.
    assert (tmp_path / "ci" / "data" / "quarantine" / day).is_dir()
    assert (project.settings.dataset.features_dir / f"{day}.parquet").exists()
    assert not (project.root / "data" / "quarantine").exists()
