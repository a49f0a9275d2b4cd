"""Delivery jobs: the approval gate that moves `production`, rollback, and reconcile."""

import datetime as dt

import dagster as dg
from pydantic import Field

from ml_assets.delivery.assets import (
    ALIAS_POOL,
    GATES_TAG,
    deploy,
    deployment_metadata,
    production_model,
    promote,
    publish_approval_request,
    publish_model_card,
    staging_model,
)
from ml_assets.delivery.desired_state import ROLLED_BACK as ROLLED_BACK_CHANGE
from ml_assets.resources import PipelineResource


class ApprovalConfig(dg.Config):
    """One person's decision on one staged version."""

    version: str = Field(description="The model version to decide on (its number in MLflow).")
    approver: str = Field(description="Who decides: a name on delivery.approval.approvers.")
    decision: str = Field(default="approved", description="approved or rejected.")
    reason: str = Field(default="", description="Why; required to reject.")
    accept_inconclusive_canary: bool = Field(
        default=False,
        description=(
            "Approve although the canary is held on an inconclusive measurement (too few rows "
            "or labels), having reviewed canary_analysis."
        ),
    )


@dg.op(tags={"stage": "delivery"}, pool=ALIAS_POOL)
def record_decision(
    context: dg.OpExecutionContext, config: ApprovalConfig, pipeline: PipelineResource
) -> dg.Output[str]:
    """Record an approval or rejection; move `production` once the approvals suffice."""
    from mlflow.exceptions import MlflowException

    from ml_assets.delivery.approval import (
        APPROVED,
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
    alias = settings.delivery.production_alias
    serving = version_for_alias(client, name, alias)
    canary_note = "not needed"
    if decision == APPROVED and serving is not None and str(serving.version) != str(version):
        # The candidate is compared with what serves: its canary must have passed (or, held,
        # be accepted by the approver).
        from ml_assets.delivery.canary import approval_refusal, canary_state, load_measurements

        canary = settings.delivery.canary
        state = canary_state(load_measurements(pipeline.canary_dir, version), canary)
        refusal = approval_refusal(state, canary, config.accept_inconclusive_canary)
        if refusal is not None:
            raise dg.Failure(f"{name} v{version}: {refusal}")
        canary_note = state.summary(canary)
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
            canary=canary_note,
            dagster_run_id=context.run.run_id,
        )
    request = request_state(read_audit(pipeline.audit_dir, name), version, policy, now)
    if not request.approved:
        outcome = f"v{version} {decision} by {approver}; production still needs: " + "; ".join(
            request.missing
        )
        context.log.info(outcome)
        page = publish_approval_request(pipeline, version)
        return dg.Output(
            outcome,
            metadata={
                "approvers": ", ".join(request.approvers),
                "approval_request": page["approval_request"],
            },
        )
    outcome = promote(
        context,
        pipeline,
        version,
        by=approver,
        approvers=request.approvers,
        reason=config.reason,
        extra={"approved_at": now.isoformat(timespec="seconds"), "canary": canary_note},
    )
    if not outcome.startswith("production ->"):
        return dg.Output(outcome)
    approvers = ", ".join(request.approvers)
    client.set_model_version_tag(name, version, "approved_by", approvers)
    client.set_model_version_tag(name, version, "approved_at", now.isoformat(timespec="seconds"))
    return dg.Output(outcome)


@dg.job(
    tags={"stage": "delivery"},
    description="Approve or reject a staged version; production moves once approvals suffice.",
)
def approval_job():
    record_decision()


class RollbackConfig(dg.Config):
    """Who rolls production back, why, and (for a safe retry) from which version."""

    approver: str = Field(description="Who rolls back: a name on delivery.approval.approvers.")
    reason: str = Field(description="Why: the symptom, the alert, the incident number.")
    automatic: bool = Field(
        default=False,
        description="Set by performance_slo_sensor for an automatic rollback; people leave it.",
    )
    from_version: str = Field(
        default="",
        description=(
            "The version you roll back from; when production no longer serves it, nothing "
            "changes (a retry after a rollback that did land). Empty: whatever serves now."
        ),
    )


@dg.op(tags={"stage": "delivery"}, pool=ALIAS_POOL)
def roll_back_production(
    context: dg.OpExecutionContext, config: RollbackConfig, pipeline: PipelineResource
) -> dg.Output[str]:
    """Move production back to the version that served before the current one, record who,
    when and why, and open a post-incident review."""
    sensor = context.run.tags.get("dagster/sensor_name")
    if config.automatic and sensor != "performance_slo_sensor":
        raise dg.Failure(
            "an automatic rollback is launched by performance_slo_sensor only; a person rolls "
            "back with automatic unset and their name as approver"
        )
    outcome, metadata = _roll_back(
        context,
        pipeline,
        who=config.approver.strip(),
        reason=config.reason,
        from_version=config.from_version.strip() or None,
        automatic=config.automatic,
    )
    return dg.Output(outcome, metadata=metadata)


def _roll_back(
    context: dg.OpExecutionContext,
    pipeline: PipelineResource,
    *,
    who: str,
    reason: str,
    from_version: str | None,
    automatic: bool,
    evidence: dict | None = None,
) -> tuple[str, dict]:
    import json

    from ml_assets.delivery.rollback import ROLLED_BACK_EVENT, incident_review, rollback_target
    from ml_assets.training.registry import append_audit, read_audit, version_for_alias

    settings = pipeline.settings
    name, alias = settings.training.registered_model_name, settings.delivery.production_alias
    if not automatic and who not in settings.delivery.approval.approvers:
        known = ", ".join(sorted(settings.delivery.approval.approvers)) or "none"
        raise dg.Failure(
            f"{who!r} is not on the approver list (delivery.approval.approvers; listed: "
            f"{known}): only a listed person may roll production back"
        )
    if not reason.strip():
        raise dg.Failure("a rollback needs a reason (the symptom, the alert, the incident)")
    client = pipeline.mlflow_client()
    serving = version_for_alias(client, name, alias)
    current = str(serving.version) if serving is not None else None
    if from_version is not None and from_version != current:
        message = (
            f"production serves v{current}, not v{from_version}: nothing to roll back "
            "(a rollback from it already landed?)"
        )
        context.log.info(message)
        return message, {"serving": str(current)}
    events = read_audit(pipeline.audit_dir, name)
    target = rollback_target(events, current)
    if target is None:
        raise dg.Failure(
            f"{name}: no earlier production version to roll back to from v{current} (the audit "
            f"log at {pipeline.audit_dir} shows no promotion before it)"
        )
    state, commit = deploy(
        pipeline,
        "production",
        target,
        ROLLED_BACK_CHANGE,
        by=who,
        run_id=context.run.run_id,
        reason=reason,
    )
    entry = append_audit(
        pipeline.audit_dir,
        name,
        target,
        ROLLED_BACK_EVENT,
        alias=alias,
        by=who,
        reason=reason,
        previous=current,
        automatic=automatic,
        dagster_run_id=context.run.run_id,
    )
    verdicts = json.loads(client.get_model_version(name, current).tags.get("gate_verdicts", "{}"))
    review = pipeline.incidents_dir / (
        f"{entry['at'].replace(':', '').replace('+0000', 'Z')}-{name}-v{current}-to-v{target}.md"
    )
    review.parent.mkdir(parents=True, exist_ok=True)
    review.write_text(
        incident_review(
            model=name,
            rolled_back=str(current),
            restored=target,
            who=who,
            at=entry["at"],
            reason=reason,
            automatic=automatic,
            gate_verdicts=verdicts,
            events=read_audit(pipeline.audit_dir, name),
            evidence=evidence,
        )
    )
    card = publish_model_card(pipeline, target)
    metadata = {
        "model_version": target,
        "previous_version": str(current),
        "model_card": dg.MetadataValue.path(str(card)),
        "rolled_back_by": who,
        "reason": reason,
        "incident_review": dg.MetadataValue.path(str(review)),
        **deployment_metadata(pipeline, state, commit),
    }
    context.log_event(dg.AssetMaterialization(asset_key=production_model.key, metadata=metadata))
    return f"production v{current} -> v{target}, rolled back by {who}", metadata


@dg.job(
    tags={"stage": "delivery"},
    description="Roll production back to the version that served before, with a review.",
)
def rollback_job():
    roll_back_production()


@dg.op(tags={"stage": "delivery"}, pool=ALIAS_POOL)
def reconcile_aliases(context: dg.OpExecutionContext, pipeline: PipelineResource) -> dg.Output:
    """Bring each environment's MLflow alias to its desired state (deploy/<environment>.yaml);
    report drift (an alias moved by hand) and restore it; refuse a version whose bits changed."""
    import hashlib
    import tempfile
    from pathlib import Path

    from ml_assets.delivery.desired_state import read_state, reconcile
    from ml_assets.training.registry import append_audit, download_model_file, read_audit

    settings = pipeline.settings
    name = settings.training.registered_model_name
    client = pipeline.mlflow_client()

    def sha256_of(version: str) -> str:
        with tempfile.TemporaryDirectory() as tmp:
            registered = client.get_model_version(name, version)
            path = download_model_file(client, registered, Path(tmp))
            return hashlib.sha256(path.read_bytes()).hexdigest()

    results, refused = [], []
    assets = {"staging": staging_model.key, "production": production_model.key}
    for environment, (alias, _) in settings.delivery.environments().items():
        state = read_state(pipeline.desired_state_dir, environment)
        outcome = reconcile(client, environment, alias, name, state, sha256_of)
        results.append(outcome)
        context.log.info(f"{environment}: {outcome.action}: {outcome.detail}")
        if not outcome.drifted:
            continue
        last = read_audit(pipeline.audit_dir, name)[-1:]
        repeat = last and last[0]["event"] == "drift" and last[0].get("detail") == outcome.detail
        if not repeat:  # a refusal that persists is recorded once, not at every sensor tick
            append_audit(
                pipeline.audit_dir,
                name,
                str(outcome.desired),
                "drift",
                environment=environment,
                alias=alias,
                found=outcome.found,
                action=outcome.action,
                detail=outcome.detail,
                dagster_run_id=context.run.run_id,
            )
        context.log_event(
            dg.AssetObservation(
                asset_key=assets[environment],
                metadata={
                    "drift": outcome.action,
                    "desired_version": str(outcome.desired),
                    "found_version": str(outcome.found),
                    "detail": outcome.detail,
                },
            )
        )
        if outcome.action == "refused":
            refused.append(f"{environment}: {outcome.detail}")
    table = {r.environment: f"{r.action} (desired v{r.desired}, found v{r.found})" for r in results}
    if refused:
        raise dg.Failure(
            "reconcile refused: " + "; ".join(refused), metadata={"environments": table}
        )
    return dg.Output(
        "; ".join(f"{env}: {text}" for env, text in table.items()),
        metadata={
            "drifted": sum(r.drifted for r in results),
            "environments": dg.MetadataValue.json(table),
        },
    )


@dg.job(
    tags={"stage": "delivery"},
    description="Bring the MLflow aliases to the desired state in deploy/ and report drift.",
)
def reconcile_job():
    reconcile_aliases()
