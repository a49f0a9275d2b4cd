"""Governance: gate hygiene from the instance's past asset-check evaluations."""

import math
from collections import Counter
from collections.abc import Iterable, Mapping

import dagster as dg

from ml_assets.assets.common import markdown_table
from ml_assets.core.gate_history import GateEvaluation, summarise_gate_history
from ml_assets.resources import PipelineResource

# The newest evaluations read per gate; older ones do not enter the summary.
HISTORY_LIMIT = 500
# Without a repository on the context, the gates are those among the newest evaluations of the
# instance: at most this many evaluation events are scanned for their check keys.
KEY_SCAN_LIMIT = 20_000
GATE_HISTORY_FILE = "gate_history"


def code_location_check_keys(repository: dg.RepositoryDefinition) -> set[dg.AssetCheckKey]:
    """Every asset check of the code location: standalone checks and checks inside assets."""
    keys = set(repository.asset_checks_defs_by_key)
    for assets_def in repository.assets_defs_by_key.values():
        keys.update(assets_def.check_keys)
    return keys


def instance_check_keys(
    instance: dg.DagsterInstance, limit: int = KEY_SCAN_LIMIT
) -> set[dg.AssetCheckKey]:
    """The checks with an evaluation among the newest `limit` evaluation events of the instance."""
    records = instance.get_event_records(
        dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION), limit=limit
    )
    keys = set()
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is not None:
            keys.add(event.event_specific_data.asset_check_key)
    return keys


def gates_to_summarise(
    context: dg.AssetExecutionContext,
) -> tuple[set[dg.AssetCheckKey], str]:
    """The checks to summarise, and where their list came from.

    Runs launched from a code location (`dagster dev`, the daemon, `dagster job execute`) carry
    its repository: every check it defines. In-process runs (`execute_in_process`, `materialize`,
    `make run`) carry none, and then the checks are those with evaluations on the instance.
    """
    from dagster._check import CheckError

    try:
        repository = context.repository_def
    except CheckError:  # "No repository definition was set on the step context"
        return instance_check_keys(context.instance), "instance history"
    return code_location_check_keys(repository), "code location"


def gate_names(keys: Iterable[dg.AssetCheckKey]) -> dict[dg.AssetCheckKey, str]:
    """A check's name, or `asset:check` when two assets have checks of the same name."""
    keys = list(keys)
    counts = Counter(key.name for key in keys)
    return {key: key.name if counts[key.name] == 1 else key.to_user_string() for key in keys}


def _number(metadata: Mapping[str, object], name: str) -> float | None:
    """A finite numeric metadata entry as a float, else None (booleans are not numbers)."""
    entry = metadata.get(name)
    value = getattr(entry, "value", entry)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def gate_evaluations(
    instance: dg.DagsterInstance,
    keys: Iterable[dg.AssetCheckKey],
    limit: int = HISTORY_LIMIT,
) -> list[GateEvaluation]:
    """The newest `limit` completed evaluations of each check, as GateEvaluation records.

    Executions that never produced an evaluation (planned, skipped, or the check raised) have no
    verdict and are left out.
    """
    from dagster._core.storage.asset_check_execution_record import (
        COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES,
    )

    names = gate_names(keys)
    evaluations = []
    for key, gate in names.items():
        records = instance.event_log_storage.get_asset_check_execution_history(
            key, limit=limit, status=COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES
        )
        for record in records:
            evaluation = record.evaluation
            if evaluation is None or record.event is None:
                continue
            metadata = evaluation.metadata or {}
            evaluations.append(
                GateEvaluation(
                    gate=gate,
                    passed=bool(evaluation.passed),
                    severity=evaluation.severity.value,
                    margin=_number(metadata, "margin"),
                    value=_number(metadata, "value"),
                    threshold=_number(metadata, "threshold"),
                    timestamp=record.event.timestamp,
                )
            )
    return evaluations


@dg.asset(group_name="governance")
def gate_history(
    context: dg.AssetExecutionContext, pipeline: PipelineResource
) -> dg.MaterializeResult:
    """Each gate's runs, failures and nearness to its threshold, flagging gates to review."""
    keys, source = gates_to_summarise(context)
    evaluations = gate_evaluations(context.instance, keys)
    summary = summarise_gate_history(evaluations)
    folder = pipeline.reports_dir / "gates"
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / f"{GATE_HISTORY_FILE}.csv"
    summary.to_csv(csv_path, index=False)
    table = summary.to_markdown(index=False) if not summary.empty else "(no gate evaluations yet)"
    (folder / f"{GATE_HISTORY_FILE}.md").write_text(table + "\n")
    flagged = int((summary["flag"] != "").sum())
    context.log.info(
        f"{len(summary)} gate(s) with history ({len(keys)} from the {source}), "
        f"{len(evaluations)} evaluation(s), {flagged} flagged"
    )
    return dg.MaterializeResult(
        metadata={
            "gates": len(summary),
            "flagged": flagged,
            "evaluations": len(evaluations),
            "gates_from": source,
            "summary": markdown_table(summary, max_rows=100),
            "csv": dg.MetadataValue.path(str(csv_path)),
        }
    )


gate_history_job = dg.define_asset_job("gate_history_job", selection=[gate_history])
