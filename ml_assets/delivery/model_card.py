"""A model version's card and lineage, from what MLflow and the audit log hold about it.

The card follows the Model Card Toolkit's sections (model details, intended use, training data,
parameters, quantitative analysis with slices and fairness, considerations and limitations)
and the parts of EU AI Act Annex IV a pipeline can fill itself (the data and its provenance,
the design choices, the validation and its results, human oversight: approvers and reasons,
the changes through the lifecycle: deployment events). What only people know (intended use,
out-of-scope uses, known limitations) comes from `delivery.model_card` in pipeline.yaml.
"""

from __future__ import annotations

import html
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml_assets.delivery.policy import ModelCardSettings
from ml_assets.evaluation.evidence import Evaluation

if TYPE_CHECKING:
    from mlflow import MlflowClient


@dataclass(frozen=True)
class VersionFacts:
    """Everything recorded about one model version."""

    model: str
    version: str
    run_id: str
    created_at: int
    tags: dict[str, str]
    params: dict[str, str]
    window: dict[str, Any]  # the training window's manifest (days, fingerprints, exclusions)
    evaluation: Evaluation | None
    events: list[dict] = field(default_factory=list)  # the version's audit events, in order


def _artifact_json(client: MlflowClient, run_id: str, path: str) -> dict | None:
    from mlflow.exceptions import MlflowException

    from ml_assets.training.registry import quiet_downloads

    with tempfile.TemporaryDirectory() as tmp, quiet_downloads():
        try:
            local = client.download_artifacts(run_id, path, tmp)
        except (MlflowException, OSError):
            return None  # a run logged before this artefact existed
        return json.loads(Path(local).read_text())


def version_facts(
    client: MlflowClient, model: str, version: str, events: list[dict]
) -> VersionFacts:
    """Gather the facts of `version` from the registry, its training run and `events` (the
    model's audit log)."""
    registered = client.get_model_version(model, version)
    run = client.get_run(registered.run_id)
    evaluation = _artifact_json(client, registered.run_id, "evaluation/evaluation.json")
    return VersionFacts(
        model=model,
        version=str(version),
        run_id=registered.run_id,
        created_at=registered.creation_timestamp,
        tags=dict(registered.tags),
        params=dict(run.data.params),
        window=_artifact_json(client, registered.run_id, "data/training_window.json") or {},
        evaluation=Evaluation.model_validate(evaluation) if evaluation else None,
        events=[e for e in events if e["version"] == str(version)],
    )


Section = tuple[str, list[str | list[list[str]]]]  # heading, paragraphs or tables (rows)
# A paragraph, or a table cell, that starts with this mark is highlighted in the HTML page.
FLAG = "⚠"

APPROVAL_EVENTS = ("approved", "rejected")
DEPLOYMENT_EVENTS = (
    "registered",
    "staged",
    "promoted",
    "rolled_back",
    "drift",
    "canary_passed",
    "canary_failed",
)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:.4f}"
    return str(value)


def card_sections(facts: VersionFacts, card: ModelCardSettings) -> list[Section]:
    """The card's sections, in the Model Card Toolkit's order."""
    tags, window, evaluation = facts.tags, facts.window, facts.evaluation
    import datetime as dt

    created = dt.datetime.fromtimestamp(facts.created_at / 1000, dt.UTC).isoformat(
        timespec="seconds"
    )
    sections: list[Section] = [
        (
            "Model details",
            [
                [
                    ["field", "value"],
                    ["model", facts.model],
                    ["version", facts.version],
                    ["registered", created],
                    ["format", "MLflow pyfunc from code: LightGBM text booster, data contract"],
                    ["model file sha256", tags.get("model_sha256", "unknown")],
                    ["MLflow training run", facts.run_id],
                    ["code commit", tags.get("code_version", "unknown")],
                ]
            ],
        ),
        (
            "Intended use",
            [card.intended_use, f"Out of scope: {card.out_of_scope}"],
        ),
    ]
    days = window.get("days", [])
    data: list[str | list[list[str]]] = [
        f"Data version {window.get('data_version', tags.get('data_version', 'unknown'))}: "
        f"{len(days)} daily batches"
        + (f", {days[0]} to {days[-1]}" if days else "")
        + ". Each batch file's content hash (features:labels, sha256):"
    ]
    fingerprints = window.get("fingerprints", {})
    data.append([["batch", "sha256 (features:labels)"]] + [[d, fingerprints[d]] for d in days])
    excluded = window.get("excluded", {})
    if excluded:
        data.append(
            "Excluded by a data gate: "
            + "; ".join(
                f"{d}: {', '.join(r) if isinstance(r, list) else r}" for d, r in excluded.items()
            )
        )
    warned = window.get("warned", {})
    if warned:
        data.append(f"Trained on, though a WARN data gate flagged them: {', '.join(warned)}")
    sections.append(("Training data", data))
    sections.append(
        (
            "Training parameters",
            [[["parameter", "value"]] + [[k, v] for k, v in sorted(facts.params.items())]],
        )
    )
    quantitative: list[str | list[list[str]]] = []
    if evaluation is not None:
        quantitative.append(
            f"On {evaluation.test_rows:,} test rows, decision threshold "
            f"{evaluation.decision_threshold:.3f} ({evaluation.threshold_rule}):"
        )
        champion = evaluation.champion.metrics if evaluation.champion else {}
        quantitative.append(
            [["metric", "candidate", "production at the time"]]
            + [
                [k, _fmt(v), _fmt(champion[k]) if k in champion else "none"]
                for k, v in sorted(evaluation.candidate.metrics.items())
            ]
        )
    verdicts = json.loads(tags.get("gate_verdicts", "{}"))
    quantitative.append("Every gate's verdict when the version was staged:")
    quantitative.append(
        [["gate", "verdict"]] + [[k, v] for k, v in sorted(verdicts.items())]
        if verdicts
        else [["gate", "verdict"], ["(none recorded)", "the version was not staged"]]
    )
    sections.append(("Evaluation", quantitative))
    fairness: list[str | list[list[str]]] = []
    if evaluation is not None:
        fairness.append(
            [["slice", "rows", "candidate ROC AUC", "production ROC AUC"]]
            + [
                [
                    f"{s.column}={s.value}",
                    str(s.rows),
                    _fmt(s.candidate_roc_auc),
                    _fmt(s.champion_roc_auc) if s.champion_roc_auc is not None else "none",
                ]
                for s in evaluation.slices
            ]
        )
        fair = evaluation.candidate.fairness
        fairness.append(
            [["sensitive column", "demographic parity difference", "equalized odds difference"]]
            + [
                [column, _fmt(f.demographic_parity_difference), _fmt(f.equalized_odds_difference)]
                for column, f in fair.items()
            ]
        )
    else:
        fairness.append("No evaluation was recorded for this version.")
    sections.append(("Slices and fairness", fairness))
    limitations: list[str | list[list[str]]] = [card.limitations]
    warned_gates = [k for k, v in verdicts.items() if v == "warned"]
    if warned_gates:
        limitations.append(f"Gates that warned at staging: {', '.join(sorted(warned_gates))}.")
    sections.append(("Limitations", limitations))
    approvals = [e for e in facts.events if e["event"] in APPROVAL_EVENTS]
    sections.append(
        (
            "Approvals",
            [
                [["when", "decision", "who", "roles", "reason"]]
                + [
                    [
                        e["at"],
                        e["event"],
                        e.get("approver", ""),
                        ", ".join(e.get("roles", [])),
                        e.get("reason", "") or "",
                    ]
                    for e in approvals
                ]
                if approvals
                else "No approval recorded yet."
            ],
        )
    )
    deployments = [e for e in facts.events if e["event"] in DEPLOYMENT_EVENTS]
    sections.append(
        (
            "Deployment events",
            [
                [["when", "event", "detail"]]
                + [[e["at"], e["event"], _event_detail(e)] for e in deployments]
            ],
        )
    )
    return sections


def _event_detail(event: dict) -> str:
    keys = ("alias", "approvers", "by", "previous", "reason", "action", "found", "environment")
    parts = []
    for key in keys:
        value = event.get(key)
        if value not in (None, "", []):
            parts.append(f"{key}: {', '.join(value) if isinstance(value, list) else value}")
    return "; ".join(parts)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(title: str, sections: list[Section]) -> str:
    lines = [f"# {title}", ""]
    for heading, parts in sections:
        lines += [f"## {heading}", ""]
        for part in parts:
            if isinstance(part, list):
                header, *rows = part
                lines.append("| " + " | ".join(map(_cell, header)) + " |")
                lines.append("|" + "---|" * len(header))
                lines += ["| " + " | ".join(map(_cell, row)) + " |" for row in rows]
            else:
                lines.append(part)
            lines.append("")
    return "\n".join(lines)


def to_html(title: str, sections: list[Section]) -> str:
    out = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;"
        "padding:.2em .5em;text-align:left;font-size:.9em}.flag{background:#fff1c2}"
        "</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for heading, parts in sections:
        out.append(f"<h2>{html.escape(heading)}</h2>")
        for part in parts:
            if isinstance(part, list):
                header, *rows = part
                out.append(
                    "<table><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
                )
                for row in rows:
                    cells = "".join(f"<td>{html.escape(str(c))}</td>" for c in row)
                    flagged = any(str(c).startswith(FLAG) for c in row)
                    out.append(f"<tr class='flag'>{cells}</tr>" if flagged else f"<tr>{cells}</tr>")
                out.append("</table>")
            else:
                flagged = " class='flag'" if part.startswith(FLAG) else ""
                out.append(f"<p{flagged}>{html.escape(part)}</p>")
    out.append("</body></html>")
    return "\n".join(out)


def write_pages(folder: Path, stem: str, title: str, sections: list[Section]) -> Path:
    """`folder/<stem>.md` and `.html` of the page; the markdown's path."""
    folder.mkdir(parents=True, exist_ok=True)
    markdown = folder / f"{stem}.md"
    markdown.write_text(to_markdown(title, sections))
    markdown.with_suffix(".html").write_text(to_html(title, sections))
    return markdown


def lineage(facts: VersionFacts) -> str:
    """The chain from a version's deployments back to its data files and code commit."""
    tags, window = facts.tags, facts.window
    lines = [f"{facts.model} v{facts.version}"]
    deployments = [e for e in facts.events if e["event"] in ("promoted", "rolled_back", "staged")]
    lines.append("  deployments:")
    for event in deployments or [{"at": "", "event": "none yet"}]:
        lines.append(f"    {event['at']} {event['event']} {_event_detail(event)}".rstrip())
    lines.append("  approvals:")
    approvals = [e for e in facts.events if e["event"] in APPROVAL_EVENTS]
    for event in approvals or [{"at": "", "event": "none yet"}]:
        who = event.get("approver", "")
        reason = event.get("reason", "")
        lines.append(f"    {event['at']} {event['event']} {who} {reason}".rstrip())
    verdicts = json.loads(tags.get("gate_verdicts", "{}"))
    lines.append(
        "  evaluation: "
        + (", ".join(f"{k} {v}" for k, v in sorted(verdicts.items())) or "no gate verdicts")
    )
    lines.append(
        f"  training run: {facts.run_id} (model file sha256 {tags.get('model_sha256', '?')})"
    )
    lines.append(f"  code commit: {tags.get('code_version', 'unknown')}")
    lines.append(f"  data version: {window.get('data_version', tags.get('data_version', '?'))}")
    for day in window.get("days", []):
        lines.append(f"    {day}: {window['fingerprints'][day]}")
    return "\n".join(lines)
