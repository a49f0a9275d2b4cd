"""Evaluation: the candidate and the production model scored on the same held-out rows."""

import json
from pathlib import Path

import dagster as dg
import pandas as pd

from ml_assets.assets.features import TRAINING_DATASET_FILE
from ml_assets.assets.training import CANDIDATE_FILE, candidate_model
from ml_assets.core.features import SPLIT_COLUMN, labels_to_binary
from ml_assets.core.metrics import classification_metrics
from ml_assets.core.registry import download_model_file, version_for_alias
from ml_assets.core.training import load_model, predict_scores
from ml_assets.resources import PipelineResource

EVALUATION_FILE = "evaluation.json"


def load_evaluation(pipeline: PipelineResource) -> dict:
    """The latest evaluation written by `evaluation_report`."""
    path = pipeline.reports_dir / "evaluation" / EVALUATION_FILE
    if not path.exists():
        raise FileNotFoundError(f"no evaluation at {path}: materialise evaluation_report first")
    return json.loads(path.read_text())


def _report_markdown(evaluation: dict) -> str:
    rows = []
    for name, value in evaluation["candidate"]["metrics"].items():
        champion = evaluation["champion"]["metrics"].get(name) if evaluation["champion"] else None
        rows.append(
            {
                "metric": name,
                "candidate": round(value, 4),
                "champion": None if champion is None else round(champion, 4),
            }
        )
    champion = evaluation["champion"]
    lines = [
        f"# Evaluation of {evaluation['model']} v{evaluation['candidate']['version']}",
        "",
        f"- test rows: {evaluation['test_rows']}, data version `{evaluation['data_version']}`",
        f"- champion: v{champion['version']}"
        if champion
        else "- champion: none (no production model)",
        "",
        pd.DataFrame(rows).to_markdown(index=False),
    ]
    return "\n".join(lines) + "\n"


@dg.asset(group_name="evaluation", deps=[candidate_model], code_version="1")
def evaluation_report(
    context: dg.AssetExecutionContext, pipeline: PipelineResource
) -> dg.MaterializeResult:
    """Held-out metrics of the candidate beside the production model's, on the same test rows."""
    settings = pipeline.settings
    dataset, gates = settings.dataset, settings.gates
    candidate = json.loads((pipeline.models_dir / CANDIDATE_FILE).read_text())
    examples = pd.read_parquet(pipeline.features_dir / TRAINING_DATASET_FILE)
    test = examples[examples[SPLIT_COLUMN] == "test"]
    y_true = labels_to_binary(test[dataset.target_column], dataset.positive_label)
    scores = predict_scores(load_model(Path(candidate["local_path"])), test, dataset)
    evaluation = {
        "model": candidate["model"],
        "data_version": candidate["data_version"],
        "test_rows": len(test),
        "decision_threshold": gates.decision_threshold,
        "candidate": {
            "version": candidate["version"],
            "run_id": candidate["run_id"],
            "metrics": classification_metrics(y_true, scores, gates.decision_threshold),
        },
        "champion": None,
    }
    client = pipeline.mlflow_client()
    champion = version_for_alias(client, candidate["model"], settings.delivery.production_alias)
    if champion is not None:
        champion_path = download_model_file(
            client, champion, pipeline.models_dir / f"v{champion.version}"
        )
        champion_scores = predict_scores(load_model(champion_path), test, dataset)
        evaluation["champion"] = {
            "version": str(champion.version),
            "metrics": classification_metrics(y_true, champion_scores, gates.decision_threshold),
        }
    out = pipeline.reports_dir / "evaluation"
    out.mkdir(parents=True, exist_ok=True)
    (out / EVALUATION_FILE).write_text(json.dumps(evaluation, indent=1))
    markdown = _report_markdown(evaluation)
    report_path = out / f"v{candidate['version']}.md"
    report_path.write_text(markdown)
    for name, value in evaluation["candidate"]["metrics"].items():
        client.log_metric(candidate["run_id"], f"test_{name}", value)
    client.log_artifact(candidate["run_id"], str(report_path), "evaluation")
    metrics = evaluation["candidate"]["metrics"]
    return dg.MaterializeResult(
        metadata={
            "model_version": candidate["version"],
            "champion_version": evaluation["champion"]["version"] if champion else "none",
            "test_rows": len(test),
            "roc_auc": metrics["roc_auc"],
            "log_loss": metrics["log_loss"],
            "brier": metrics["brier"],
            "accuracy": metrics["accuracy"],
            "report": dg.MetadataValue.md(markdown),
            "report_path": dg.MetadataValue.path(str(report_path)),
        }
    )
