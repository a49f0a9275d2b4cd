"""Delivery: `staging` when every gate passed; `production` only with a named human approver."""

import json

import dagster as dg

from ml_assets.evaluation.assets import evaluation_report, load_evaluation
from ml_assets.evaluation.checks import PROMOTION_GATES
from ml_assets.resources import PipelineResource
from ml_assets.training.registry import append_audit, version_for_alias

GATES_TAG = "gates"


def gate_verdicts(instance: dg.DagsterInstance, checks: list) -> dict[str, str]:
    """The latest verdict of each check on the latest materialization of its asset.

    Blocking checks only stop downstream steps inside one run; this is the explicit look-up that
    keeps a later run from acting on a model whose gates failed, errored or never ran.
    """
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

    storage = instance.event_log_storage
    completed = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}
    verdicts = {}
    for key in (key for check in checks for key in check.check_keys):
        # The latest execution that produced a verdict: a run that planned the check and
        # stopped before it (a data gate blocked upstream) leaves a planned record, no verdict.
        history = storage.get_asset_check_execution_history(key, limit=1, status=completed)
        record = history[0] if history else None
        latest = instance.fetch_materializations(key.asset_key, limit=1).records
        if record is None or not latest:
            verdicts[key.name] = "never ran"
            continue
        evaluation = record.evaluation
        target = getattr(evaluation, "target_materialization_data", None)
        if target is None or target.storage_id != latest[0].storage_id:
            verdicts[key.name] = "not run on the latest materialization"
        elif record.status == AssetCheckExecutionRecordStatus.SUCCEEDED:
            verdicts[key.name] = "passed"
        elif (
            record.status == AssetCheckExecutionRecordStatus.FAILED
            and evaluation is not None
            and evaluation.severity == dg.AssetCheckSeverity.WARN
        ):
            # A WARN gate's failure is shown to people and recorded; it does not block.
            verdicts[key.name] = "warned"
        else:
            verdicts[key.name] = record.status.value.lower()
    return verdicts


@dg.asset(
    group_name="delivery", deps=[evaluation_report], kinds={"mlflow"}, tags={"stage": "delivery"}
)
def staging_model(
    context: dg.AssetExecutionContext, pipeline: PipelineResource
) -> dg.MaterializeResult:
    """The candidate that passed every evaluation gate, under the MLflow `staging` alias."""
    settings = pipeline.settings
    evaluation = load_evaluation(pipeline)
    version = evaluation.candidate.version
    verdicts = gate_verdicts(context.instance, PROMOTION_GATES)
    blocked = {name: v for name, v in verdicts.items() if v not in ("passed", "warned")}
    if blocked:
        raise dg.Failure(
            f"version {version} cannot go to staging: gates not passed: {blocked}",
            metadata={"gates": dg.MetadataValue.json(verdicts)},
        )
    client = pipeline.mlflow_client()
    name, alias = evaluation.model, settings.delivery.staging_alias
    previous = version_for_alias(client, name, alias)
    client.set_registered_model_alias(name, alias, version)
    client.set_model_version_tag(name, version, GATES_TAG, "passed")
    client.set_model_version_tag(
        name, version, "gate_verdicts", json.dumps(verdicts, sort_keys=True)
    )
    append_audit(
        pipeline.audit_dir,
        name,
        version,
        "staged",
        alias=alias,
        previous=previous.version if previous else None,
        gates=verdicts,
        dagster_run_id=context.run.run_id,
    )
    return dg.MaterializeResult(
        metadata={
            "model_version": version,
            "alias": alias,
            "previous_version": previous.version if previous else "none",
            "gates": dg.MetadataValue.json(verdicts),
        }
    )


# Moved only by approval_job, which reports each move as a materialization of this asset: a
# refused approval fails its run and leaves the asset showing the version that still serves.
production_model = dg.AssetSpec(
    "production_model",
    deps=[staging_model],
    group_name="delivery",
    kinds={"mlflow"},
    tags={"stage": "delivery"},
    description="The version serving production; moved by approval_job once approvals suffice.",
)
