"""Delivery: `staging` when every gate passed; `production` only with a named human approver."""

import datetime as dt
import json
import os
import signal

import dagster as dg

from ml_assets.delivery.desired_state import (
    STAGED,
    DesiredState,
    Lineage,
    commit_message,
    commit_state,
    move_alias,
    replicas_for,
    state_path,
    write_state,
)
from ml_assets.evaluation.assets import evaluation_report, load_evaluation
from ml_assets.evaluation.checks import PROMOTION_GATES
from ml_assets.resources import PipelineResource
from ml_assets.training.registry import append_audit, version_for_alias

GATES_TAG = "gates"
P50_TAG = "single_row_p50_ms"
# Every step that moves an alias claims a slot of this pool; dagster.yaml limits it to one, so
# two runs never move aliases at once.
ALIAS_POOL = "model_aliases"


def deploy(
    pipeline: PipelineResource,
    environment: str,
    version: str | None,
    change: str,
    *,
    by: str,
    run_id: str,
    reason: str = "",
    approvers: tuple[str, ...] = (),
) -> tuple[DesiredState, str | None]:
    """Write `environment`'s desired state (committed when configured), then move its alias.

    The desired state goes first: a process that dies in between leaves it ahead of the alias,
    and reconcile_job completes the move. Returns the state and the commit (None: no commit).
    """
    settings = pipeline.settings
    alias, environment_settings = settings.delivery.environments()[environment]
    name = settings.training.registered_model_name
    client = pipeline.mlflow_client()
    registered = client.get_model_version(name, version) if version is not None else None
    tags = registered.tags if registered is not None else {}
    p50 = float(tags[P50_TAG]) if P50_TAG in tags else None
    state = DesiredState(
        environment=environment,
        model=name,
        alias=alias,
        version=version,
        model_sha256=tags.get("model_sha256"),
        canary_share=environment_settings.canary_share,
        expected_requests_per_second=environment_settings.expected_requests_per_second,
        single_row_p50_ms=p50,
        replicas=replicas_for(
            environment_settings.expected_requests_per_second,
            p50,
            environment_settings.headroom,
            environment_settings.min_replicas,
        ),
        change=change,
        changed_by=by,
        changed_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        lineage=Lineage(
            run_id=registered.run_id if registered is not None else None,
            data_version=tags.get("data_version"),
            code_version=tags.get("code_version"),
            approvers=list(approvers),
            reason=reason,
            dagster_run_id=run_id,
        ),
    )
    path = write_state(pipeline.desired_state_dir, state)
    commit = None
    if settings.delivery.desired_state.git_commit:
        commit = commit_state(path, commit_message(state))
    if os.environ.get(FAILPOINT_ENV) == "after_desired_state":
        # Fault injection for the crash-repair test: die as a killed process would, with the
        # desired state written and the alias not yet moved.
        os.kill(os.getpid(), signal.SIGKILL)
    move_alias(client, state)
    return state, commit


FAILPOINT_ENV = "ML_ASSETS_FAILPOINT"


def deployment_metadata(
    pipeline: PipelineResource, state: DesiredState, commit: str | None
) -> dict:
    """What a change of desired state reports: the file, the sizing, the hash, the commit."""
    return {
        "desired_state": dg.MetadataValue.path(
            str(state_path(pipeline.desired_state_dir, state.environment))
        ),
        "replicas": state.replicas,
        "canary_share": state.canary_share,
        "model_sha256": str(state.model_sha256),
        "desired_state_commit": commit or "not committed",
    }


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
    group_name="delivery",
    deps=[evaluation_report],
    kinds={"mlflow"},
    tags={"stage": "delivery"},
    pool=ALIAS_POOL,
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
    client.set_model_version_tag(name, version, GATES_TAG, "passed")
    client.set_model_version_tag(
        name, version, "gate_verdicts", json.dumps(verdicts, sort_keys=True)
    )
    # The scoring cost the operational gate measured: it sizes each environment's replicas.
    client.set_model_version_tag(name, version, P50_TAG, f"{evaluation.operational.p50_ms:.6g}")
    state, commit = deploy(
        pipeline, "staging", version, STAGED, by="evaluation gates", run_id=context.run.run_id
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
            **deployment_metadata(pipeline, state, commit),
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
