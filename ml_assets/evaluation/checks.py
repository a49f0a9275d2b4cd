"""Evaluation gates on the evaluation report: blocking checks that keep bad models off staging."""

import json
import math

import dagster as dg
import pandas as pd

from ml_assets.evaluation.assets import evaluation_report, load_evaluation
from ml_assets.evaluation.gates import GATES, evidence_for
from ml_assets.metadata import markdown_table
from ml_assets.resources import PipelineResource
from ml_assets.training.checks import candidate_model_matches_serving_path


def evaluation_gate(name: str, description: str) -> dg.AssetChecksDefinition:
    """A blocking check on evaluation_report that decides gate `name` from the evaluation.

    The decision is recomputed from the evidence and the current pipeline.yaml, so a changed
    threshold applies on the next check run without re-scoring anything.
    """

    @dg.asset_check(asset=evaluation_report, name=name, blocking=True, description=description)
    def _gate(pipeline: PipelineResource) -> dg.AssetCheckResult:
        settings = pipeline.settings
        evaluation = load_evaluation(pipeline)
        section, decider = GATES[name]
        decision = decider(evaluation, settings.gates)
        severity = getattr(settings.gates, section).severity
        return dg.AssetCheckResult(
            passed=decision.passed,
            severity=dg.AssetCheckSeverity(severity),
            description=decision.reason[:1000],
            metadata={
                "model_version": evaluation["candidate"]["version"],
                "champion_version": (evaluation["champion"] or {}).get("version", "none"),
                "value": decision.value,
                "threshold": decision.threshold,
                "champion_value": decision.reference
                if decision.reference is not None
                else "no champion",
                "decision": "pass"
                if decision.passed
                else ("block" if severity == "ERROR" else "flag (WARN)"),
                "severity": severity,
                "reason": decision.reason,
                "criteria": markdown_table(pd.DataFrame(decision.table()), max_rows=60),
                # What the gate decided on (e.g. the reproducibility gate's full hashes).
                # Distance to the threshold on the passing side; absent when there is no
                # threshold to be near (no champion, nothing to judge, a yes/no property).
                **({"margin": decision.margin} if math.isfinite(decision.margin) else {}),
                "evidence": dg.MetadataValue.json(
                    json.loads(json.dumps(evidence_for(section, evaluation), default=float))
                ),
            },
        )

    return _gate


_DESCRIPTIONS = {
    "candidate_meets_metric_floors": "Test ROC AUC, PR AUC, log loss, F1 and accuracy reach "
    "their absolute floors.",
    "candidate_not_worse_than_production": "No metric regresses beyond its tolerance against "
    "the production model on the same test rows.",
    "candidate_slices_not_worse": "Every large-enough slice reaches its AUC floor and does not "
    "significantly regress against the production model.",
    "candidate_is_fair_across_groups": "Demographic parity and equalized odds differences "
    "within bounds and no worse than the production model's.",
    "candidate_is_calibrated": "Brier score and expected calibration error within bounds.",
    "candidate_meets_operational_budget": "Single-row p50/p99 latency, throughput, model size "
    "and scoring memory within budget on this machine.",
    "candidate_passes_behaviour_tests": "Minimum-functionality, invariance and directional "
    "behaviour cases hold.",
    "candidate_passes_champion_challenger_test": "Paired bootstrap and McNemar against the "
    "production model satisfy the configured rule.",
    "candidate_training_is_reproducible": "A retrain with the same data version, config and "
    "seed gives the same model file or scores.",
}
MODEL_GATES = [evaluation_gate(name, _DESCRIPTIONS[name]) for name in GATES]


# Everything that must have passed before a version may take the staging alias.
PROMOTION_GATES = [*MODEL_GATES, candidate_model_matches_serving_path]
