"""Wiring of the evaluation gates and of delivery's readiness checks: a crafted evaluation file
fails one gate (or a crafted registry version, or a tightened budget, fails a readiness check),
and staging does not move.

One real pipeline run (real LightGBM, a real instance and MLflow registry) stages v1; a second
registered version, v2, is the candidate of every crafted evaluation. Each test writes an
evaluation whose evidence breaks one gate, runs the nine checks with `staging_model`, and
asserts that the gate failed with its evidence, that `staging_model` did not materialise, that
`staging` still points at v1 and that v2 carries no "gates: passed" tag. The arithmetic of each
gate is tested with known answers in test_core_evaluation.py.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from ml_assets.delivery.assets import staging_model
from ml_assets.delivery.checks import (
    READINESS_CHECKS,
    candidate_is_backward_compatible,
    candidate_loads_cold_within_budget,
)
from ml_assets.evaluation.assets import load_evaluation
from ml_assets.evaluation.checks import MODEL_GATES
from ml_assets.evaluation.evidence import (
    BehaviourCase,
    Evaluation,
    Fairness,
    SliceEvidence,
)
from ml_assets.evaluation.gates import EVALUATION_GATES
from ml_assets.training.registry import version_for_alias
from ml_assets_tests.conftest import (
    ASSETS,
    CHECKS,
    START,
    Project,
    built_once,
    comparison_with_lower_bound,
    copy_project,
    failed_checks,
    ingest,
    make_project,
    module_isolation,
    train,
)


@dataclass
class Staged:
    project: Project
    instance: dg.DagsterInstance
    passing: Evaluation  # v2 as the candidate, with v1's passing evidence


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> Iterator[Staged]:
    """This module's copy of the staged project (built once per session, see _build_staged)."""
    import shutil

    # mlflow.set_tracking_uri, called by an earlier test's run, exports MLFLOW_TRACKING_URI,
    # which would point this project at that test's store; an earlier sensor test may leave a
    # stale defs-state storage behind.
    with module_isolation():
        built = built_once(tmp_path_factory, "evaluation_checks_staged", _build_staged)
        root = tmp_path_factory.mktemp("staged")
        project = copy_project(built / "project", root / "project")
        shutil.copytree(built / "dagster_home", root / "dagster_home")
        instance = dg.DagsterInstance.local_temp(str(root / "dagster_home"))
        yield Staged(project, instance, Evaluation.load(built / "passing.json"))
        instance.dispose()


def _build_staged(root: Path) -> None:
    """A real pipeline run stages v1; v2, registered from the same run, is the candidate of
    `passing.json` (v1's evidence made comfortable); the readiness checks have passed on it."""
    # Behaviour at ERROR here: the crafted evidence decides, not a small model's wiggles.
    project = make_project(
        root / "project",
        gates={"behaviour": {"severity": "ERROR"}, "baselines": {"severity": "ERROR"}},
    )
    days = project.write_days(START, 10)
    home = root / "dagster_home"
    home.mkdir()
    instance = dg.DagsterInstance.local_temp(str(home))
    assert ingest(project, instance, days).success
    assert train(project, instance).get_asset_materialization_events()
    evaluation = load_evaluation(project.pipeline)
    client = project.pipeline.mlflow_client()
    name = evaluation.model
    # The small model may miss a behaviour case; v1's own verdicts do not matter here, only
    # that staging points at v1 before each crafted evaluation.
    v1 = client.get_model_version(name, evaluation.candidate.version)
    client.set_registered_model_alias(name, "staging", v1.version)
    v2 = client.create_model_version(name, v1.source, run_id=v1.run_id)
    # Measured figures are replaced by comfortable ones: a busy machine must not decide here.
    fast = evaluation.operational.model_copy(
        update={"p50_ms": 1.0, "p99_ms": 2.0, "rows_per_second": 1e6, "peak_rss_mb": 300.0}
    )
    metrics = evaluation.candidate.metrics
    # The baselines too: a small model's margin over a logistic regression must not decide.
    easy = evaluation.baselines.model_copy(
        update={
            "prior": {**evaluation.baselines.prior, "log_loss": metrics["log_loss"] + 0.2},
            "logistic_regression": {
                **evaluation.baselines.logistic_regression,
                "roc_auc": metrics["roc_auc"] - 0.05,
            },
        }
    )
    passing = evaluation.model_copy(
        update={
            "candidate": evaluation.candidate.model_copy(update={"version": str(v2.version)}),
            "behaviour": [],
            "operational": fast,
            "baselines": easy,
        }
    )
    passing.save(root / "passing.json")
    # The readiness checks judge v2 once, here: each _judge run reads their passing verdict, and
    # each readiness test puts it back after failing it.
    _ready(Staged(project, instance, passing), READINESS_CHECKS)
    instance.dispose()


def _ready(staged: Staged, checks: list, **overrides) -> None:
    """Run `checks` on the passing evaluation and assert they passed."""
    staged.passing.save(staged.project.pipeline.evaluation_path)
    result = dg.materialize(
        [*ASSETS, *CHECKS],
        selection=dg.AssetSelection.checks(*checks),
        instance=staged.instance,
        resources=staged.project.resources,
        raise_on_error=False,
    )
    assert result.success and not failed_checks(result), failed_checks(result)


def _judge(staged: Staged, evaluation: Evaluation) -> dg.ExecuteInProcessResult:
    """The ten evaluation checks and staging_model on `evaluation`, in one run."""
    evaluation.save(staged.project.pipeline.evaluation_path)
    return dg.materialize(
        [*ASSETS, *CHECKS],
        selection=dg.AssetSelection.checks(*MODEL_GATES) | dg.AssetSelection.assets(staging_model),
        instance=staged.instance,
        resources=staged.project.resources,
        raise_on_error=False,
    )


def _staging(staged: Staged) -> str | None:
    client = staged.project.pipeline.mlflow_client()
    version = version_for_alias(client, staged.passing.model, "staging")
    return str(version.version) if version else None


def _breaks(gate: str, e: Evaluation) -> Evaluation:
    """`e` with the evidence of `gate` pushed beyond the test project's policy."""
    candidate = e.candidate
    if gate == "candidate_meets_metric_floors":  # F1 alone: a lower AUC breaks the baselines
        return e.model_copy(
            update={
                "candidate": candidate.model_copy(
                    update={"metrics": {**candidate.metrics, "f1": 0.01}}
                )
            }
        )
    if gate == "candidate_beats_baselines":
        logistic = {
            **e.baselines.logistic_regression,
            "roc_auc": candidate.metrics["roc_auc"] + 0.2,
        }
        return e.model_copy(
            update={"baselines": e.baselines.model_copy(update={"logistic_regression": logistic})}
        )
    if gate == "candidate_not_worse_than_production":
        better = {**candidate.metrics, "roc_auc": candidate.metrics["roc_auc"] + 0.1}
        champion = candidate.model_copy(update={"version": "1", "metrics": better})
        return e.model_copy(
            update={"champion": champion, "comparison": comparison_with_lower_bound(0.01)}
        )
    if gate == "candidate_slices_not_worse":
        weak = SliceEvidence(
            column="region", value="north", rows=5000, positives=600, candidate_roc_auc=0.5
        )
        return e.model_copy(update={"slices": [*e.slices, weak]})
    if gate == "candidate_is_fair_across_groups":
        unfair = Fairness(
            demographic_parity_difference=0.9,
            equalized_odds_difference=0.9,
            groups=[],
            excluded_groups=[],
        )
        return e.model_copy(
            update={"candidate": candidate.model_copy(update={"fairness": {"sex": unfair}})}
        )
    if gate == "candidate_is_calibrated":
        curve = candidate.calibration.model_copy(update={"ece": 0.5})
        return e.model_copy(
            update={"candidate": candidate.model_copy(update={"calibration": curve})}
        )
    if gate == "candidate_meets_operational_budget":
        slow = e.operational.model_copy(update={"p50_ms": 1e4, "p99_ms": 1e5})
        return e.model_copy(update={"operational": slow})
    if gate == "candidate_passes_behaviour_tests":
        backwards = BehaviourCase(
            kind="directional",
            name="more debt raises the risk",
            rows=100,
            failures=100,
            passed=False,
            detail="crafted",
            failure_rate=1.0,
        )
        return e.model_copy(update={"behaviour": [backwards]})
    if gate == "candidate_passes_champion_challenger_test":
        champion = candidate.model_copy(update={"version": "1"})
        return e.model_copy(
            update={"champion": champion, "comparison": comparison_with_lower_bound(-0.1)}
        )
    if gate == "candidate_training_is_reproducible":
        moved = e.reproducibility.model_copy(
            update={"retrained_sha256": "0" * 64, "max_score_difference": 0.5}
        )
        return e.model_copy(update={"reproducibility": moved})
    raise AssertionError(f"no crafted evidence for {gate}")


def test_the_crafted_passing_evaluation_stages_v2(staged):
    """The control: with nothing broken, the same run moves staging to v2."""
    try:
        result = _judge(staged, staged.passing)
        assert result.success, failed_checks(result)
        assert _staging(staged) == staged.passing.candidate.version
    finally:
        client = staged.project.pipeline.mlflow_client()
        client.set_registered_model_alias(staged.passing.model, "staging", "1")
        client.delete_model_version_tag(
            staged.passing.model, staged.passing.candidate.version, "gates"
        )


@pytest.mark.parametrize("gate", [g.name for g in EVALUATION_GATES])
def test_a_failing_gate_keeps_the_candidate_off_staging(staged, gate):
    result = _judge(staged, _breaks(gate, staged.passing))
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks[gate].passed, checks[gate].description
    assert [n for n, e in checks.items() if not e.passed] == [gate]
    meta = checks[gate].metadata
    assert meta["decision"].value == "block"
    assert meta["model_version"].value == staged.passing.candidate.version
    margin = meta["margin"].value if "margin" in meta else -math.inf
    assert margin < 0
    materialized = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert "staging_model" not in materialized
    assert _staging(staged) == "1"
    client = staged.project.pipeline.mlflow_client()
    tags = client.get_model_version(staged.passing.model, staged.passing.candidate.version).tags
    assert tags.get("gates") != "passed"


def _blocked(staged: Staged, result: dg.ExecuteInProcessResult, check: str, version: str):
    """`check` failed, staging_model did not materialise, staging still holds v1, and `version`
    carries no "gates: passed" tag."""
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks[check].passed, checks[check].description
    assert checks[check].metadata["decision"].value == "block"
    materialized = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert "staging_model" not in materialized
    assert _staging(staged) == "1"
    client = staged.project.pipeline.mlflow_client()
    assert client.get_model_version(staged.passing.model, version).tags.get("gates") != "passed"
    return checks[check]


def _with_staging(staged: Staged, check) -> dg.ExecuteInProcessResult:
    """`check` and staging_model, in one run."""
    return dg.materialize(
        [*ASSETS, *CHECKS],
        selection=dg.AssetSelection.checks(check) | dg.AssetSelection.assets(staging_model),
        instance=staged.instance,
        resources=staged.project.resources,
        raise_on_error=False,
    )


def _narrowed_version(staged: Staged) -> str:
    """A new registered version of v1's booster whose contract refuses what v1 accepts: region
    'central' and credit scores below 400."""
    import json

    import mlflow
    import pandas as pd

    from ml_assets.data.contract import DataContract, NumericColumn
    from ml_assets.training.registry import log_scoring_model, register_version

    pipeline = staged.project.pipeline
    settings = pipeline.settings
    contract = settings.dataset
    regions = [v for v in contract.categorical_columns["region"] if v != "central"]
    score = contract.numeric_columns["credit_score"]
    narrowed = DataContract.model_validate(
        {
            **contract.model_dump(include=set(DataContract.model_fields)),
            "categorical_columns": {**contract.categorical_columns, "region": regions},
            "numeric_columns": {
                **contract.numeric_columns,
                "credit_score": NumericColumn(min=400, max=score.max, nullable=score.nullable),
            },
        }
    )
    rows = pd.read_parquet(pipeline.training_dataset_path)
    example = rows[(rows["region"] != "central") & (rows["credit_score"] >= 400)].head(3)
    booster = json.loads(pipeline.candidate_path.read_text())["local_path"]
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_experiment(settings.training.experiment_name)
    with mlflow.start_run() as run:
        model = log_scoring_model(mlflow, Path(booster), narrowed, example[narrowed.model_features])
    client = pipeline.mlflow_client()
    return str(register_version(client, staged.passing.model, run.info.run_id, model, {}).version)


def test_a_candidate_that_breaks_production_clients_stays_off_staging(staged):
    client = staged.project.pipeline.mlflow_client()
    name = staged.passing.model
    version = _narrowed_version(staged)
    candidate = staged.passing.candidate.model_copy(update={"version": version})
    staged.passing.model_copy(update={"candidate": candidate}).save(
        staged.project.pipeline.evaluation_path
    )
    client.set_registered_model_alias(name, "production", "1")
    try:
        result = _with_staging(staged, candidate_is_backward_compatible)
        check = _blocked(staged, result, "candidate_is_backward_compatible", version)
        assert check.metadata["production_version"].value == "1"
        assert check.metadata["value"].value == 2
        breaks = check.metadata["breaks"].value
        assert "credit_score" in breaks and "region" in breaks and "'central'" in breaks
    finally:
        client.delete_registered_model_alias(name, "production")
        _ready(staged, [candidate_is_backward_compatible])


def test_a_candidate_over_its_memory_budget_stays_off_staging(staged):
    import yaml

    config = staged.project.config_path
    original = config.read_text()
    raw = yaml.safe_load(original)
    # A real model in a real fresh process takes hundreds of MiB; 50 cannot be met.
    raw["delivery"]["readiness"] = {"max_resident_mb": 50}
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    try:
        staged.passing.save(staged.project.pipeline.evaluation_path)
        result = _with_staging(staged, candidate_loads_cold_within_budget)
        version = staged.passing.candidate.version
        check = _blocked(staged, result, "candidate_loads_cold_within_budget", version)
        assert check.description.startswith("peak_resident_mb = ")
        assert "breaks <= 50" in check.description
        assert check.metadata["warmup"].value == "20 of 20 answered"
        assert check.metadata["load_cpu_seconds"].value > 0
    finally:
        config.write_text(original)
        _ready(staged, [candidate_loads_cold_within_budget])
