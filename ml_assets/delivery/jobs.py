"""Delivery jobs: the human approval gate that moves `production`."""

import datetime as dt

import dagster as dg
from pydantic import Field

from ml_assets.delivery.assets import GATES_TAG, production_model
from ml_assets.resources import PipelineResource


class ApprovalConfig(dg.Config):
    """One person's decision on one staged version."""

    version: str = Field(description="The model version to decide on (its number in MLflow).")
    approver: str = Field(description="Who decides: a name on delivery.approval.approvers.")
    decision: str = Field(default="approved", description="approved or rejected.")
    reason: str = Field(default="", description="Why; required to reject.")


@dg.op(tags={"stage": "delivery"})
def record_decision(
    context: dg.OpExecutionContext, config: ApprovalConfig, pipeline: PipelineResource
) -> dg.Output[str]:
    """Record an approval or rejection; move `production` once the approvals suffice."""
    from mlflow.exceptions import MlflowException

    from ml_assets.delivery.approval import (
        APPROVED,
        PROMOTED,
        Refused,
        check_decision,
        request_state,
    )
    from ml_assets.training.registry import append_audit, read_audit, version_for_alias

    settings = pipeline.settings
    policy = settings.delivery.approval
    name = settings.training.registered_model_name
    approver, decision, version = config.approver.strip(), config.decision, config.version
    client = pipeline.mlflow_client()
    try:
        registered = client.get_model_version(name, version)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise dg.Failure(
            f"{name} has no version {version!r} in the registry at {settings.mlflow_tracking_uri}"
        ) from exc
    if registered.tags.get(GATES_TAG) != "passed":
        raise dg.Failure(
            f"{name} v{version} never passed the evaluation gates (tag {GATES_TAG!r} is "
            f"{registered.tags.get(GATES_TAG)!r}); only a version that reached staging can be "
            "approved"
        )
    now = dt.datetime.now(dt.UTC)
    events = read_audit(pipeline.audit_dir, name)
    request = request_state(events, version, policy, now)
    try:
        check_decision(request, approver, decision, config.reason, policy)
    except Refused as refused:
        raise dg.Failure(f"{name} v{version}: {refused}") from None
    if decision == APPROVED and approver in request.approvers:
        context.log.info(f"{approver} already approved v{version}: nothing changes")
    else:
        append_audit(
            pipeline.audit_dir,
            name,
            version,
            decision,
            approver=approver,
            roles=policy.approvers[approver].roles,
            reason=config.reason,
            dagster_run_id=context.run.run_id,
        )
    request = request_state(read_audit(pipeline.audit_dir, name), version, policy, now)
    alias = settings.delivery.production_alias
    serving = version_for_alias(client, name, alias)
    if not request.approved:
        outcome = f"v{version} {decision} by {approver}; production still needs: " + "; ".join(
            request.missing
        )
        context.log.info(outcome)
        return dg.Output(outcome, metadata={"approvers": ", ".join(request.approvers)})
    if serving is not None and str(serving.version) == str(version):
        return dg.Output(f"v{version} already serves production: nothing changes")
    approvers = ", ".join(request.approvers)
    client.set_registered_model_alias(name, alias, version)
    client.set_model_version_tag(name, version, "approved_by", approvers)
    client.set_model_version_tag(name, version, "approved_at", now.isoformat(timespec="seconds"))
    append_audit(
        pipeline.audit_dir,
        name,
        version,
        PROMOTED,
        alias=alias,
        approvers=list(request.approvers),
        reason=config.reason,
        previous=serving.version if serving else None,
        dagster_run_id=context.run.run_id,
    )
    context.log_event(
        dg.AssetMaterialization(
            asset_key=production_model.key,
            metadata={
                "model_version": version,
                "previous_version": serving.version if serving else "none",
                "approvers": approvers,
                "reason": config.reason,
                "approved_at": now.isoformat(timespec="seconds"),
            },
        )
    )
    return dg.Output(f"production -> v{version}, approved by {approvers}")


@dg.job(
    tags={"stage": "delivery"},
    description="Approve or reject a staged version; production moves once approvals suffice.",
)
def approval_job():
    record_decision()
