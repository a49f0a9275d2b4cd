"""`make run`: bring every asset up to date on the embedded default and print what happened.

    python -m ml_assets.cli.run                                     # ingest, gate, train, stage
    python -m ml_assets.cli.run approve --version 3 --approver ana  # the human gate (or: promote)
    python -m ml_assets.cli.run reject --version 3 --approver ana --reason "..."
    python -m ml_assets.cli.run rollback --approver olu --reason "..."  # production back one step
    python -m ml_assets.cli.run reconcile  # MLflow aliases to the desired state in deploy/
    python -m ml_assets.cli.run score [--batch 2026-04-30]  # scoring_job on one batch

Work already up to date is not repeated: batch files the gates already judged (same content) are
not ingested again, and no model is trained when the passing training window is unchanged.

Exit codes, for CI: 0 every blocking gate passed; 1 a gate blocked (a batch quarantined, a
candidate kept off staging; the summary says which); 2 an error (its cause in a line or two).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from dataclasses import dataclass, field

from ml_assets.cli.instance import ensure_dagster_home, open_instance
from ml_assets.data.gates import BATCH_GATES
from ml_assets.settings import load_settings

# Dagster's console logger prints every event at DEBUG, and a blocked check as an ERROR with a
# stack trace; the summary below is what a person reads (a step's error message included), and
# every trace stays in the run's event log (`make dev`). ML_ASSETS_LOG_LEVEL=DEBUG brings the
# event stream back to the terminal.
LOG_CONFIG = {
    "loggers": {
        "console": {"config": {"log_level": os.environ.get("ML_ASSETS_LOG_LEVEL", "CRITICAL")}}
    }
}


@dataclass
class RunReport:
    """What the runs of one `make run` did, gathered from their Dagster events."""

    runs: list[str] = field(default_factory=list)
    materialized: dict[str, dict] = field(default_factory=dict)
    checks: dict[str, tuple[bool, dict, str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)  # checks that failed at severity ERROR
    # Why the model's stages were redone, or why they were not, when no batch was ingested.
    redo_reason: str = ""

    @property
    def exit_code(self) -> int:
        """2 when something errored, else 1 when a gate blocked, else 0."""
        return 2 if self.errors else 1 if self.blocked else 0

    def absorb(self, result) -> None:
        import dagster as dg

        self.runs.append(result.run_id)
        for event in result.get_asset_materialization_events():
            mat = event.materialization
            self.materialized[mat.asset_key.to_user_string()] = {
                k: v.value for k, v in mat.metadata.items()
            }
        for evaluation in result.get_asset_check_evaluations():
            meta = {k: v.value for k, v in evaluation.metadata.items()}
            self.checks[evaluation.check_name] = (
                evaluation.passed,
                meta,
                evaluation.description or "",
            )
            if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR:
                self.blocked.append(evaluation.check_name)
        for event in result.all_events:
            if event.is_step_failure:
                error = event.step_failure_data.error
                if error and "DagsterAssetCheckFailedError" not in (error.cls_name or ""):
                    self.errors.append(f"{event.step_key}: {root_cause(error)}")


def raised_by_step(error):
    """What the step itself raised: Dagster's wrappers (DagsterExecutionStepExecutionError, ...)
    hold it as their cause; what it was raised from is the step's own business."""
    while error.cause is not None and (error.cls_name or "").startswith("Dagster"):
        error = error.cause
    return error


def root_cause(error) -> str:
    """The innermost error's message: Dagster wraps a step's exception in "Error occurred
    while executing op ..."; the person needs what was raised (the trace stays in the log)."""
    error = raised_by_step(error)
    # Dagster's messages start with the exception's class ("RuntimeError: ..."); a dg.Failure's
    # text says it all without it.
    message = error.message.strip()
    if error.cls_name == "Failure":
        message = message.split(": ", 1)[-1]
    return message[:1000]


def _prepare_batches(settings) -> None:
    """Generate the demo when asked and the folders are empty; refuse to write anywhere else.

    The demo never writes into a folder holding files (a user's labels, say); without the demo,
    a missing features folder is named rather than reported as "no batch passed".
    """
    from ml_assets.data.batches import BatchFileError, list_batch_files

    dataset = settings.dataset
    features_dir = dataset.features_dir
    if list_batch_files(features_dir):
        return
    if not dataset.demo:
        if not features_dir.is_dir():
            raise BatchFileError(
                f"the features folder {features_dir} does not exist (dataset.features_dir in "
                f"{settings.source}): put the YYYY-MM-DD.parquet or .csv batch files there, or "
                "set dataset.demo: true to generate the demo"
            )
        return
    for folder in (features_dir, dataset.labels_dir):
        if folder is None or not folder.is_dir():
            continue
        if any(not p.name.startswith(".") for p in folder.iterdir()):  # .gitkeep aside
            raise BatchFileError(
                f"dataset.demo is true, but {folder} already holds files and the demo never "
                "writes into a folder holding files: empty it, point dataset.features_dir and "
                "dataset.labels_dir at new folders, or set dataset.demo: false"
            )
    from ml_assets.demo import simulate

    print(f"no batch files in {features_dir}: generating the demo data")
    simulate.main([])


def run_pipeline() -> int:
    """`make run`: bring every asset up to date, print the summary, return the exit code."""
    outcome = execute_pipeline()
    print(summarise(*outcome))
    return outcome[0].exit_code


def execute_pipeline() -> tuple[RunReport, object, list, str | None, float]:
    """Ingest what is new and redo what a change affects, on the instance at DAGSTER_HOME; the
    report with what `summarise` needs beside it (settings, ingestion requests, job, seconds)."""
    from ml_assets.data.assets import batch_partitions
    from ml_assets.definitions import defs as build_definitions
    from ml_assets.resources import PipelineResource
    from ml_assets.retraining.sensors import ingestion_requests

    started = time.perf_counter()
    definitions = build_definitions()
    settings = load_settings()
    _prepare_batches(settings)
    pipeline = PipelineResource()
    instance = open_instance()
    known = list(instance.get_dynamic_partitions(batch_partitions.name))
    new, requests = ingestion_requests(pipeline, known)
    if new:
        instance.add_dynamic_partitions(batch_partitions.name, new)
    report = RunReport()
    tags = {"ml_assets/trigger": "make_run"}
    for request in requests[:-1]:
        result = definitions.resolve_job_def("ingestion_job").execute_in_process(
            instance=instance,
            tags={**request.tags, **tags},
            run_config=LOG_CONFIG,
            raise_on_error=False,
        )
        report.absorb(result)
    if requests:
        job, run_tags = "ml_pipeline_job", {**requests[-1].tags, **tags}
    else:
        redo, verdicts = _what_to_redo(instance, pipeline, settings)
        job, run_tags = redo.job, {**tags, "ml_assets/redo_reason": redo.reason[:200]}
        report.redo_reason = redo.reason
        if job is None:
            report.blocked += [name for name, v in verdicts.items() if v == "failed"]
    if job:
        result = definitions.resolve_job_def(job).execute_in_process(
            instance=instance, tags=run_tags, run_config=LOG_CONFIG, raise_on_error=False
        )
        report.absorb(result)
    return report, settings, requests, job, time.perf_counter() - started


def _what_to_redo(instance, pipeline, settings):
    """With no batch to ingest: what the model's stages must redo (retraining/policy.py), and
    the promotion gates' latest verdicts."""
    from ml_assets.data.batches import locate_batches
    from ml_assets.data.ledger import plan_window
    from ml_assets.delivery.assets import gate_verdicts, staging_model
    from ml_assets.delivery.checks import STAGING_GATES
    from ml_assets.evaluation.assets import evaluation_report
    from ml_assets.retraining.policy import what_to_redo
    from ml_assets.retraining.sensors import latest_metadata
    from ml_assets.training.assets import candidate_model

    dataset = settings.dataset
    window = plan_window(
        pipeline.ledger_dir,
        locate_batches(dataset.features_dir, dataset.labels_dir),
        settings.training.window_days,
        BATCH_GATES,
    )
    candidate, evaluation, staged = (
        latest_metadata(instance, asset)
        for asset in (candidate_model, evaluation_report, staging_model)
    )
    verdicts = gate_verdicts(instance, STAGING_GATES)
    redo = what_to_redo(
        window_version=window.data_version,
        training_policy=settings.training_policy,
        evaluation_policy=settings.evaluation_policy,
        candidate=candidate and candidate[1],
        evaluation=evaluation and evaluation[1],
        verdicts=verdicts,
        staged_version=staged and staged[1].get("model_version"),
    )
    return redo, verdicts


def summarise(report: RunReport, settings, requests, job: str | None, seconds: float) -> str:
    lines = ["", "ml_assets run summary"]
    if not report.runs:
        lines.append(f"  everything is up to date: no new or changed batch; {report.redo_reason}")
        if report.blocked:
            lines.append(
                f"  it was kept off staging by {', '.join(sorted(report.blocked))} (unchanged "
                "since; the evaluation report says why)"
            )
    elif job == "training_job" and report.redo_reason:
        lines.append(f"  retrained: {report.redo_reason}")
    elif job == "evaluation_job":
        lines.append(f"  re-evaluated without retraining: {report.redo_reason}")
    mats, checks = report.materialized, report.checks
    ignored = mats.get("raw_batches", {}).get("ignored_files")
    if ignored:
        lines.append(f"  not read (named otherwise than YYYY-MM-DD.parquet or .csv): {ignored}")
    batch_gates = {n: c for n, c in checks.items() if "batches_checked" in c[1]}
    if batch_gates:
        judged = max(c[1]["batches_checked"] for c in batch_gates.values())

        # Per batch: a WARN gate's failure beyond a hard bound quarantines that batch alone.
        quarantined = sorted({d for _, meta, _ in batch_gates.values() for d in meta["quarantine"]})
        failed = {
            d
            for _, meta, _ in batch_gates.values()
            for d in str(meta.get("failed_days", "none")).split(", ")
            if d != "none"
        }
        flagged = sorted(failed - set(quarantined))
        where = f" ({', '.join(quarantined)} -> {settings.storage.data_dir / 'quarantine'})"
        lines.append(
            f"  batches ingested: {judged}, passed {judged - len(quarantined)}, "
            f"quarantined {len(quarantined)}"
            + (where if quarantined else "")
            + (f", flagged {len(flagged)}" if flagged else "")
        )
    if "training_dataset" in mats:
        meta = mats["training_dataset"]
        lines.append(
            f"  training window: {meta['window_start']}..{meta['window_end']} "
            f"({meta['batches']} batches, "
            f"{meta['rows']} rows, data version {meta['data_version']})"
        )
    if "candidate_model" in mats:
        meta = mats["candidate_model"]
        lines.append(
            f"  candidate: {settings.training.registered_model_name} v{meta['model_version']} "
            f"(MLflow run {meta['mlflow_run_id'][:12]}, "
            + ", ".join(f"{k} {v:.4f}" for k, v in meta.items() if k.startswith("valid_"))
            + ")"
        )
    for name, (passed, meta, description) in checks.items():
        if not passed and meta.get("failed_days"):
            held = sorted(meta.get("quarantine") or {})
            kept = [d for d in str(meta["failed_days"]).split(", ") if d not in held]
            action = ", ".join(
                part
                for part in (
                    f"quarantined {', '.join(held)}" if held else "",
                    f"flagged (WARN), still eligible: {', '.join(kept)}" if kept else "",
                )
                if part
            )
            lines.append(f"  gate {name}: FAIL on {meta['failed_days']} - {action}: {description}")
        elif name not in BATCH_GATES:  # a window, serving or evaluation gate: one verdict
            lines.append(f"  gate {name}: {'PASS' if passed else 'FAIL'} - {description}")
    if "evaluation_report" in mats:
        lines.append(f"  evaluation report: {mats['evaluation_report']['report']}")
    if "staging_model" in mats:
        meta = mats["staging_model"]
        lines.append(
            f"  alias staging: v{meta['previous_version']} -> v{meta['model_version']}".replace(
                "vnone", "none"
            )
        )
        lines.append(
            "  production does not move by itself: "
            f"make promote VERSION={meta['model_version']} APPROVER=<you>"
        )
    elif job in ("ml_pipeline_job", "training_job", "evaluation_job"):
        lines.append("  aliases: unchanged (a gate failed or training did not run)")
    if "drift_report" in mats:
        meta = mats["drift_report"]
        lines.append(
            f"  drift: batch {meta['batch']} drifted share {meta['drifted_share']:.3f} "
            f"(policy {meta['threshold']}), report {meta['report']}"
        )
    for error in report.errors:
        lines.append(f"  ERROR {error}")
    lines.append(
        f"  {len(report.runs)} Dagster run(s) in {seconds:.1f} s; see them with `make dev`"
    )
    outcome = {
        0: "every blocking gate passed",
        1: f"blocked by {', '.join(sorted(set(report.blocked)))}",
        2: "an error stopped the run (above)",
    }
    lines.append(f"  exit {report.exit_code}: {outcome[report.exit_code]}")
    return "\n".join(lines)


def run_delivery_job(
    job: str,
    op: str | None,
    config: dict | None,
    tags: dict[str, str],
    kind: str,
    partition: str | None = None,
) -> int:
    """Run one delivery job (approval, rollback, reconcile, scoring) in this process on the
    instance; print its outcome (the op's output, or each asset's materialization); exit 1 when
    the job refused (a dg.Failure), 2 on any other error."""

    from ml_assets.definitions import defs as build_definitions

    run_config: dict = {**LOG_CONFIG}
    if config is not None:
        run_config["ops"] = {op: {"config": config}}
    result = (
        build_definitions()
        .resolve_job_def(job)
        .execute_in_process(
            instance=open_instance(),
            run_config=run_config,
            tags=tags,
            partition_key=partition,
            raise_on_error=False,
        )
    )
    if not result.success:
        code = 1
        for event in result.all_events:
            if event.is_step_failure:
                error = raised_by_step(event.step_failure_data.error)
                # A dg.Failure is the job's own refusal (a gate, the approver, a changed model
                # file); anything else (the registry unreachable, say) is an error.
                refused = error.cls_name == "Failure"
                code = max(code, 1 if refused else 2)
                print(
                    f"{kind} {'refused' if refused else 'failed'}: {root_cause(error)}",
                    file=sys.stderr,
                )
        return code
    if op is not None:
        print(result.output_for_node(op))
        return 0
    shown = ("rows", "refused_by_contract", "canary_version", "canary_rows", "verdict", "reason")
    shown += ("canary_state", "action", "roc_auc", "sustained_breach")
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        figures = ", ".join(
            f"{key} {materialization.metadata[key].value}"
            for key in shown
            if key in materialization.metadata
        )
        print(f"{materialization.asset_key.to_user_string()} [{partition}]: {figures}")
    if not result.get_asset_materialization_events():
        print(f"batch {partition}: nothing scored (no version serves production yet)")
    return 0


def score(batch: str | None) -> int:
    """Score one batch through scoring_job: `batch`, or the newest batch that passed every
    blocking data gate (a quarantined or not yet judged batch is skipped, and named)."""

    from ml_assets.data.assets import batch_partitions
    from ml_assets.data.batches import BatchFileError, list_batch_files
    from ml_assets.settings import load_settings

    dataset = load_settings().dataset
    present = list_batch_files(dataset.features_dir)
    if not present:
        raise BatchFileError(f"no batch files in {dataset.features_dir}")
    batch = batch or _newest_passing(dataset, sorted(present, reverse=True))
    if batch not in present:
        raise BatchFileError(f"no batch file for {batch} in {dataset.features_dir}")
    instance = open_instance()
    if batch not in instance.get_dynamic_partitions(batch_partitions.name):
        instance.add_dynamic_partitions(batch_partitions.name, [batch])
    tags = {"ml_assets/trigger": "cli"}
    return run_delivery_job("scoring_job", None, None, tags, "scoring", partition=batch)


def _newest_passing(dataset, newest_first: list[str]) -> str:
    """The newest batch whose files passed every blocking data gate; each newer one is named on
    stderr with the reason it was skipped."""
    from ml_assets.data.batches import BatchFileError, locate_batch
    from ml_assets.data.ledger import batch_status
    from ml_assets.resources import PipelineResource

    ledger = PipelineResource().ledger_dir
    shown = 5
    for n, day in enumerate(newest_first):
        batch = locate_batch(dataset.features_dir, dataset.labels_dir, day)
        status = batch_status(ledger, batch, BATCH_GATES)
        if status.eligible:
            return day
        if n < shown:
            print(f"skipped batch {day}: {status.reason}", file=sys.stderr)
    more = len(newest_first) - shown
    raise BatchFileError(
        f"no batch in {dataset.features_dir} passed the data gates"
        + (f" ({more} more not shown)" if more > 0 else "")
        + "; `make run` judges them, or name one with BATCH=YYYY-MM-DD"
    )


def decide(version: str, approver: str, decision: str, reason: str) -> int:
    """Record one approval or rejection through approval_job; exit 1 when refused."""
    config = {"version": version, "approver": approver, "decision": decision, "reason": reason}
    tags = {"ml_assets/trigger": "human_approval", "ml_assets/approver": approver}
    kind = "approval" if decision == "approved" else "rejection"
    return run_delivery_job("approval_job", "record_decision", config, tags, kind)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ml_assets.cli.run", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command")
    for command, help_text in (
        ("approve", "approve a staged version; production moves once approvals suffice"),
        ("promote", "the same as approve"),
        ("reject", "reject a staged version (a reason is required)"),
    ):
        decision = sub.add_parser(command, help=help_text)
        decision.add_argument("--version", required=True)
        decision.add_argument("--approver", required=True)
        decision.add_argument("--reason", default="", required=command == "reject")
    rollback = sub.add_parser(
        "rollback", help="move production back to the version that served before the current one"
    )
    rollback.add_argument("--approver", required=True, help="who rolls back (on the allow-list)")
    rollback.add_argument("--reason", required=True)
    rollback.add_argument(
        "--from-version", default="", help="the version rolled back from (a safe retry)"
    )
    sub.add_parser("reconcile", help="bring the MLflow aliases to the desired state in deploy/")
    scoring = sub.add_parser(
        "score", help="score a batch with production and the canary; measure both on it"
    )
    scoring.add_argument("--batch", default=None, help="YYYY-MM-DD (default: the newest)")
    args = parser.parse_args(argv)
    import dagster as dg

    # The beta markers of backfill policies and dagster-mlflow are known and pinned; the
    # terminal of `make run` is for the summary.
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    from ml_assets.data.batches import BatchFileError
    from ml_assets.settings import SettingsError

    try:
        ensure_dagster_home()
        if args.command in ("approve", "promote", "reject"):
            decision = "rejected" if args.command == "reject" else "approved"
            return decide(args.version, args.approver, decision, args.reason)
        if args.command == "rollback":
            config = {
                "approver": args.approver,
                "reason": args.reason,
                "from_version": args.from_version,
            }
            tags = {"ml_assets/trigger": "rollback", "ml_assets/approver": args.approver}
            return run_delivery_job(
                "rollback_job", "roll_back_production", config, tags, "rollback"
            )
        if args.command == "score":
            return score(args.batch)
        if args.command == "reconcile":
            return run_delivery_job(
                "reconcile_job",
                "reconcile_aliases",
                None,
                {"ml_assets/trigger": "cli"},
                "reconcile",
            )
        return run_pipeline()
    except (SettingsError, BatchFileError, FileNotFoundError) as error:
        # A configuration or input problem: its message names the file or key; no trace.
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
