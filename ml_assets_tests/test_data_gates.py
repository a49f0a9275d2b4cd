"""Each simulator scenario against the data gates, end to end on a small project.

For every kind of bad batch the named gate fails with its evidence, the batch is quarantined
(or flagged, as configured), no model is trained on it and no alias moves.
"""

import datetime as dt
import json

import dagster as dg
import pandas as pd
import pytest

from ml_assets.data.ledger import read_verdict
from ml_assets.evaluation.assets import load_evaluation
from ml_assets.features.assets import reference_profile, training_dataset
from ml_assets.training.registry import version_for_alias
from ml_assets_tests.conftest import (
    ASSETS,
    CHECKS,
    START,
    add_partitions,
    built_once,
    copy_project,
    ingest,
    make_project,
    range_tags,
    run_job,
    train,
)

BASELINE = [(START + dt.timedelta(days=i)).isoformat() for i in range(10)]
NEW_DAY = dt.date(2026, 1, 11)
STRICT = {
    "severity": {
        "raw_batches_match_reference_profile": "ERROR",
        "raw_labels_positive_rate_matches_reference": "ERROR",
    },
    "min_labels_per_class": 10,
}


def _build_baseline(root, strict: bool) -> None:
    """Ten good days ingested, and the training window and reference profile the statistical
    gates compare with (no LightGBM, no registry)."""
    project = make_project(root, validation=STRICT if strict else {})
    project.write_days(START, 10)
    instance = dg.DagsterInstance.ephemeral()  # the template keeps files, not the instance
    try:
        assert ingest(project, instance, BASELINE).success
        assert _window(project, instance).success
    finally:
        instance.dispose()


@pytest.fixture(scope="session")
def strict_baseline(tmp_path_factory):
    return built_once(tmp_path_factory, "gates_strict", lambda r: _build_baseline(r, True))


@pytest.fixture(scope="session")
def default_baseline(tmp_path_factory):
    return built_once(tmp_path_factory, "gates_default", lambda r: _build_baseline(r, False))


@pytest.fixture
def baseline(strict_baseline, tmp_path):
    """A copy of the ten judged days under the strict gates (STRICT)."""
    return copy_project(strict_baseline, tmp_path / "p")


@pytest.fixture
def default_gates_baseline(default_baseline, tmp_path):
    """A copy of the ten judged days under pipeline.yaml's default severities."""
    return copy_project(default_baseline, tmp_path / "p")


def _window(project, instance):
    """The training window and reference profile only."""
    return dg.materialize(
        [*ASSETS, *CHECKS],
        selection=[training_dataset, reference_profile],
        instance=instance,
        resources=project.resources,
        raise_on_error=False,
    )


def _state(project):
    client = project.pipeline.mlflow_client()
    name = project.settings.training.registered_model_name
    versions = sorted(str(v.version) for v in client.search_model_versions(f"name='{name}'"))
    aliases = {
        a: getattr(version_for_alias(client, name, a), "version", None)
        for a in ("staging", "production")
    }
    return versions, {a: str(v) if v else None for a, v in aliases.items()}


def _evaluation(result, name):
    return next(e for e in result.get_asset_check_evaluations() if e.check_name == name)


@pytest.mark.parametrize(
    ("scenario", "gate", "evidence"),
    [
        ("schema_corruption", "raw_batches_match_schema", "fico_score"),
        ("value_corruption", "raw_batches_match_schema", "loan_amount"),
        ("label_noise", "raw_labels_positive_rate_matches_reference", "positive_rate"),
        ("leakage", "raw_labels_not_leaked_into_features", "delinquencies_2y"),
        ("covariate_drift", "raw_batches_match_reference_profile", "credit_score"),
    ],
)
def test_bad_batch_is_stopped_by_its_gate(baseline, instance, scenario, gate, evidence):
    project = baseline
    before = _state(project)
    (day,) = project.write_days(NEW_DAY, 1, scenario=scenario, rows=2000)
    add_partitions(instance, [day])
    result = run_job("ml_pipeline_job", project, instance, tags=range_tags(day, day))
    assert not result.success
    check = _evaluation(result, gate)
    assert not check.passed
    assert check.metadata["failed_days"].value == day
    assert check.metadata["decision"].value == "quarantine and block"
    assert evidence in check.metadata["failure_cases"].value + check.description
    materialized = {
        e.materialization.asset_key.path[-1] for e in result.get_asset_materialization_events()
    }
    assert materialized <= {"raw_batches", "raw_labels"}  # nothing downstream ran
    assert _state(project) == before  # no model version, no alias (had the block failed: v1)
    (folder,) = (project.pipeline.quarantine_dir / day).iterdir()
    assert (folder / f"{gate}_report.md").exists() and (folder / f"{day}.parquet").exists()
    # A later training window leaves the quarantined batch out, visibly.
    assert _window(project, instance).success
    window = json.loads((project.pipeline.features_dir / "training_window.json").read_text())
    assert day in window["excluded"] and day not in window["days"]
    rows = pd.read_parquet(project.pipeline.features_dir / "training_dataset.parquet")
    assert day not in set(rows["batch_day"])


def test_shift_is_flagged_not_quarantined_under_the_default_warn(default_gates_baseline, instance):
    project = default_gates_baseline
    (day,) = project.write_days(NEW_DAY, 1, scenario="covariate_drift", rows=2000)
    result = ingest(project, instance, [day])
    assert result.success  # WARN does not block the run
    check = _evaluation(result, "raw_batches_match_reference_profile")
    assert not check.passed and check.severity.value == "WARN"
    assert check.metadata["decision"].value == "flag (WARN)"
    assert not (project.pipeline.quarantine_dir / day).exists()
    assert train(project, instance).success
    window = json.loads((project.pipeline.features_dir / "training_window.json").read_text())
    assert (
        day in window["days"] and "raw_batches_match_reference_profile" in window["warned"][day][0]
    )
    # The model trained on it says so: in its MLflow version's tags and its evaluation.
    client = project.pipeline.mlflow_client()
    name = project.settings.training.registered_model_name
    newest = max(client.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version))
    assert newest.tags["flagged_batches"].startswith(f"{day} (raw_batches_match_reference_profile")
    evaluation = load_evaluation(project.pipeline)
    assert evaluation.flagged_batches[day][0].startswith("raw_batches_match_reference_profile")


def _collapse_credit_score(features, labels):
    features["credit_score"] = 700.0  # constant where the reference varies


def _flip_labels(features, labels):
    labels["defaulted"] = 1 - labels["defaulted"]  # upstream swapped the classes


def _null_burst(features, labels):
    features.loc[features.index[: int(len(features) * 0.8)], "employment_years"] = None


@pytest.mark.parametrize(
    ("mutate", "gate", "evidence"),
    [
        (_collapse_credit_score, "raw_batches_match_reference_profile", "credit_score std"),
        (_flip_labels, "raw_labels_positive_rate_matches_reference", "label positive_rate"),
        (_null_burst, "raw_batches_match_reference_profile", "employment_years null_rate"),
    ],
)
def test_extreme_shifts_are_errors_under_the_default_warn(
    default_gates_baseline, instance, mutate, gate, evidence
):
    """Beyond validation.statistics.hard a shift blocks although its gate is WARN (#10 C)."""
    project = default_gates_baseline
    (day,) = project.write_days(NEW_DAY, 1, rows=2000)
    dataset = project.settings.dataset
    paths = dataset.features_dir / f"{day}.parquet", dataset.labels_dir / f"{day}.parquet"
    features, labels = (pd.read_parquet(p) for p in paths)
    mutate(features, labels)
    features.to_parquet(paths[0], index=False)
    labels.to_parquet(paths[1], index=False)
    result = ingest(project, instance, [day])
    assert not result.success
    check = _evaluation(result, gate)
    assert not check.passed and check.severity.value == "ERROR"
    assert check.metadata["decision"].value == "quarantine and block"
    assert f"1 beyond a hard bound: {evidence}" in check.description
    assert "hard_bound" in check.metadata["failure_cases"].value
    assert (project.pipeline.quarantine_dir / day).is_dir()
    assert _window(project, instance).success
    window = json.loads((project.pipeline.features_dir / "training_window.json").read_text())
    assert day in window["excluded"] and day not in window["days"]


def test_fixed_file_comes_back_after_rematerialising(baseline, instance, tmp_path):
    project = baseline
    (day,) = project.write_days(NEW_DAY, 1, scenario="schema_corruption", rows=300)
    assert not ingest(project, instance, [day]).success
    project.write_days(NEW_DAY, 1, rows=300)  # the corrected delivery replaces the file
    result = ingest(project, instance, [day])
    assert result.success
    assert _window(project, instance).success
    window = json.loads((project.pipeline.features_dir / "training_window.json").read_text())
    assert day in window["days"] and day not in window["excluded"]
    assert (project.pipeline.quarantine_dir / day).exists()  # the evidence is kept


def test_future_timestamps_are_stopped(baseline, instance, tmp_path):
    project = baseline
    (day,) = project.write_days(NEW_DAY, 1, rows=300)
    path = project.settings.dataset.features_dir / f"{day}.parquet"
    frame = pd.read_parquet(path)
    frame.loc[:4, "application_ts"] = pd.Timestamp("2026-02-01 09:00")
    frame.to_parquet(path)
    result = ingest(project, instance, [day])
    check = _evaluation(result, "raw_batches_timestamps_not_in_future")
    assert not check.passed and check.metadata["failing_rows"].value == 5
    assert (project.pipeline.quarantine_dir / day).exists()


def test_a_redelivered_batch_is_quarantined_and_names_its_source(baseline, instance):
    """The last day's rows again, under new ids and a day later: that batch alone is kept out
    of training, named with the batch it repeats; the window trains on the others."""
    project = baseline
    features_dir, labels_dir = (
        project.settings.dataset.features_dir,
        project.settings.dataset.labels_dir,
    )
    copy = pd.read_parquet(features_dir / f"{BASELINE[-1]}.parquet")
    labels = pd.read_parquet(labels_dir / f"{BASELINE[-1]}.parquet")
    day = NEW_DAY.isoformat()
    new_ids = {old: f"R-{i:06d}" for i, old in enumerate(copy["application_id"])}
    copy["application_id"] = copy["application_id"].map(new_ids)
    copy["application_ts"] = copy["application_ts"] + pd.Timedelta(days=1)
    labels["application_id"] = labels["application_id"].map(new_ids)
    copy.sample(frac=1.0, random_state=0).to_parquet(features_dir / f"{day}.parquet")
    labels.to_parquet(labels_dir / f"{day}.parquet")
    result = ingest(project, instance, [day])
    check = _evaluation(result, "raw_batches_not_redelivered")
    assert not check.passed and check.metadata["failed_days"].value == day
    assert (
        BASELINE[-1] in check.description and BASELINE[-1] in check.metadata["failure_cases"].value
    )
    assert (project.pipeline.quarantine_dir / day).exists()
    assert _window(project, instance).success
    window = json.loads(project.pipeline.training_window_path.read_text())
    assert day not in window["days"] and BASELINE[-1] in window["days"]


def test_coarse_rows_that_repeat_by_chance_do_not_block(tmp_path, instance):
    """A dataset of a few coarse features, where most rows repeat rows of other batches."""
    project = make_project(tmp_path / "p", validation={"min_labels_per_class": 10})
    days = project.write_days(START, 6)
    features_dir = project.settings.dataset.features_dir
    contract = project.settings.dataset
    for day in days:  # ten possible feature rows: two categories vary, the rest is constant
        frame = pd.read_parquet(features_dir / f"{day}.parquet")
        for column, spec in contract.numeric_columns.items():
            frame[column] = float(spec.min if spec.min is not None else 0.0)
        for column, allowed in contract.categorical_columns.items():
            if column not in ("sex", "age_band"):
                frame[column] = allowed[0]
        frame.to_parquet(features_dir / f"{day}.parquet")
    result = ingest(project, instance, days)
    check = _evaluation(result, "raw_batches_not_redelivered")
    assert check.passed, check.description
    assert check.metadata["value"].value > 0.5  # rows do repeat across batches


def test_too_few_labels_per_class_blocks_training(baseline, instance, tmp_path):
    project = baseline
    before = _state(project)
    strict = make_project(tmp_path / "p", validation={**STRICT, "min_labels_per_class": 100_000})
    result = train(strict, instance)
    check = _evaluation(result, "training_dataset_has_enough_labels_per_class")
    assert not check.passed and check.metadata["threshold"].value == 100_000
    materialized = {
        e.materialization.asset_key.path[-1] for e in result.get_asset_materialization_events()
    }
    assert "candidate_model" not in materialized
    assert _state(project) == before  # no model version registered, no alias


def test_window_leak_blocks_training_when_batches_only_warn(tmp_path, instance):
    project = make_project(
        tmp_path / "p",
        validation={
            **STRICT,
            "severity": {
                "raw_labels_not_leaked_into_features": "WARN",
                "raw_batches_match_reference_profile": "WARN",
            },
        },
    )
    days = project.write_days(START, 8, scenario="leakage")
    assert ingest(project, instance, days).success
    result = train(project, instance)
    check = _evaluation(result, "training_dataset_has_no_leaking_feature")
    assert not check.passed and "delinquencies_2y" in check.description
    assert "candidate_model" not in {
        e.materialization.asset_key.path[-1] for e in result.get_asset_materialization_events()
    }


def test_sample_depth_is_reported(tmp_path, instance):
    project = make_project(tmp_path / "p", validation={"depth": "sample", "sample_fraction": 0.5})
    project.write_days(START, 3)
    result = ingest(project, instance, BASELINE[:3])
    check = _evaluation(result, "raw_batches_match_schema")
    assert check.passed
    assert check.metadata["validation_depth"].value == "sample (50%, seed 0)"


def test_serving_path_that_differs_blocks_the_candidate(tmp_path, instance, monkeypatch):
    """A serving client that sends numbers rounded to 4 digits fails the parity gate."""
    from ml_assets.training import serving
    from ml_assets.training.serving import to_records

    def lossy_client(frame):
        return [
            {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in r.items()}
            for r in to_records(frame)
        ]

    project = make_project(tmp_path / "p", validation={"min_labels_per_class": 10})
    project.write_days(START, 6)
    assert ingest(project, instance, BASELINE[:6]).success
    monkeypatch.setattr(serving, "to_records", lossy_client)
    result = train(project, instance)
    check = _evaluation(result, "candidate_model_matches_serving_path")
    assert not check.passed and check.metadata["value"].value > 0
    materialized = {
        e.materialization.asset_key.path[-1] for e in result.get_asset_materialization_events()
    }
    assert "candidate_model" in materialized
    assert "evaluation_report" not in materialized and "staging_model" not in materialized
    assert _state(project)[1]["staging"] is None


def test_labels_may_lag_by_the_configured_delay(tmp_path, instance):
    project = make_project(tmp_path / "p", validation={"label_delay_days": 2})
    days = project.write_days(START, 4)
    labels_dir = project.settings.dataset.labels_dir
    late = labels_dir / f"{days[-1]}.parquet"
    late.rename(tmp_path / "arrives_later.parquet")
    result = ingest(project, instance, days)
    join = _evaluation(result, "raw_labels_join_raw_batches")
    assert join.passed, join.description
    verdict = read_verdict(project.pipeline.ledger_dir, "raw_labels_join_raw_batches", days[-1])
    assert verdict.reason.startswith("labels not due yet")
    # Outside the delay a missing label file fails the gate.
    strict = make_project(tmp_path / "p", validation={"label_delay_days": 0})
    (labels_dir / f"{days[0]}.parquet").rename(tmp_path / "lost.parquet")
    failed = ingest(strict, instance, days[:1])
    assert not _evaluation(failed, "raw_labels_join_raw_batches").passed
