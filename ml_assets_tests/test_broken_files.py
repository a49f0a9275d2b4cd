"""Broken batch files: each gets its own verdict and is quarantined; every other batch is judged
as usual, the run goes on, and no input file changes."""

import hashlib

import pandas as pd
import pytest

from ml_assets.data.gates import DATA_GATES
from ml_assets.data.ledger import read_verdict
from ml_assets_tests.conftest import START, ingest, make_project

GATES = [g.name for g in DATA_GATES]


def _zero_bytes(path):
    path.write_bytes(b"")


def _truncated(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _csv_bytes(path):
    path.write_bytes(pd.read_parquet(path).to_csv(index=False).encode())


def _contents(*folders):
    return {
        str(f): hashlib.sha256(f.read_bytes()).hexdigest()
        for folder in folders
        for f in sorted(folder.iterdir())
    }


@pytest.mark.parametrize("side", ["features", "labels"])
@pytest.mark.parametrize("breakage", [_zero_bytes, _truncated, _csv_bytes])
def test_a_broken_file_gets_its_own_verdict_and_the_others_are_judged(
    tmp_path, instance, side, breakage
):
    project = make_project(tmp_path / "p")
    days = project.write_days(START, 4, rows=200)
    dataset = project.settings.dataset
    folder = dataset.features_dir if side == "features" else dataset.labels_dir
    broken = folder / f"{days[2]}.parquet"
    breakage(broken)
    before = _contents(dataset.features_dir, dataset.labels_dir)

    result = ingest(project, instance, days)

    assert not result.success  # an unjudged batch blocks the run
    ledger = project.pipeline.ledger_dir
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == set(GATES)  # every gate gave a verdict; none crashed
    for gate in GATES:
        check = evaluations[gate]
        assert not check.passed and check.severity.value == "ERROR"
        assert check.metadata["failed_days"].value == days[2]
        assert check.metadata["decision"].value == "quarantine and block"
        verdict = read_verdict(ledger, gate, days[2])
        assert not verdict.passed and verdict.blocks
        assert verdict.reason.startswith("unreadable: ") and str(broken) in verdict.reason
        for day in (days[0], days[1], days[3]):
            assert read_verdict(ledger, gate, day).passed, (gate, day)
    (entry,) = (project.pipeline.quarantine_dir / days[2]).iterdir()
    copied = entry / ("labels" if side == "labels" else "") / broken.name
    assert copied.read_bytes() == broken.read_bytes()
    report = (entry / f"{GATES[0]}_report.md").read_text()
    assert str(broken) in report and "unreadable" in report
    # Nothing written into the input folders, nothing deleted.
    assert _contents(dataset.features_dir, dataset.labels_dir) == before


def test_a_rule_that_raises_on_one_batch_gives_only_that_batch_an_error_verdict(tmp_path, instance):
    project = make_project(tmp_path / "p")
    days = project.write_days(START, 3, rows=200)
    labels = project.settings.dataset.labels_dir / f"{days[1]}.parquet"
    frame = pd.read_parquet(labels)
    frame.drop(columns=[project.settings.dataset.target_column]).to_parquet(labels)

    result = ingest(project, instance, days)

    check = next(
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "raw_labels_join_raw_batches"
    )
    assert not check.passed and check.metadata["failed_days"].value == days[1]
    verdict = read_verdict(project.pipeline.ledger_dir, "raw_labels_join_raw_batches", days[1])
    assert verdict.blocks and "lacks column(s)" in verdict.reason and str(labels) in verdict.reason
    for day in (days[0], days[2]):
        assert read_verdict(project.pipeline.ledger_dir, "raw_labels_join_raw_batches", day).passed
    assert list(check.metadata["quarantine"].value) == [days[1]]
    assert sorted(p.name for p in project.pipeline.quarantine_dir.iterdir()) == [days[1]]
    # A gate that does not read labels judged all three batches as usual.
    for day in days:
        assert read_verdict(project.pipeline.ledger_dir, "raw_batches_match_schema", day).passed


def test_files_named_otherwise_are_listed_not_silently_skipped(tmp_path, instance):
    project = make_project(tmp_path / "p")
    days = project.write_days(START, 3, rows=200)
    features = project.settings.dataset.features_dir
    stray = [features / f"{days[0]}-fixed.parquet", features / "2026-13-01.parquet"]
    for path in stray:
        path.write_bytes((features / f"{days[0]}.parquet").read_bytes())
    (features / ".gitkeep").write_text("")

    result = ingest(project, instance, days)

    assert result.success
    materializations = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key.path[-1] == "raw_batches"
    ]
    assert len(materializations) == 3  # one per partition, each with the run's metadata
    for materialization in materializations:
        assert materialization.metadata["ignored_files"].value == sorted(str(p) for p in stray)


def test_the_demo_never_writes_into_a_folder_holding_files(tmp_path):
    from ml_assets.cli.run import _prepare_batches
    from ml_assets.data.batches import BatchFileError

    project = make_project(tmp_path / "p", dataset={"demo": True})
    labels = project.settings.dataset.labels_dir
    labels.mkdir(parents=True)
    mine = labels / "my_labels.csv"
    mine.write_text("application_id,defaulted\na,1\n")
    with pytest.raises(BatchFileError, match=f"{labels}.*already holds files"):
        _prepare_batches(project.settings)
    assert mine.read_text() == "application_id,defaulted\na,1\n"
    assert [p.name for p in labels.iterdir()] == ["my_labels.csv"]
    assert not project.settings.dataset.features_dir.exists()


def test_a_missing_features_folder_is_named_without_the_demo(tmp_path):
    from ml_assets.cli.run import _prepare_batches
    from ml_assets.data.batches import BatchFileError

    project = make_project(tmp_path / "p")
    features = project.settings.dataset.features_dir
    with pytest.raises(BatchFileError, match=f"features folder {features} does not exist"):
        _prepare_batches(project.settings)
