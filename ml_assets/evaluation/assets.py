"""Evaluation: every piece of evidence the promotion gates need, on the candidate's test rows."""

import datetime as dt
import json
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from ml_assets.evaluation.evidence import (
    Baselines,
    Comparison,
    Evaluation,
    Fairness,
    ModelEvidence,
    Reproducibility,
)
from ml_assets.features.examples import SPLIT_COLUMN
from ml_assets.metadata import markdown_table, observability
from ml_assets.resources import PipelineResource
from ml_assets.settings import Settings
from ml_assets.training.assets import candidate_model

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


def load_evaluation(pipeline: PipelineResource) -> Evaluation:
    """The latest evaluation written by `evaluation_report`."""
    return Evaluation.load(pipeline.evaluation_path)


def _side(
    version: str,
    run_id: str | None,
    y: "np.ndarray",
    scores: "np.ndarray",
    test: "pd.DataFrame",
    settings: Settings,
    threshold: float,
) -> ModelEvidence:
    """Metrics, calibration and fairness of one model's scores."""
    from ml_assets.evaluation.metrics import calibration, classification_metrics, group_fairness

    gates, dataset = settings.gates, settings.dataset
    curve = calibration(y, scores, gates.calibration.bins)
    return ModelEvidence(
        version=version,
        run_id=run_id,
        metrics=classification_metrics(y, scores, threshold),
        calibration=curve,
        fairness={
            column: Fairness(
                **group_fairness(y, scores, test[column], threshold, gates.fairness.min_group_rows)
            )
            for column in dataset.sensitive_columns
        },
    )


def _reproducibility(
    examples: "pd.DataFrame",
    test: "pd.DataFrame",
    candidate: dict,
    scores: "np.ndarray",
    window: dict,
    pipeline,
) -> Reproducibility:
    """Retrain with the same data, config and seed; compare the model file and the scores."""
    import numpy as np

    from ml_assets.training.model import load_model, predict_scores, save_model, train_on_splits

    settings = pipeline.settings
    training = settings.training
    booster = train_on_splits(examples, settings.dataset, training)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.txt"
        sha = save_model(booster, path)
        retrained = predict_scores(load_model(path), test, settings.dataset)
    return Reproducibility(
        data_version=window["data_version"],
        candidate_data_version=candidate["data_version"],
        candidate_sha256=candidate["model_sha256"],
        retrained_sha256=sha,
        max_score_difference=float(np.max(np.abs(retrained - scores), initial=0.0)),
        seed=training.seed,
    )


@dg.asset(
    group_name="evaluation",
    deps=[candidate_model],
    code_version="2",
    kinds={"mlflow", "scikitlearn", "html"},
    tags={"stage": "evaluation"},
)
def evaluation_report(
    context: dg.AssetExecutionContext, pipeline: PipelineResource
) -> dg.MaterializeResult:
    """The candidate beside the production model on the same test rows, with every gate verdict."""
    import pandas as pd

    stage_started = time.perf_counter()

    from ml_assets.data.contract import labels_to_binary
    from ml_assets.evaluation.baselines import (
        LOGISTIC_MAX_ROWS,
        f1_maximising_threshold,
        logistic_regression_scores,
        prior_scores,
    )
    from ml_assets.evaluation.behaviour import load_suite, run_suite
    from ml_assets.evaluation.comparison import (
        mcnemar_exact,
        paired_bootstrap_auc,
        slice_comparison,
    )
    from ml_assets.evaluation.gates import decide_all, severities
    from ml_assets.evaluation.metrics import classification_metrics
    from ml_assets.evaluation.operational import measure_scoring
    from ml_assets.evaluation.report import gate_table, render_html, render_markdown, render_plots
    from ml_assets.training.model import load_model, predict_scores
    from ml_assets.training.registry import (
        download_model_file,
        mlflow_run_url,
        version_for_alias,
    )

    settings = pipeline.settings
    dataset, gates = settings.dataset, settings.gates
    timings: dict[str, float] = {}
    started = time.perf_counter()
    candidate = json.loads(pipeline.candidate_path.read_text())
    examples = pd.read_parquet(pipeline.training_dataset_path)
    test = examples[examples[SPLIT_COLUMN] == "test"].reset_index(drop=True)
    y = labels_to_binary(test[dataset.target_column], dataset.positive_label)
    model_path = Path(candidate["local_path"])
    booster = load_model(model_path)
    scores = predict_scores(booster, test, dataset)

    client = pipeline.mlflow_client()
    champion = version_for_alias(client, candidate["model"], settings.delivery.production_alias)
    champion_scores, champion_path = None, None
    if champion is not None:
        champion_path = download_model_file(
            client, champion, pipeline.models_dir / f"v{champion.version}"
        )
        champion_scores = predict_scores(load_model(champion_path), test, dataset)
    train = examples[examples[SPLIT_COLUMN] == "train"].reset_index(drop=True)
    y_train = labels_to_binary(train[dataset.target_column], dataset.positive_label)
    if gates.decision_threshold == "max_f1":
        validation = examples[examples[SPLIT_COLUMN] == "validation"]
        threshold = f1_maximising_threshold(
            labels_to_binary(validation[dataset.target_column], dataset.positive_label),
            predict_scores(booster, validation, dataset),
        )
    else:
        threshold = float(gates.decision_threshold)
    candidate_side = _side(
        candidate["version"], candidate["run_id"], y, scores, test, settings, threshold
    )
    champion_side = (
        None
        if champion is None
        else _side(str(champion.version), None, y, champion_scores, test, settings, threshold)
    )
    timings["metrics"] = time.perf_counter() - started

    started = time.perf_counter()
    rate = float(y_train.mean())
    baselines = Baselines(
        train_positive_rate=rate,
        prior=classification_metrics(y, prior_scores(rate, len(test)), threshold),
        logistic_regression=classification_metrics(
            y,
            logistic_regression_scores(train, y_train, test, dataset, settings.training.seed),
            threshold,
        ),
        logistic_train_rows=min(len(train), LOGISTIC_MAX_ROWS),
    )
    timings["baselines"] = time.perf_counter() - started

    started = time.perf_counter()
    significance = gates.significance
    slices = slice_comparison(
        {column: test[column].to_numpy() for column in dataset.slice_columns},
        y,
        scores,
        champion_scores,
        min_rows=gates.slices.min_rows,
        max_regression=gates.slices.max_regression,
        samples=significance.bootstrap_samples,
        confidence=significance.confidence,
        seed=significance.seed,
    )
    comparison = (
        None
        if champion_scores is None
        else Comparison(
            bootstrap=paired_bootstrap_auc(
                y,
                scores,
                champion_scores,
                samples=significance.bootstrap_samples,
                confidence=significance.confidence,
                seed=significance.seed,
            ),
            mcnemar=mcnemar_exact(y, scores, champion_scores, threshold),
        )
    )
    timings["slices_and_significance"] = time.perf_counter() - started

    started = time.perf_counter()
    operational = measure_scoring(
        model_path,
        test.drop(columns=[SPLIT_COLUMN]),
        dataset,
        champion_path=champion_path,
        single_row_requests=gates.operational.single_row_requests,
        batch_rows=gates.operational.batch_rows,
        rounds=gates.operational.rounds,
    )
    timings["operational"] = time.perf_counter() - started

    started = time.perf_counter()
    behaviour = gates.behaviour
    cases = None
    if dataset.behaviour_cases is not None:
        cases = run_suite(
            load_suite(dataset.behaviour_cases, dataset),
            lambda rows: predict_scores(booster, rows, dataset),
            test.sample(n=min(behaviour.sample_rows, len(test)), random_state=0),
            dataset,
            tolerance=behaviour.score_tolerance,
            max_failure_rate=behaviour.max_failure_rate,
        )
    timings["behaviour"] = time.perf_counter() - started

    started = time.perf_counter()
    window = json.loads(pipeline.training_window_path.read_text())
    reproducibility = _reproducibility(examples, test, candidate, scores, window, pipeline)
    timings["reproducibility"] = time.perf_counter() - started

    evaluation = Evaluation(
        model=candidate["model"],
        data_version=candidate["data_version"],
        test_rows=len(test),
        decision_threshold=threshold,
        threshold_rule="fixed" if isinstance(gates.decision_threshold, float) else "max_f1",
        baselines=baselines,
        candidate=candidate_side,
        champion=champion_side,
        slices=slices,
        comparison=comparison,
        operational=operational,
        behaviour=cases,
        reproducibility=reproducibility,
        flagged_batches=window.get("warned", {}),
    )

    started = time.perf_counter()
    decisions = decide_all(evaluation, gates)
    evaluation = evaluation.model_copy(
        update={"gates": {name: d.as_dict() for name, d in decisions.items()}}
    )
    out = pipeline.reports_dir / "evaluation"
    version_dir = out / f"v{candidate['version']}"
    plots = render_plots(y, scores, champion_scores, evaluation, version_dir)
    run = client.get_run(candidate["run_id"])
    run_url = mlflow_run_url(
        settings.mlflow_tracking_uri, run.info.experiment_id, candidate["run_id"]
    )
    stamp = {
        "generated_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "run_url": run_url,
    }
    markdown = render_markdown(evaluation, decisions, severities(gates), **stamp)
    (version_dir / "report.md").write_text(markdown)
    (version_dir / "report.html").write_text(
        render_html(evaluation, decisions, severities(gates), plots, **stamp)
    )
    evaluation.save(pipeline.evaluation_path)
    evaluation.save(version_dir / pipeline.evaluation_path.name)
    for name, value in evaluation.candidate.metrics.items():
        client.log_metric(candidate["run_id"], f"test_{name}", value)
    client.log_metric(candidate["run_id"], "test_ece", evaluation.candidate.calibration.ece)
    client.log_artifacts(candidate["run_id"], str(version_dir), "evaluation")
    # The verdicts travel with the MLflow run too: the registry alone tells why a version moved.
    for name, decision in decisions.items():
        client.set_tag(candidate["run_id"], f"gate.{name}", "pass" if decision.passed else "fail")
    timings["report"] = time.perf_counter() - started
    context.log.info(f"evaluation timings (s): { {k: round(v, 2) for k, v in timings.items()} }")

    metrics = evaluation.candidate.metrics
    failed = [name for name, d in decisions.items() if not d.passed]
    return dg.MaterializeResult(
        metadata={
            "model_version": candidate["version"],
            "champion_version": champion_side.version if champion_side else "none",
            # A hash of the gate policy: `make run` re-evaluates on a change, without retraining.
            "evaluation_policy": settings.evaluation_policy,
            "test_rows": len(test),
            "roc_auc": metrics["roc_auc"],
            "pr_auc": metrics["pr_auc"],
            "log_loss": metrics["log_loss"],
            "f1": metrics["f1"],
            "ece": evaluation.candidate.calibration.ece,
            "gates_failed": ", ".join(failed) or "none",
            "gates": markdown_table(
                gate_table(decisions, severities(gates)), max_rows=len(decisions)
            ),
            "report": dg.MetadataValue.path(str(version_dir / "report.html")),
            "report_markdown": dg.MetadataValue.path(str(version_dir / "report.md")),
            "mlflow_report": dg.MetadataValue.url(
                f"{run.info.artifact_uri}/evaluation/report.html"
            ),
            **({"mlflow_run": dg.MetadataValue.url(run_url)} if run_url else {}),
            "seconds": dg.MetadataValue.json({k: round(v, 2) for k, v in timings.items()}),
            **observability(stage_started, rows=len(test), paths=[version_dir]),
        }
    )
