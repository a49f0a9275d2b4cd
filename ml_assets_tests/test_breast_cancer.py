"""The breast-cancer example: a real dataset as daily batches, its config and its data gates."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ml_assets.data.batches import file_sha256, list_batch_files, read_batch
from ml_assets.data.rules import validate_batch
from ml_assets.demo import breast_cancer as bc
from ml_assets.settings import PROJECT_ROOT, load_settings
from ml_assets_tests.conftest import Project, ingest

EXAMPLE = PROJECT_ROOT / "docs" / "examples" / "breast_cancer" / "pipeline.yaml"
START = dt.date(2026, 3, 1)
DAYS = [(START + dt.timedelta(days=i)).isoformat() for i in range(29)]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return bc.load_frame()


@pytest.fixture(scope="module")
def batches(frame) -> dict[str, pd.DataFrame]:
    return bc.daily_batches(frame, START, 20, 0)


def test_frame_has_snake_case_features_and_malignant_as_positive(frame):
    from sklearn.datasets import load_breast_cancer

    sk = load_breast_cancer(as_frame=True)
    features = [c for c in frame.columns if c not in (bc.ID_COLUMN, bc.TARGET_COLUMN)]
    assert len(frame) == 569 and len(features) == 30
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", c) for c in features)
    assert features[:2] == ["mean_radius", "mean_texture"]
    assert "worst_concave_points" in features and "radius_error" in features
    assert frame["mean_radius"].tolist() == sk.data["mean radius"].tolist()
    # scikit-learn: 0 = malignant, 1 = benign; here diagnosis 1 = malignant.
    assert list(sk.target_names) == ["malignant", "benign"]
    assert (frame[bc.TARGET_COLUMN] == 1 - sk.target).all()
    assert frame[bc.TARGET_COLUMN].value_counts().to_dict() == {0: 357, 1: 212}
    assert frame.loc[0, bc.ID_COLUMN] == "bc-000000" and frame.loc[0, bc.TARGET_COLUMN] == 1


def test_daily_batches_shape_and_determinism(frame, batches):
    assert list(batches) == DAYS
    assert [len(b) for b in batches.values()] == [20] * 28 + [9]
    again = bc.daily_batches(frame, START, 20, 0)
    for day in DAYS:
        pd.testing.assert_frame_equal(batches[day], again[day])
    rows = pd.concat(batches.values(), ignore_index=True)
    assert rows[bc.ID_COLUMN].is_unique and len(rows) == 569
    # Every row kept unchanged: same rows as the source once the timestamp is dropped.
    kept = rows.drop(columns=[bc.TIMESTAMP_COLUMN]).sort_values(bc.ID_COLUMN, ignore_index=True)
    pd.testing.assert_frame_equal(kept, frame[kept.columns].reset_index(drop=True))
    assert set(rows[bc.TARGET_COLUMN]) == {0, 1} and rows[bc.TARGET_COLUMN].sum() == 212
    assert list(rows.columns[:2]) == [bc.ID_COLUMN, bc.TIMESTAMP_COLUMN]
    for day, batch in batches.items():
        stamps = batch[bc.TIMESTAMP_COLUMN]
        assert stamps.dtype == "datetime64[ns]" and stamps.is_monotonic_increasing
        assert (stamps.dt.normalize() == pd.Timestamp(day)).all()
    # The seed shuffles; the input frame is left as it was.
    other = bc.daily_batches(frame, START, 20, 1)
    assert other[DAYS[0]][bc.ID_COLUMN].tolist() != batches[DAYS[0]][bc.ID_COLUMN].tolist()
    assert sorted(pd.concat(other.values())[bc.ID_COLUMN]) == sorted(rows[bc.ID_COLUMN])
    assert bc.TIMESTAMP_COLUMN not in frame.columns
    with pytest.raises(ValueError, match="rows_per_day"):
        bc.daily_batches(frame, START, 0, 0)


def test_cli_writes_identical_files_for_identical_arguments(tmp_path, capsys):
    args = ["--start", "2026-03-01", "--rows-per-day", "50", "--seed", "3"]
    assert bc.main(["--out", str(tmp_path / "a"), *args]) == 0
    assert bc.main(["--out", str(tmp_path / "b"), *args]) == 0
    assert "wrote 12 batches (569 rows, 2026-03-01 .. 2026-03-12)" in capsys.readouterr().out
    first, second = list_batch_files(tmp_path / "a"), list_batch_files(tmp_path / "b")
    assert list(first) == list(second) and len(first) == 12
    assert [file_sha256(p) for p in first.values()] == [file_sha256(p) for p in second.values()]
    assert len(read_batch(first["2026-03-12"])) == 569 - 11 * 50


def test_example_config_loads_and_declares_every_column(frame):
    settings = load_settings(EXAMPLE)
    dataset = settings.dataset
    assert dataset.labels_dir is None and dataset.demo is False
    # Relative to the file's folder, landing in the project's git-ignored data/ folder.
    assert dataset.features_dir == PROJECT_ROOT / "data" / "breast_cancer" / "raw" / "features"
    assert settings.storage.data_dir == PROJECT_ROOT / "data" / "breast_cancer"
    assert (dataset.id_column, dataset.timestamp_column, dataset.target_column) == (
        bc.ID_COLUMN,
        bc.TIMESTAMP_COLUMN,
        bc.TARGET_COLUMN,
    )
    assert dataset.positive_label == bc.MALIGNANT and dataset.label_values == [0, 1]
    assert dataset.categorical_columns == {} and dataset.sensitive_columns == []
    features = [c for c in frame.columns if c not in (bc.ID_COLUMN, bc.TARGET_COLUMN)]
    assert list(dataset.numeric_columns) == features
    for name, spec in dataset.numeric_columns.items():
        assert spec.min == 0 and not spec.nullable
        assert 2.5 * frame[name].max() <= spec.max <= 4 * frame[name].max(), name
    assert settings.training.window_days >= 29 and settings.gates.floors.min_roc_auc == 0.9
    # Same sections and keys as the project's own pipeline.yaml.
    demo = yaml.safe_load((PROJECT_ROOT / "pipeline.yaml").read_text())
    example = yaml.safe_load(EXAMPLE.read_text())
    assert {s: sorted(v) for s, v in example.items()} == {s: sorted(v) for s, v in demo.items()}


def test_every_generated_day_passes_the_schema_gate(batches):
    dataset = load_settings(EXAMPLE).dataset
    for day, batch in batches.items():
        report = validate_batch(
            batch, dataset, day=day, max_failing_row_share=0.0, sample_rows=5, include_target=True
        )
        assert report.passed, (day, report.reason)
        assert report.rows == len(batch) and report.failing_rows == 0


def _example_project(root: Path, batches: dict[str, pd.DataFrame]) -> Project:
    """The example config copied into `root`, its batches and stores pointed inside `root`."""
    raw = yaml.safe_load(EXAMPLE.read_text())
    raw["dataset"].update(features_dir="raw/features")
    raw["storage"].update(data_dir="data", mlflow_dir="data/mlflow")
    root.mkdir(parents=True)
    config = root / "pipeline.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    bc.write_batches(batches, root / "raw" / "features")
    return Project(root=root, config_path=config)


def test_ingestion_gates_pass_every_day_and_quarantine_a_corrupted_one(tmp_path, instance, batches):
    project = _example_project(tmp_path / "project", batches)
    assert project.settings.dataset.features_dir == tmp_path / "project" / "raw" / "features"
    result = ingest(project, instance, DAYS)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert {"raw_batches_match_schema", "raw_labels_join_raw_batches"} <= set(evaluations)
    assert all(e.passed for e in evaluations.values()), [
        n for n, e in evaluations.items() if not e.passed
    ]
    assert evaluations["raw_batches_match_schema"].metadata["batches_checked"].value == 29
    assert evaluations["raw_labels_join_raw_batches"].metadata["batches_checked"].value == 29
    assert not project.pipeline.quarantine_dir.exists()

    # A day whose mean_radius turned negative breaks `min: 0` and is quarantined.
    bad_day = DAYS[9]
    path = project.settings.dataset.features_dir / f"{bad_day}.parquet"
    corrupted = read_batch(path)
    corrupted["mean_radius"] = -corrupted["mean_radius"]
    corrupted.to_parquet(path, index=False)
    result = ingest(project, instance, [bad_day])
    assert not result.success
    schema = next(
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "raw_batches_match_schema"
    )
    assert not schema.passed
    assert schema.metadata["failed_days"].value == bad_day
    assert schema.metadata["failing_rows"].value == 20
    quarantined = list((project.pipeline.quarantine_dir / bad_day).iterdir())
    assert len(quarantined) == 1 and (quarantined[0] / f"{bad_day}.parquet").exists()
    reports = [p.read_text() for p in quarantined[0].glob("*report.md")]
    assert reports and any("mean_radius" in text for text in reports)
    assert sorted(p.name for p in project.pipeline.quarantine_dir.iterdir()) == [bad_day]
    assert path.exists()  # the source file is never touched
