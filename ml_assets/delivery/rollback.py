"""Rollback: which version served before the current one, and the post-incident review.

Both read the model's audit log (training/registry.append_audit): `promoted` events push a
version onto production's history and `rolled back` events pop it, so rolling back twice walks
back two promotions, never forward again.
"""

from __future__ import annotations

from collections.abc import Sequence

PROMOTED_EVENT, ROLLED_BACK_EVENT = "promoted", "rolled_back"


def production_history(events: Sequence[dict]) -> list[str]:
    """The versions production served, oldest first, as the audit log's promotions and
    rollbacks leave them (the last is the one serving)."""
    history: list[str] = []
    for event in events:
        if event["event"] == PROMOTED_EVENT and (not history or history[-1] != event["version"]):
            history.append(event["version"])
        elif event["event"] == ROLLED_BACK_EVENT:
            while history and history[-1] != event["version"]:
                history.pop()
            if not history:
                history.append(event["version"])
    return history


def rollback_target(events: Sequence[dict], serving: str | None) -> str | None:
    """The version to roll production back to from `serving`: the one that served before it
    was promoted. None when there is none (the first version ever promoted)."""
    history = production_history(events)
    if serving is None or not history or history[-1] != serving:
        # The audit log does not show `serving` on top (the alias was moved by hand, or the log
        # started after it): take the newest earlier promotion that is not `serving`.
        earlier = [v for v in history if v != serving]
        return earlier[-1] if earlier else None
    return history[-2] if len(history) > 1 else None


QUESTIONS = (
    "What happened? (the symptom users or monitors saw, and when it started)",
    "What did the gates miss? (which gate passed that should have failed, or which check did "
    "not exist)",
    "What would have caught it? (a new gate, slice, behaviour case, canary criterion or "
    "monitor, and who adds it)",
    "Was the rollback fast and clean enough? (time to detect, time to roll back)",
    "Action items, with owners and dates.",
)


def incident_review(
    *,
    model: str,
    rolled_back: str,
    restored: str,
    who: str,
    at: str,
    reason: str,
    automatic: bool,
    gate_verdicts: dict[str, str],
    events: Sequence[dict],
    evidence: dict[str, object] | None = None,
) -> str:
    """The post-incident review's markdown: what is known at rollback time, and the questions
    the team answers afterwards."""
    lines = [
        f"# Post-incident review: {model} v{rolled_back} rolled back to v{restored}",
        "",
        f"- **When**: {at}",
        f"- **Who**: {who}{' (automatic rollback)' if automatic else ''}",
        f"- **Why**: {reason}",
        f"- **Serving now**: v{restored}",
        "",
        "## Evidence at rollback time",
        "",
    ]
    for key, value in (evidence or {}).items():
        lines.append(f"- {key}: {value}")
    lines += ["", f"### v{rolled_back}'s gate verdicts when it was staged", ""]
    if gate_verdicts:
        lines += ["| gate | verdict |", "|---|---|"]
        lines += [f"| {name} | {verdict} |" for name, verdict in sorted(gate_verdicts.items())]
    else:
        lines.append("No gate verdicts were recorded on the version.")
    lines += ["", f"### v{rolled_back}'s history (audit log)", ""]
    mine = [e for e in events if e["version"] == rolled_back]
    for event in mine:
        detail = ", ".join(
            f"{k}={v}"
            for k, v in event.items()
            if k in ("approver", "approvers", "reason", "alias", "previous", "by") and v
        )
        lines.append(f"- {event['at']} {event['event']}{': ' + detail if detail else ''}")
    lines += ["", "## Questions to answer", ""]
    lines += [f"{number}. {question}\n   - " for number, question in enumerate(QUESTIONS, 1)]
    return "\n".join(lines) + "\n"
