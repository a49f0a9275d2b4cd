"""Evaluation gates on the evaluation report: blocking checks that keep bad models off staging."""

import dagster as dg

from ml_assets.assets.evaluation import evaluation_report, load_evaluation
from ml_assets.core.gates import GateDecision, auc_floor, auc_regression
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


MODEL_GATES = [candidate_auc_above_floor, candidate_auc_not_below_production]
