"""The approval gate: who may approve a staged version, and when production may move.

The decisions live in the model's audit log (training/registry.append_audit): a version's
request opens when it is staged and lapses after `expires_after_hours`; an approval counts once
per approver within the open request; one rejection closes the request. Everything here reads
those events and the policy; nothing moves an alias.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from ml_assets.delivery.policy import ApprovalSettings

STAGED, APPROVED, REJECTED, PROMOTED = "staged", "approved", "rejected", "promoted"


class Refused(Exception):
    """An approval or rejection that the policy does not allow; the message says why."""


@dataclass(frozen=True)
class Request:
    """The state of a version's approval request."""

    version: str
    opened_at: dt.datetime | None  # the latest staging, None when the version never reached it
    approvers: tuple[str, ...]  # distinct, in the order they approved
    rejected: dict | None  # the rejection that closed the request
    expired: bool
    missing: tuple[str, ...]  # what production still needs, in words; empty when approved

    @property
    def approved(self) -> bool:
        return self.opened_at is not None and not self.expired and not self.missing


def _at(event: dict) -> dt.datetime:
    return dt.datetime.fromisoformat(event["at"])


def request_state(
    events: Sequence[dict], version: str, policy: ApprovalSettings, now: dt.datetime
) -> Request:
    """The request of `version` from its audit events (oldest first) at time `now`."""
    mine = [e for e in events if e["version"] == str(version)]
    staged = [e for e in mine if e["event"] == STAGED]
    if not staged:
        return Request(str(version), None, (), None, False, ("the version never reached staging",))
    opened = _at(staged[-1])
    current = [e for e in mine if _at(e) >= opened]
    rejected = next((e for e in current if e["event"] == REJECTED), None)
    approvers: list[str] = []
    for event in current:
        if event["event"] == APPROVED and event["approver"] not in approvers:
            approvers.append(event["approver"])
    expired = now - opened > dt.timedelta(hours=policy.expires_after_hours)
    missing = []
    if rejected is not None:
        missing.append(f"rejected by {rejected['approver']}: {rejected.get('reason', '')}")
    if expired:
        missing.append(
            f"the request expired ({policy.expires_after_hours:g} h after staging at "
            f"{opened.isoformat()}); stage the version again to renew it"
        )
    short = policy.required_approvals - len(approvers)
    if short > 0:
        missing.append(
            f"{short} more approval(s) from different approvers "
            f"({len(approvers)} of {policy.required_approvals})"
        )
    roles = {r for name in approvers for r in _roles(policy, name)}
    for role in policy.required_roles:
        if role not in roles:
            missing.append(f"an approver with the {role!r} role")
    return Request(str(version), opened, tuple(approvers), rejected, expired, tuple(missing))


def _roles(policy: ApprovalSettings, name: str) -> list[str]:
    approver = policy.approvers.get(name)
    return approver.roles if approver else []


def check_decision(
    request: Request, approver: str, decision: str, reason: str, policy: ApprovalSettings
) -> None:
    """Raise Refused when `approver` may not record `decision` on this request."""
    if decision not in (APPROVED, REJECTED):
        raise Refused(f"decision must be {APPROVED!r} or {REJECTED!r}, got {decision!r}")
    if approver not in policy.approvers:
        known = ", ".join(sorted(policy.approvers)) or "none"
        raise Refused(
            f"{approver!r} is not on the approver list (delivery.approval.approvers in "
            f"pipeline.yaml; listed: {known})"
        )
    if decision == REJECTED and not reason.strip():
        raise Refused("a rejection needs a reason")
    if request.opened_at is None:
        raise Refused(f"v{request.version} never reached staging: nothing to approve")
    if request.rejected is not None:
        raise Refused(
            f"v{request.version} was rejected by {request.rejected['approver']} at "
            f"{request.rejected['at']}: {request.rejected.get('reason', '')}"
        )
    if request.expired:
        raise Refused(next(m for m in request.missing if m.startswith("the request expired")))
