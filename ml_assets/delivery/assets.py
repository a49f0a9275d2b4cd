"""Delivery: `staging` when every gate passed; `production` only with a named human approver."""

import datetime as dt
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import dagster as dg

from ml_assets.data.assets import batch_partitions, raw_batches, raw_labels
from ml_assets.delivery.checks import STAGING_GATES
from ml_assets.delivery.desired_state import (
    PROMOTED,
    STAGED,
    WITHDRAWN,
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
from ml_assets.locking import exclusive
from ml_assets.metadata import markdown_table, observability
from ml_assets.resources import PipelineResource
from ml_assets.training.registry import append_audit, version_for_alias

GATES_TAG = "gates"
P50_TAG = "single_row_p50_ms"
CANARY_TAG = "canary"
TEST_AUC_TAG = "test_roc_auc"
TEST_LOG_LOSS_TAG = "test_log_loss"
LEVEL_2 = "level 2 (gates and canary passed)"
# Every step that moves an alias claims a slot of this pool; dagster.yaml limits it to one, so
# two runs never move aliases at once.
ALIAS_POOL = "model_aliases"
# Fault injection for the crash-repair test (see deploy).
FAILPOINT_ENV = "ML_ASSETS_FAILPOINT"


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
        canary_share=settings.delivery.canary.steps[0],
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
    verdicts = gate_verdicts(context.instance, STAGING_GATES)
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
    # The reference of its live performance once it serves (monitoring/live).
    client.set_model_version_tag(
        name, version, TEST_AUC_TAG, f"{evaluation.candidate.metrics['roc_auc']:.6g}"
    )
    client.set_model_version_tag(
        name, version, TEST_LOG_LOSS_TAG, f"{evaluation.candidate.metrics['log_loss']:.6g}"
    )
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
    card = publish_model_card(pipeline, version)
    request = publish_approval_request(pipeline, version)
    return dg.MaterializeResult(
        metadata={
            "model_version": version,
            "alias": alias,
            **request,
            "model_card": dg.MetadataValue.path(str(card)),
            **deployment_metadata(pipeline, state, commit),
            "previous_version": previous.version if previous else "none",
            "gates": dg.MetadataValue.json(verdicts),
        }
    )


# Moved only by approval_job, rollback_job and a Level 2 canary that passed, each reporting the
# move as a materialization of this asset: a refused approval fails its run and leaves the asset
# showing the version that still serves.
production_model = dg.AssetSpec(
    "production_model",
    deps=[staging_model],
    group_name="delivery",
    kinds={"mlflow"},
    tags={"stage": "delivery"},
    description=(
        "The version serving production: moved by approval_job, rollback_job or a Level 2 "
        "canary, never by hand (reconcile_job restores a hand-moved alias)."
    ),
)


def _canary_share(pipeline: PipelineResource, candidate: str | None) -> float:
    """The share of this batch the candidate scores: its canary's current step (0 without one)."""
    from ml_assets.delivery.canary import FAILED, canary_state, load_measurements

    if candidate is None:
        return 0.0
    policy = pipeline.settings.delivery.canary
    state = canary_state(load_measurements(pipeline.canary_dir, candidate), policy)
    return 0.0 if state.status == FAILED else state.share


@dg.asset(
    group_name="delivery",
    partitions_def=batch_partitions,
    deps=[raw_batches],
    kinds={"mlflow", "parquet"},
    tags={"stage": "delivery"},
    output_required=False,
    # Scores each batch once it is ingested (with the automation sensor on, in the UI).
    automation_condition=dg.AutomationCondition.eager(),
)
def batch_predictions(context: dg.AssetExecutionContext, pipeline: PipelineResource):
    """Production's score of every row of a batch; the staged candidate's on its canary share."""
    import json

    import numpy as np
    import pandas as pd

    from ml_assets.data.batches import locate_batch
    from ml_assets.data.reading import read_cast
    from ml_assets.delivery.canary import canary_rows
    from ml_assets.delivery.scoring import BatchRefused, contract_refusals, cpu_per_row, score
    from ml_assets.training.registry import load_served_model

    settings = pipeline.settings
    dataset, delivery = settings.dataset, settings.delivery
    name = settings.training.registered_model_name
    client = pipeline.mlflow_client()
    production = version_for_alias(client, name, delivery.production_alias)
    if production is None:
        context.log.info(f"no version of {name} serves production yet: nothing scores this batch")
        return
    staged = version_for_alias(client, name, delivery.staging_alias)
    candidate = str(staged.version) if staged and staged.version != production.version else None
    share = _canary_share(pipeline, candidate)
    day = context.partition_key
    batch = locate_batch(dataset.features_dir, dataset.labels_dir, day)
    started = time.perf_counter()
    frame = read_cast(batch.features, dataset)
    try:
        refused = contract_refusals(frame, dataset, include_target=dataset.labels_dir is None)
    except BatchRefused as error:
        raise dg.Failure(
            f"batch {day} ({batch.features}) breaks the data contract: {error}"
        ) from None
    rows = frame.to_pandas()
    valid = np.ones(len(rows), dtype=bool)
    valid[list(refused)] = False
    features = rows.loc[valid, dataset.model_features].reset_index(drop=True)
    served = pipeline.models_dir / "served"
    uri = settings.mlflow_tracking_uri
    champion = load_served_model(uri, name, production.version, served / f"v{production.version}")
    production_scored = score(champion, features)
    out = pd.DataFrame({dataset.id_column: rows[dataset.id_column]})
    out["production_version"] = str(production.version)
    out["production_score"] = np.nan
    out.loc[valid, "production_score"] = production_scored.scores
    out["refused"] = pd.Series([refused.get(i) for i in range(len(rows))], dtype="string")
    out["canary_version"] = pd.Series([None] * len(rows), dtype="string")
    out["canary_score"] = np.nan
    summary = {
        "batch": day,
        "rows": len(rows),
        "refused_by_contract": len(refused),
        "production_version": str(production.version),
        "production_errors": len(production_scored.errors),
        "canary_version": candidate if share > 0 else None,
        "canary_share": share,
        "canary_rows": 0,
        "canary_errors": 0,
        "production_cpu_per_row": None,
        "canary_cpu_per_row": None,
    }
    if candidate is not None and share > 0:
        challenger = load_served_model(uri, name, candidate, served / f"v{candidate}")
        mask = canary_rows(rows[dataset.id_column], share)
        chosen = mask & valid
        on_canary = mask[valid]  # the same rows, among those the contract let through
        canary_scored = score(challenger, features[on_canary])
        out.loc[chosen, "canary_version"] = candidate
        out.loc[chosen, "canary_score"] = canary_scored.scores
        # Scoring cost on the rows both models score, measured interleaved on this thread.
        both = features[on_canary].reset_index(drop=True)
        both = both[~np.isnan(canary_scored.scores)]
        summary.update(
            canary_rows=int(chosen.sum()),
            canary_errors=len(canary_scored.errors),
            production_cpu_per_row=cpu_per_row(champion, both),
            canary_cpu_per_row=cpu_per_row(challenger, both),
        )
    seconds = time.perf_counter() - started
    pipeline.predictions_dir.mkdir(parents=True, exist_ok=True)
    out.to_parquet(pipeline.predictions_dir / f"{day}.parquet", index=False)
    (pipeline.predictions_dir / f"{day}.json").write_text(json.dumps(summary, indent=1))
    sample = out[out["refused"].notna()].head(settings.validation.failing_rows_sample)
    yield dg.MaterializeResult(
        metadata={
            **observability(
                started,
                rows=len(rows),
                paths=[pipeline.predictions_dir / f"{day}.parquet"],
            ),
            "rows": len(rows),
            "refused_by_contract": len(refused),
            "refused_sample": markdown_table(sample, max_rows=len(sample)),
            "production_version": str(production.version),
            "canary_version": summary["canary_version"] or "none",
            "canary_share": share,
            "canary_rows": summary["canary_rows"],
            "mean_production_score": round(float(np.nanmean(out["production_score"])), 4)
            if valid.any()
            else "none",
            "seconds": round(seconds, 3),
            "predictions": dg.MetadataValue.path(str(pipeline.predictions_dir / f"{day}.parquet")),
        }
    )


@dg.asset(
    group_name="delivery",
    partitions_def=batch_partitions,
    deps=[batch_predictions, raw_labels],
    kinds={"scipy"},
    tags={"stage": "delivery"},
    pool=ALIAS_POOL,
    output_required=False,
    # Measures again when the batch's labels land.
    automation_condition=dg.AutomationCondition.eager(),
)
def canary_analysis(context: dg.AssetExecutionContext, pipeline: PipelineResource):
    """One canary measurement per batch (pass, fail or inconclusive) and where the canary stands."""
    import json

    import pandas as pd

    from ml_assets.delivery.canary import (
        FAILED,
        PASSED,
        canary_state,
        load_measurements,
        measure,
        save_measurement,
    )

    settings = pipeline.settings
    delivery = settings.delivery
    policy = delivery.canary
    day = context.partition_key
    summary_path = pipeline.predictions_dir / f"{day}.json"
    if not summary_path.exists():
        context.log.info(f"batch {day} has no predictions: nothing to measure")
        return
    summary = json.loads(summary_path.read_text())
    candidate = summary["canary_version"]
    if candidate is None:
        context.log.info(f"batch {day} was scored by production alone: no canary to measure")
        return
    predictions = pd.read_parquet(pipeline.predictions_dir / f"{day}.parquet")
    joined = predictions[predictions["canary_version"] == candidate].reset_index(drop=True)
    y = landed_labels(pipeline, day, joined)
    measurement = measure(
        batch=day,
        version=candidate,
        production_version=summary["production_version"],
        share=summary["canary_share"],
        production_scores=joined["production_score"].to_numpy(dtype="float64"),
        canary_scores=joined["canary_score"].to_numpy(dtype="float64"),
        labels=y,
        production_cpu_per_row=summary["production_cpu_per_row"] or 0.0,
        canary_cpu_per_row=summary["canary_cpu_per_row"] or 0.0,
        production_errors=summary["production_errors"],
        canary_errors=summary["canary_errors"],
        policy=policy,
    )
    save_measurement(pipeline.canary_dir, measurement)
    state = canary_state(load_measurements(pipeline.canary_dir, candidate), policy)
    context.log.info(f"canary of v{candidate}: {measurement.verdict}; {state.summary(policy)}")
    client = pipeline.mlflow_client()
    name = settings.training.registered_model_name
    staged = version_for_alias(client, name, delivery.staging_alias)
    still_staged = staged is not None and str(staged.version) == candidate
    action = "none"
    if still_staged and state.status in (FAILED, PASSED):
        client.set_model_version_tag(name, candidate, CANARY_TAG, state.status)
        append_audit(
            pipeline.audit_dir,
            name,
            candidate,
            f"canary_{state.status}",
            reason=state.reason,
            batch=day,
            dagster_run_id=context.run.run_id,
        )
    if still_staged and state.status == FAILED:
        # A failed canary withdraws staging: the candidate stops scoring and cannot be approved.
        deploy(
            pipeline,
            "staging",
            None,
            WITHDRAWN,
            by="canary",
            run_id=context.run.run_id,
            reason=state.reason,
        )
        action = f"staging withdrawn from v{candidate}"
        context.log_event(
            dg.AssetMaterialization(
                asset_key=staging_model.key,
                metadata={"model_version": "none", "withdrawn": candidate, "reason": state.reason},
            )
        )
    elif still_staged and state.status == PASSED and delivery.production.level == 2:
        action = promote(
            context,
            pipeline,
            candidate,
            by="level 2",
            approvers=(LEVEL_2,),
            reason=f"Level 2: gates and canary passed ({state.reason})",
        )
    # The reviewer's page follows the canary while the candidate waits for approval.
    request = (
        publish_approval_request(pipeline, candidate)
        if still_staged and state.status != FAILED
        else {}
    )
    criteria = pd.DataFrame(
        [
            {
                "criterion": c.name,
                "value": c.value,
                "threshold": c.threshold,
                "passed": c.passed,
                "detail": c.detail,
            }
            for c in measurement.criteria
        ]
    )
    yield dg.MaterializeResult(
        metadata={
            "verdict": measurement.verdict,
            "reason": measurement.reason,
            "candidate_version": candidate,
            "production_version": summary["production_version"],
            "canary_rows": measurement.rows,
            "labelled_rows": measurement.labelled_rows,
            "criteria": markdown_table(criteria, max_rows=len(criteria)),
            "canary_status": state.status,
            "canary_state": state.summary(policy),
            "next_share": state.share,
            "action": action,
            **request,
        }
    )


def promote(
    context: dg.OpExecutionContext,
    pipeline: PipelineResource,
    version: str,
    *,
    by: str,
    approvers: tuple[str, ...],
    reason: str,
    extra: dict | None = None,
) -> str:
    """Move production to `version` (desired state, then alias), record it in the audit log and
    report it as a materialization of production_model. Nothing happens when it already serves."""
    settings = pipeline.settings
    name, alias = settings.training.registered_model_name, settings.delivery.production_alias
    # Read and move under one lock: a second approval at the same moment finds v{version}.
    # (Dagster's pool should keep the two apart too, but on SQLite two claims at the same
    # moment can take its one slot together: the claim reads a free slot, then updates it by
    # id alone.)
    with exclusive(pipeline.data_dir / "production_alias.lock"):
        serving = version_for_alias(pipeline.mlflow_client(), name, alias)
        if serving is not None and str(serving.version) == str(version):
            return f"v{version} already serves production: nothing changes"
        state, commit = deploy(
            pipeline,
            "production",
            version,
            PROMOTED,
            by=by,
            run_id=context.run.run_id,
            reason=reason,
            approvers=approvers,
        )
        append_audit(
            pipeline.audit_dir,
            name,
            version,
            "promoted",
            alias=alias,
            approvers=list(approvers),
            reason=reason,
            previous=serving.version if serving else None,
            dagster_run_id=context.run.run_id,
        )
    card = publish_model_card(pipeline, version)
    context.log_event(
        dg.AssetMaterialization(
            asset_key=production_model.key,
            metadata={
                "model_version": version,
                "previous_version": serving.version if serving else "none",
                "approvers": ", ".join(approvers),
                "reason": reason,
                "model_card": dg.MetadataValue.path(str(card)),
                **(extra or {}),
                **deployment_metadata(pipeline, state, commit),
            },
        )
    )
    return f"production -> v{version}, approved by {', '.join(approvers)}"


def publish_model_card(pipeline: PipelineResource, version: str) -> Path:
    """Write the version's model card (markdown and HTML) and log both to its MLflow run."""
    from ml_assets.delivery.model_card import card_sections, version_facts, write_pages
    from ml_assets.training.registry import read_audit

    settings = pipeline.settings
    name = settings.training.registered_model_name
    client = pipeline.mlflow_client()
    facts = version_facts(client, name, str(version), read_audit(pipeline.audit_dir, name))
    sections = card_sections(facts, settings.delivery.model_card)
    title = f"Model card: {name} v{version}"
    markdown = write_pages(pipeline.model_cards_dir, f"{name}-v{version}", title, sections)
    for path in (markdown, markdown.with_suffix(".html")):
        client.log_artifact(facts.run_id, str(path), "model_card")
    return markdown


def publish_approval_request(pipeline: PipelineResource, version: str) -> dict[str, Any]:
    """Write the staged version's approval request page (markdown and HTML) from its evaluation,
    its gate verdicts at staging, its audit events and its canary; the metadata that links it."""
    from ml_assets.delivery.approval import request_state
    from ml_assets.delivery.approval_request import approval_page
    from ml_assets.delivery.canary import canary_state, load_measurements
    from ml_assets.delivery.model_card import version_facts, write_pages
    from ml_assets.evaluation.gates import decide_all
    from ml_assets.training.registry import read_audit

    settings = pipeline.settings
    name = settings.training.registered_model_name
    client = pipeline.mlflow_client()
    events = read_audit(pipeline.audit_dir, name)
    evaluation = load_evaluation(pipeline)
    if evaluation.candidate.version != str(version):
        # A newer candidate was evaluated since (and not staged): the version's own evaluation
        # is the one logged to its training run.
        evaluation = version_facts(client, name, str(version), events).evaluation
        if evaluation is None:
            raise dg.Failure(f"{name} v{version} has no evaluation.json in its MLflow run")
    tags = client.get_model_version(name, str(version)).tags
    verdicts = json.loads(tags.get("gate_verdicts", "{}"))
    measurements = load_measurements(pipeline.canary_dir, str(version))
    canary = canary_state(measurements, settings.delivery.canary) if measurements else None
    policy = settings.delivery.approval
    serving = version_for_alias(client, name, settings.delivery.production_alias)
    page = approval_page(
        evaluation,
        decide_all(evaluation, settings.gates),
        verdicts,
        request_state(events, str(version), policy, dt.datetime.now(dt.UTC)),
        policy,
        canary,
        measurements,
        str(serving.version)
        if serving is not None and str(serving.version) != str(version)
        else None,
    )
    markdown = write_pages(
        pipeline.approval_requests_dir, f"{name}-v{version}", page.title, page.sections
    )
    return {
        "approval_request": dg.MetadataValue.path(str(markdown.with_suffix(".html"))),
        "anomalies": len(page.anomalies),
        # The whole page, rendered in the asset's metadata: the reviewer's view in the UI.
        "approval_request_page": dg.MetadataValue.md(markdown.read_text()),
    }


def landed_labels(pipeline: PipelineResource, day: str, predictions: Any) -> Any:
    """0/1 per row of `predictions` (a frame with the id column): the batch's label where it
    has landed, NaN where it has not."""
    import numpy as np

    from ml_assets.data.batches import locate_batch, read_labels
    from ml_assets.data.contract import labels_to_binary

    dataset = pipeline.settings.dataset
    batch = locate_batch(dataset.features_dir, dataset.labels_dir, day)
    labels = read_labels(
        batch, dataset.id_column, dataset.target_column, dataset.labels_dir is not None
    )
    joined = predictions[[dataset.id_column]].merge(labels, on=dataset.id_column, how="left")
    landed = joined[dataset.target_column].notna().to_numpy()
    y = np.full(len(joined), np.nan)
    y[landed] = labels_to_binary(joined.loc[landed, dataset.target_column], dataset.positive_label)
    return y
