"""The evaluation gates end to end: real LightGBM models on simulated batches through the
Dagster graph, with a real instance and MLflow registry.

The passing path (all nine gates green at ERROR) and one failing gate (a degraded model fails
the floors), asserting on what did not happen downstream: no staging_model materialization, the
staging alias unmoved, no "gates: passed" tag. Every gate's wiring is proven on crafted evidence
in test_evaluation_checks.py, its arithmetic with known answers in test_core_evaluation.py.
"""

import dagster as dg
import pandas as pd

from ml_assets.delivery import assets as delivery
from ml_assets.evaluation.assets import load_evaluation
from ml_assets.training.registry import read_audit, version_for_alias
from ml_assets_tests.conftest import (
    ASSETS,
    CHECKS,
    START,
    failed_checks,
    ingest,
    make_project,
    train,
)

ROWS = 1000  # per day; 8 days -> ~1,600 test rows


def _project(tmp_path, name="p", gates=None, training=None):
    base_gates = make_project(tmp_path / "_defaults").settings.gates.model_dump(mode="json")
    # Enough data here for the behaviour cases to run at ERROR; a model trained on ~5,000 rows
    # still has a few percent of non-monotone wiggles (the demo's model: 0.1%), hence 5%.
    base_gates["behaviour"].update(severity="ERROR", max_failure_rate=0.05)
    base_gates["baselines"].update(severity="ERROR")
    for section, values in (gates or {}).items():
        base_gates[section].update(values)
    overrides = {"gates": base_gates}
    if training:
        overrides["training"] = training
    return make_project(tmp_path / name, **overrides)


def _check(result, name):
    return next(e for e in result.get_asset_check_evaluations() if e.check_name == name)


def _materialized(result) -> set[str]:
    return {e.materialization.asset_key.path[-1] for e in result.get_asset_materialization_events()}


def _aliases(project) -> dict[str, str | None]:
    client = project.pipeline.mlflow_client()
    name = project.settings.training.registered_model_name
    return {
        alias: (str(v.version) if v else None)
        for alias in ("staging", "production")
        for v in [version_for_alias(client, name, alias)]
    }


def _assert_blocked(result, gate: str, project, before: dict) -> dg.AssetCheckEvaluation:
    """`gate` failed with evidence, and nothing moved downstream."""
    check = _check(result, gate)
    assert not check.passed, check.description
    assert check.metadata["decision"].value == "block"
    for key in ("value", "threshold", "champion_value", "reason", "criteria", "margin"):
        assert key in check.metadata, key
    assert check.metadata["margin"].value < 0
    assert not result.success
    assert "evaluation_report" in _materialized(result)
    assert "staging_model" not in _materialized(result)
    assert _aliases(project) == before
    client = project.pipeline.mlflow_client()
    name = project.settings.training.registered_model_name
    newest = max(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
    assert client.get_model_version(name, str(newest)).tags.get("gates") != "passed"
    return check


def test_passing_path_all_gates_green(tmp_path, instance):
    project = _project(tmp_path)
    days = project.write_days(START, 8, rows=ROWS)
    assert ingest(project, instance, days).success
    result = train(project, instance, drift=True)
    assert result.success, failed_checks(result)
    mats = {
        e.materialization.asset_key.path[-1]: e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    assert mats["training_dataset"]["batches"].value == 8  # window_days of the test config
    assert mats["training_dataset"]["window_end"].value == days[-1]
    assert mats["candidate_model"]["model_version"].value == "1"
    regression = _check(result, "candidate_not_worse_than_production")
    assert "no champion" in regression.metadata["reason"].value
    gates = [
        e for e in result.get_asset_check_evaluations() if e.asset_key.path == ["evaluation_report"]
    ]
    # The ten evaluation gates and delivery's two readiness checks.
    assert len(gates) == 12 and all(e.passed for e in gates)
    assert all(e.severity == dg.AssetCheckSeverity.ERROR for e in gates)
    assert _aliases(project) == {"staging": "1", "production": None}
    report = project.pipeline.reports_dir / "evaluation" / "v1"
    html = (report / "report.html").read_text()
    assert "data:image/png;base64" in html and "candidate_meets_metric_floors" in html
    client = project.pipeline.mlflow_client()
    name = project.settings.training.registered_model_name
    run_id = client.get_model_version(name, "1").run_id
    logged = {a.path for a in client.list_artifacts(run_id, "evaluation")}
    assert {"evaluation/report.html", "evaluation/report.md", "evaluation/roc.png"} <= logged
    tags = client.get_run(run_id).data.tags
    assert tags["gate.candidate_training_is_reproducible"] == "pass"
    reproducible = (
        next(e for e in gates if e.check_name == "candidate_training_is_reproducible")
        .metadata["evidence"]
        .value
    )
    assert reproducible["candidate_sha256"] == reproducible["retrained_sha256"]
    # Staging carries the data version and the gates' verdict; the run links back to Dagster.
    staged = version_for_alias(client, name, "staging")
    assert staged.tags["data_version"] == mats["training_dataset"]["data_version"].value
    assert staged.tags["gates"] == "passed"
    run = client.get_run(run_id)
    assert run.data.metrics["test_roc_auc"] > 0.7
    assert run.data.tags["dagster_run_id"] == result.run_id
    assert [e["event"] for e in read_audit(project.pipeline.audit_dir, name, "1")] == [
        "registered",
        "staged",
    ]
    assert mats["drift_report"]["batch"].value == days[-1]
    assert (project.pipeline.reports_dir / "drift" / f"{days[-1]}.html").exists()
    split = pd.read_parquet(project.pipeline.features_dir / "training_dataset.parquet")
    assert split.groupby("application_id")["split"].nunique().max() == 1


def test_coarse_data_with_another_base_rate_reaches_staging_on_the_defaults(tmp_path, instance):
    """Banded numbers and a 30% positive rate (the simulator's coarse variant), no behaviour
    cases: the base-rate-relative defaults judge it, and the model beats its baselines."""
    project = make_project(tmp_path / "coarse", dataset={"behaviour_cases": None})
    days = project.write_days(START, 8, rows=ROWS, coarse=True)
    assert ingest(project, instance, days).success
    result = train(project, instance)
    assert result.success, failed_checks(result)
    assert _check(result, "candidate_beats_baselines").passed
    assert _aliases(project) == {"staging": "1", "production": None}
    evaluation = load_evaluation(project.pipeline)
    assert 0.25 < evaluation.baselines.train_positive_rate < 0.35
    assert evaluation.threshold_rule == "max_f1" and 0.15 < evaluation.decision_threshold < 0.6
    # Far from flagging every row: the F1-maximising threshold follows the base rate.
    assert evaluation.candidate.metrics["predicted_positive_rate"] < 0.8
    assert evaluation.candidate.metrics["log_loss"] < evaluation.baselines.prior["log_loss"]


def test_degraded_model_fails_the_floors(tmp_path, instance):
    project = _project(
        tmp_path,
        training={
            "num_boost_round": 1,
            "early_stopping_rounds": 0,
            "lightgbm": {"objective": "binary", "num_leaves": 2, "learning_rate": 0.05},
        },
    )
    days = project.write_days(START, 8, rows=ROWS)
    assert ingest(project, instance, days).success
    check = _assert_blocked(
        train(project, instance),
        "candidate_meets_metric_floors",
        project,
        {"staging": None, "production": None},
    )
    assert "roc_auc" in check.metadata["criteria"].value
    # A later run of staging_model alone is refused too: gates are looked up across runs.
    again = dg.materialize(
        [*ASSETS, *CHECKS],
        selection=[delivery.staging_model],
        instance=instance,
        resources=project.resources,
        raise_on_error=False,
    )
    assert not again.success
    assert _aliases(project) == {"staging": None, "production": None}
