"""Evaluation gates on the evaluation report: blocking checks that keep bad models off staging."""

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from ml_assets.assets.common import markdown_table
from ml_assets.assets.evaluation import evaluation_report, load_evaluation
from ml_assets.assets.features import TRAINING_DATASET_FILE
from ml_assets.assets.training import CANDIDATE_FILE, candidate_model
from ml_assets.core.features import SPLIT_COLUMN, build_features
from ml_assets.core.gates import GateDecision, auc_floor, auc_regression
from ml_assets.core.serving import (
    feature_differences,
    features_for_records,
    score_records,
    to_records,
)
from ml_assets.core.training import load_model, predict_scores
from ml_assets.resources import PipelineResource


def _result(decision: GateDecision, version: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=decision.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=decision.reason,
        metadata={
            "model_version": version,
            "value": decision.value,
            "threshold": decision.threshold,
            "reference": decision.reference if decision.reference is not None else "no champion",
            "decision": "pass" if decision.passed else "block",
            "reason": decision.reason,
        },
    )


@dg.asset_check(asset=evaluation_report, blocking=True)
def candidate_auc_above_floor(pipeline: PipelineResource) -> dg.AssetCheckResult:
    """The candidate's test ROC AUC reaches the absolute floor of pipeline.yaml."""
    evaluation = load_evaluation(pipeline)
    decision = auc_floor(
        evaluation["candidate"]["metrics"]["roc_auc"], pipeline.settings.gates.min_roc_auc
    )
    return _result(decision, evaluation["candidate"]["version"])


@dg.asset_check(asset=evaluation_report, blocking=True)
def candidate_auc_not_below_production(pipeline: PipelineResource) -> dg.AssetCheckResult:
    """The candidate loses no more ROC AUC than tolerated against the production model."""
    evaluation = load_evaluation(pipeline)
    champion = evaluation["champion"]
    decision = auc_regression(
        evaluation["candidate"]["metrics"]["roc_auc"],
        champion["metrics"]["roc_auc"] if champion else None,
        pipeline.settings.gates.max_auc_regression,
    )
    return _result(decision, evaluation["candidate"]["version"])


@dg.asset_check(asset=candidate_model, blocking=True)
def candidate_model_matches_serving_path(pipeline: PipelineResource) -> dg.AssetCheckResult:
    """Test rows sent as JSON records get the same features and scores as in batch scoring."""
    settings = pipeline.settings
    dataset = settings.dataset
    candidate = json.loads((pipeline.models_dir / CANDIDATE_FILE).read_text())
    examples = pd.read_parquet(pipeline.features_dir / TRAINING_DATASET_FILE)
    test = examples[examples[SPLIT_COLUMN] == "test"]
    sample = test.sample(n=min(settings.validation.parity_sample_rows, len(test)), random_state=0)
    records = to_records(sample)
    differences = feature_differences(
        build_features(sample, dataset), features_for_records(records, dataset)
    )
    booster = load_model(Path(candidate["local_path"]))
    gap = np.abs(
        predict_scores(booster, sample, dataset) - score_records(booster, records, dataset)
    )
    passed = differences.empty and float(gap.max(initial=0.0)) == 0.0
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{len(sample)} rows: {len(differences)} feature cell(s) differ, "
            f"largest score difference {float(gap.max(initial=0.0)):.3g}"
        ),
        metadata={
            "model_version": candidate["version"],
            "rows": len(sample),
            "value": len(differences),
            "threshold": 0,
            "max_score_difference": float(gap.max(initial=0.0)),
            "decision": "pass" if passed else "block",
            "failing_rows_sample": markdown_table(differences),
        },
    )


MODEL_GATES = [candidate_auc_above_floor, candidate_auc_not_below_production]
