"""Evaluation gates on the evaluation report: blocking checks that keep bad models off staging."""

import math

import dagster as dg

from ml_assets.evaluation.assets import evaluation_report, load_evaluation
from ml_assets.evaluation.gates import EVALUATION_GATES, EvaluationGate, evidence_for
from ml_assets.metadata import markdown_table, significant
from ml_assets.resources import PipelineResource
from ml_assets.training.checks import candidate_model_matches_serving_path


def evaluation_gate(gate: EvaluationGate) -> dg.AssetChecksDefinition:
    """A blocking check on evaluation_report that decides `gate` from the evaluation.

    The decision is recomputed from the evidence and the current pipeline.yaml, so a changed
    threshold applies on the next check run without re-scoring anything.
    """

    @dg.asset_check(
        asset=evaluation_report, name=gate.name, blocking=True, description=gate.description
    )
    def _gate(pipeline: PipelineResource) -> dg.AssetCheckResult:
        settings = pipeline.settings
        evaluation = load_evaluation(pipeline)
        decision = gate.decide(evaluation, settings.gates)
        severity = getattr(settings.gates, gate.section).severity
        return dg.AssetCheckResult(
            passed=decision.passed,
            severity=dg.AssetCheckSeverity(severity),
            description=decision.reason[:1000],
            metadata={
                "model_version": evaluation.candidate.version,
                "champion_version": evaluation.champion.version if evaluation.champion else "none",
                "value": significant(decision.value),
                "threshold": significant(decision.threshold),
                "champion_value": significant(decision.reference)
                if decision.reference is not None
                else "no champion",
                "decision": "pass"
                if decision.passed
                else ("block" if severity == "ERROR" else "flag (WARN)"),
                "severity": severity,
                "reason": decision.reason,
                "criteria": markdown_table(decision.table(), max_rows=60),
                # What the gate decided on (e.g. the reproducibility gate's full hashes).
                # Distance to the threshold on the passing side; absent when there is no
                # threshold to be near (no champion, nothing to judge, a yes/no property).
                **(
                    {"margin": significant(decision.margin, 3)}
                    if math.isfinite(decision.margin)
                    else {}
                ),
                "evidence": dg.MetadataValue.json(evidence_for(gate.section, evaluation)),
            },
        )

    return _gate


MODEL_GATES = [evaluation_gate(gate) for gate in EVALUATION_GATES]


# Everything that must have passed before a version may take the staging alias.
PROMOTION_GATES = [*MODEL_GATES, candidate_model_matches_serving_path]
