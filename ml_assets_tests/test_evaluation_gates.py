"""Each evaluation gate fails on the model it exists to stop, and that model never gets staging.

Every test trains real LightGBM models on simulated batches through the Dagster graph, with a
real instance and MLflow registry, and asserts on what did not happen downstream: no
staging_model materialization, the staging alias unmoved, no "gates: passed" tag.
"""

import json

import dagster as dg
import numpy as np
import pandas as pd

from ml_assets.delivery import assets as delivery
from ml_assets.features.examples import assign_split
from ml_assets.training.registry import version_for_alias
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


def _promote(project, instance, version: str) -> None:
    result = dg.materialize(
        ASSETS,
        selection=[delivery.production_model],
        instance=instance,
        resources=project.resources,
        run_config={
            "ops": {"production_model": {"config": {"version": version, "approver": "test"}}}
        },
    )
    assert result.success


def _champion(project, instance, rows: int = ROWS) -> list[str]:
    """Ingest eight days, train, stage and promote v1; return the days."""
    days = project.write_days(START, 8, rows=rows)
    assert ingest(project, instance, days).success
    first = train(project, instance)
    assert first.success, failed_checks(first)
    _promote(project, instance, "1")
    return days


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


def _rewrite(project, days, features=None, labels=None) -> None:
    """Apply `features(frame)` / `labels(frame, features)` to every day's files in place."""
    dataset = project.settings.dataset
    for day in days:
        f_path = dataset.features_dir / f"{day}.parquet"
        l_path = dataset.labels_dir / f"{day}.parquet"
        frame = pd.read_parquet(f_path)
        if labels is not None:
            labels(pd.read_parquet(l_path), frame).to_parquet(l_path, index=False)
        if features is not None:
            features(frame).to_parquet(f_path, index=False)


def _non_test(project, ids: pd.Series) -> np.ndarray:
    training = project.settings.training
    return (
        assign_split(
            ids,
            seed=training.seed,
            validation=training.split.validation,
            test=training.split.test,
        )
        != "test"
    )


def test_passing_path_all_gates_green(tmp_path, instance):
    project = _project(tmp_path)
    days = project.write_days(START, 8, rows=ROWS)
    assert ingest(project, instance, days).success
    result = train(project, instance)
    assert result.success, failed_checks(result)
    gates = [
        e for e in result.get_asset_check_evaluations() if e.asset_key.path == ["evaluation_report"]
    ]
    assert len(gates) == 9 and all(e.passed for e in gates)
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


def test_label_noise_in_training_data_fails_floors_and_champion(tmp_path, instance):
    project = _project(tmp_path)
    _champion(project, instance)
    # Eight new days with a quarter of the labels flipped make up the whole next window.
    noisy = project.write_days(START + pd.Timedelta(days=8), 8, scenario="label_noise", rows=ROWS)
    assert ingest(project, instance, noisy).success  # the positive-rate gate only warns
    result = train(project, instance)
    floors = _assert_blocked(
        result, "candidate_meets_metric_floors", project, {"staging": "1", "production": "1"}
    )
    assert floors.metadata["value"].value < floors.metadata["threshold"].value
    assert not _check(result, "candidate_not_worse_than_production").passed


def test_slice_only_regression_with_better_aggregate(tmp_path, instance):
    # A weak champion (one split) and a strong challenger whose training labels for the
    # 65+ age band were inverted: the aggregate improves, the 65+ slice collapses. The slice
    # floor is set low so that the regression against the champion is what fails.
    slices = {
        "slices": {"min_rows": 80, "min_roc_auc": 0.3},
        "floors": {"min_roc_auc": 0.55, "min_pr_auc": 0, "min_f1": 0, "max_log_loss": 1},
    }
    weak = _project(
        tmp_path,
        gates={**slices, "behaviour": {"severity": "WARN"}},
        training={
            "num_boost_round": 1,
            "early_stopping_rounds": 0,
            "lightgbm": {"objective": "binary", "num_leaves": 2, "learning_rate": 0.1},
        },
    )
    # Bigger days: with 24,000 rows the challenger isolates the 65+ band cleanly, so the damage
    # stays in that slice.
    days = _champion(weak, instance, rows=3000)

    def invert_old(labels, features):
        old = (features["age_band"] == "65+").to_numpy() & _non_test(
            weak, features["application_id"]
        )
        labels.loc[old, "defaulted"] = 1 - labels.loc[old, "defaulted"]
        return labels

    _rewrite(weak, days, labels=invert_old)
    strong = _project(tmp_path, gates=slices)
    assert ingest(strong, instance, days).success
    result = train(strong, instance)
    check = _assert_blocked(
        result, "candidate_slices_not_worse", strong, {"staging": "1", "production": "1"}
    )
    assert check.description.startswith("age_band=65+")
    # The aggregate ROC AUC is better than the champion's on the same rows.
    saved = json.loads(strong.pipeline.evaluation_path.read_text())
    aucs = (saved["candidate"]["metrics"]["roc_auc"], saved["champion"]["metrics"]["roc_auc"])
    assert aucs[0] > aucs[1], aucs
    old = next(s for s in saved["slices"] if s["value"] == "65+")
    assert old["champion_roc_auc"] - old["candidate_roc_auc"] > 0.03 and old["drop_low"] > 0


def test_fairness_regression(tmp_path, instance):
    # open_accounts becomes a proxy for sex (women get 15 more); the champion learns from clean
    # labels; the challenger from labels where half the women's repaid loans read "default".
    gates = {
        "fairness": {
            "max_demographic_parity_difference": 0.1,
            "max_equalized_odds_difference": 0.2,
        }
    }
    project = _project(tmp_path, gates=gates)
    days = project.write_days(START, 8, rows=ROWS)

    def proxy(frame):
        frame.loc[frame["sex"] == "female", "open_accounts"] += 15
        return frame

    _rewrite(project, days, features=proxy)
    assert ingest(project, instance, days).success
    first = train(project, instance)
    assert first.success, failed_checks(first)
    _promote(project, instance, "1")

    rng = np.random.default_rng(0)

    def biased(labels, features):
        women = (features["sex"] == "female").to_numpy() & _non_test(
            project, features["application_id"]
        )
        flip = women & (labels["defaulted"].to_numpy() == 0) & (rng.random(len(labels)) < 0.5)
        labels.loc[flip, "defaulted"] = 1
        return labels

    _rewrite(project, days, labels=biased)
    assert ingest(project, instance, days).success
    check = _assert_blocked(
        train(project, instance),
        "candidate_is_fair_across_groups",
        project,
        {"staging": "1", "production": "1"},
    )
    assert "sex" in check.description
    assert isinstance(check.metadata["champion_value"].value, float)


def test_slow_model_fails_the_operational_budget(tmp_path, instance):
    project = _project(
        tmp_path,
        training={
            "num_boost_round": 1500,
            "early_stopping_rounds": 0,
            "lightgbm": {
                "objective": "binary",
                "num_leaves": 63,
                "min_data_in_leaf": 5,
                "learning_rate": 0.3,
                "num_threads": 2,
            },
        },
    )
    days = project.write_days(START, 8, rows=ROWS)
    assert ingest(project, instance, days).success
    result = train(project, instance)
    check = _assert_blocked(
        result, "candidate_meets_operational_budget", project, {"staging": None, "production": None}
    )
    assert "rows_per_second" in check.description


def test_model_whose_behaviour_tests_fail(tmp_path, instance):
    # The feed reports debt-to-income upside down (4.5 - dti): the model learns that more debt
    # means less risk, which the directional case catches whatever the metrics say.
    project = _project(tmp_path)
    days = project.write_days(START, 8, rows=ROWS)

    def upside_down(frame):
        frame["debt_to_income"] = (4.5 - frame["debt_to_income"]).round(3)
        return frame

    _rewrite(project, days, features=upside_down)
    assert ingest(project, instance, days).success
    result = train(project, instance)
    check = _assert_blocked(
        result, "candidate_passes_behaviour_tests", project, {"staging": None, "production": None}
    )
    assert "higher debt-to-income never lowers risk" in check.metadata["criteria"].value


def test_better_by_a_non_significant_margin_is_not_promoted(tmp_path, instance):
    # Small days (400 rows), so the difference is within the test set's noise; the behaviour
    # gate only warns on models this small.
    gates = {
        "significance": {"rule": "superior"},
        "behaviour": {"severity": "WARN"},
        "champion": {"max_regression": {"roc_auc": 0.03}},
    }
    project = _project(tmp_path, gates=gates)
    _champion(project, instance, rows=400)
    # Four more days of the same world: the window slides, the challenger is as good as the
    # champion up to noise, and the comparison runs on rows neither model trained on.
    later = project.write_days(START + pd.Timedelta(days=8), 4, rows=400)
    assert ingest(project, instance, later).success
    result = train(project, instance)
    check = _assert_blocked(
        result,
        "candidate_passes_champion_challenger_test",
        project,
        {"staging": "1", "production": "1"},
    )
    assert "McNemar p" in check.description
    assert "superiority" in check.metadata["criteria"].value
    # Better on the point estimate, yet not significantly so; and not a regression.
    saved = json.loads(project.pipeline.evaluation_path.read_text())
    bootstrap = saved["comparison"]["bootstrap"]
    assert bootstrap["difference"] > 0 and bootstrap["low"] < 0 < bootstrap["high"], bootstrap
    assert _check(result, "candidate_not_worse_than_production").passed


def test_miscalibrated_model_fails_calibration(tmp_path, instance):
    # Class weighting (scale_pos_weight) is a common fix for imbalance that inflates every
    # probability: the ranking is fine, the scores are not probabilities any more.
    project = _project(
        tmp_path,
        training={
            "lightgbm": {
                **make_project(tmp_path / "_defaults").settings.training.lightgbm,
                "scale_pos_weight": 8.0,
            }
        },
    )
    days = project.write_days(START, 8, rows=ROWS)
    assert ingest(project, instance, days).success
    result = train(project, instance)
    check = _assert_blocked(
        result, "candidate_is_calibrated", project, {"staging": None, "production": None}
    )
    assert "ece" in check.metadata["criteria"].value
    # The ranking is as good as ever: only the probabilities are wrong.
    saved = json.loads(project.pipeline.evaluation_path.read_text())
    assert saved["candidate"]["metrics"]["roc_auc"] > 0.75


def test_candidate_whose_training_data_moved_is_not_reproducible(tmp_path, instance):
    from ml_assets.evaluation import assets as evaluation
    from ml_assets.features import assets as features

    project = _project(tmp_path)
    days = project.write_days(START, 8, rows=ROWS)
    assert ingest(project, instance, days).success
    first = train(project, instance)
    assert first.success, failed_checks(first)

    # A late correction to one day's labels changes the training data; the candidate is then
    # re-evaluated without retraining, so nobody can reproduce it from the data now in place.
    def corrected(labels, features_):
        labels.loc[:20, "defaulted"] = 1 - labels.loc[:20, "defaulted"]
        return labels

    _rewrite(project, days[-1:], labels=corrected)
    assert ingest(project, instance, days[-1:]).success
    assert dg.materialize(
        ASSETS,
        selection=[features.training_dataset],
        instance=instance,
        resources=project.resources,
    ).success
    result = dg.materialize(
        [*ASSETS, *CHECKS],
        selection=[evaluation.evaluation_report, delivery.staging_model],
        instance=instance,
        resources=project.resources,
        raise_on_error=False,
    )
    check = _check(result, "candidate_training_is_reproducible")
    assert not check.passed and check.metadata["decision"].value == "block"
    assert "training data is" in check.description
    evidence = check.metadata["evidence"].value
    assert (
        evidence["candidate_sha256"]
        and evidence["data_version"] != evidence["candidate_data_version"]
    )
    assert "staging_model" not in _materialized(result)
    # A later staging attempt is refused too: the instance remembers the failed gate.
    again = dg.materialize(
        ASSETS,
        selection=[delivery.staging_model],
        instance=instance,
        resources=project.resources,
        raise_on_error=False,
    )
    assert not again.success
