"""Model-aware checks before staging: the candidate accepts production's requests and starts cold.

Blocking checks on `evaluation_report`, beside the evaluation gates: they judge the version the
evaluation judged, re-run whenever it is re-evaluated, and `staging_model` requires them with the
evaluation gates (STAGING_GATES). The rules are in delivery/readiness.py.
"""

import tempfile
from dataclasses import asdict
from pathlib import Path

import dagster as dg

from ml_assets.delivery.readiness import (
    cold_load_criteria,
    contract_breaks,
    dropped_inputs,
    measure_cold_load,
    signature_breaks,
)
from ml_assets.evaluation.assets import evaluation_report, load_evaluation
from ml_assets.evaluation.checks import PROMOTION_GATES
from ml_assets.evaluation.gates import decide
from ml_assets.metadata import markdown_table, significant
from ml_assets.resources import PipelineResource
from ml_assets.training.registry import model_interface, version_for_alias


def _candidate(pipeline: PipelineResource) -> tuple[str, str]:
    evaluation = load_evaluation(pipeline)
    return evaluation.model, str(evaluation.candidate.version)


@dg.asset_check(asset=evaluation_report, blocking=True)
def candidate_is_backward_compatible(pipeline: PipelineResource) -> dg.AssetCheckResult:
    """Every request the production model accepts, the candidate accepts: signature and contract."""
    settings = pipeline.settings
    name, version = _candidate(pipeline)
    client = pipeline.mlflow_client()
    production = version_for_alias(client, name, settings.delivery.production_alias)
    common = {"model_version": version, "severity": "ERROR"}
    if production is None or str(production.version) == version:
        return dg.AssetCheckResult(
            passed=True,
            description="no other version serves production: no client to stay compatible with",
            metadata={**common, "production_version": "none", "decision": "pass"},
        )
    with tempfile.TemporaryDirectory(prefix="ml_assets_interface_") as tmp:
        old_inputs, old_contract = model_interface(
            client, name, str(production.version), Path(tmp) / "production"
        )
        new_inputs, new_contract = model_interface(client, name, version, Path(tmp) / "candidate")
    breaks = [
        {"source": "signature", **asdict(b)} for b in signature_breaks(old_inputs, new_inputs)
    ] + [{"source": "contract", **asdict(b)} for b in contract_breaks(old_contract, new_contract)]
    dropped = dropped_inputs(old_contract, new_contract)
    required = settings.delivery.readiness.require_backward_compatible
    passed = not breaks or not required
    if breaks:
        fields = sorted({b["field"] for b in breaks})
        description = (
            f"v{version} breaks {len(breaks)} rule(s) production's clients rely on, "
            f"in {', '.join(fields[:8])}" + (" and more" if len(fields) > 8 else "")
        )
        if not required:
            description += " (allowed: delivery.readiness.require_backward_compatible is false)"
    else:
        description = (
            f"v{version} accepts every request v{production.version} accepts "
            f"({len(old_inputs)} inputs)"
        )
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            **common,
            "production_version": str(production.version),
            "value": len(breaks),
            "threshold": 0,
            "decision": "pass" if passed else "block",
            "breaks": markdown_table(breaks, max_rows=30),
            "inputs_no_longer_read": ", ".join(dropped) or "none",
        },
    )


@dg.asset_check(asset=evaluation_report, blocking=True)
def candidate_loads_cold_within_budget(pipeline: PipelineResource) -> dg.AssetCheckResult:
    """A fresh process loads the candidate from the registry and answers warm-up requests within
    the CPU-time and memory budgets."""
    settings = pipeline.settings
    policy = settings.delivery.readiness
    name, version = _candidate(pipeline)
    try:
        load = measure_cold_load(
            settings.mlflow_tracking_uri, name, version, warmup_requests=policy.warmup_requests
        )
    except RuntimeError as error:
        # A model that does not load in a fresh process is the failure this check looks for:
        # a verdict with the child's error, not a crashed step.
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"v{version} did not load and answer in a fresh process",
            metadata={"model_version": version, "decision": "block", "error": str(error)},
        )
    decision = decide("candidate_loads_cold_within_budget", cold_load_criteria(load, policy))
    return dg.AssetCheckResult(
        passed=decision.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=decision.reason,
        metadata={
            "model_version": version,
            "model_uri": load.model_uri,
            "value": significant(decision.value),
            "threshold": significant(decision.threshold),
            "decision": "pass" if decision.passed else "block",
            "severity": "ERROR",
            "criteria": markdown_table(decision.table()),
            "load_cpu_seconds": significant(load.load_cpu_seconds, 3),
            "load_wall_seconds (information)": significant(load.load_wall_seconds, 3),
            "peak_resident_mb": significant(load.peak_resident_mb, 3),
            "warmup": f"{load.warmup_answered} of {load.warmup_requests} answered",
            "first_request_cpu_ms": significant(load.first_request_ms, 3),
            "warm_request_cpu_p50_ms": significant(load.warm_p50_ms, 3),
        },
    )


READINESS_CHECKS = [candidate_is_backward_compatible, candidate_loads_cold_within_budget]
# Everything that must have passed before a version may take the staging alias.
STAGING_GATES = [*PROMOTION_GATES, *READINESS_CHECKS]
