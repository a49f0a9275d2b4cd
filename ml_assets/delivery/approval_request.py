"""A staged version's approval request: one page with what a reviewer needs to decide.

The candidate against the champion (the evaluation's comparison, metric by metric, and the
slices), every gate's verdict with its margin, the readiness checks and the canary's
measurements so far, and, first, the anomalies: what a careful reviewer would otherwise have to
find by reading every table. An anomaly is not a gate failure (a version that failed a gate is
not staged); it is what passed but deserves a look:

- a gate that only warned (its severity is WARN), or that passed with a margin below
  `delivery.approval.tight_margin` (the gate's distance to its threshold, in the gate's own
  scale: see evaluation/gates.Criterion);
- a metric worse than the champion's, even within the champion gate's allowance;
- a slice whose ROC AUC dropped against the champion's by a significant amount (the lower bound
  of the drop above zero), even within the slice gate's allowance;
- batches of the training window that a WARN data gate flagged;
- a canary that has not passed yet, and each failed or inconclusive canary measurement.

The page is built from the same evidence and decisions the gates used (evaluation.json,
evaluation/gates.decide_all, the canary's measurements); nothing is judged a second time here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ml_assets.delivery.canary import PASS, PASSED
from ml_assets.delivery.model_card import FLAG, Section
from ml_assets.evaluation.policy import GATE_METRICS, LOWER_IS_BETTER

if TYPE_CHECKING:
    from ml_assets.delivery.approval import Request
    from ml_assets.delivery.canary import CanaryState, Measurement
    from ml_assets.delivery.policy import ApprovalSettings
    from ml_assets.evaluation.evidence import Evaluation, SliceEvidence
    from ml_assets.evaluation.gates import GateDecision


@dataclass(frozen=True)
class ApprovalPage:
    title: str
    anomalies: list[str]
    sections: list[Section]


def _num(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}g}"


def _worse_by(metric: str, candidate: float, champion: float) -> float:
    """How much worse the candidate is than the champion on `metric` (<= 0: not worse)."""
    return candidate - champion if metric in LOWER_IS_BETTER else champion - candidate


def _tight(decision: GateDecision | None, verdict: str, tight_margin: float) -> bool:
    """A gate that passed within `tight_margin` of its threshold."""
    return verdict == "passed" and decision is not None and 0 <= decision.margin < tight_margin


def _significant_drop(s: SliceEvidence) -> bool:
    """A slice whose ROC AUC drop against the champion has its lower bound above zero."""
    return s.champion_roc_auc is not None and s.drop_low is not None and s.drop_low > 0


def metric_anomalies(evaluation: Evaluation) -> list[str]:
    """Metrics on which the candidate is worse than the champion, on the same test rows."""
    if evaluation.champion is None:
        return []
    mine, theirs = evaluation.candidate.metrics, evaluation.champion.metrics
    out = []
    for metric in sorted(set(mine) & set(theirs) & GATE_METRICS):
        worse = _worse_by(metric, mine[metric], theirs[metric])
        if worse > 0:
            out.append(
                f"{metric} is worse than the champion's (v{evaluation.champion.version}) by "
                f"{_num(worse, 3)}: {_num(mine[metric])} against {_num(theirs[metric])}"
            )
    return out


def slice_anomalies(evaluation: Evaluation) -> list[str]:
    """Slices whose ROC AUC dropped significantly against the champion's."""
    return [
        f"slice {s.column}={s.value} ({s.rows} rows): ROC AUC {_num(s.candidate_roc_auc)} "
        f"against the champion's {_num(s.champion_roc_auc)}, a significant drop "
        f"(at least {_num(s.drop_low, 3)})"
        for s in evaluation.slices
        if _significant_drop(s)
    ]


def gate_anomalies(
    decisions: Mapping[str, GateDecision], verdicts: Mapping[str, str], tight_margin: float
) -> list[str]:
    """Gates that warned, did not pass, or passed with little room."""
    out = []
    for name, verdict in sorted(verdicts.items()):
        decision = decisions.get(name)
        if verdict == "warned":
            reason = f": {decision.reason}" if decision is not None else ""
            out.append(f"{name} failed at WARN severity (it does not block){reason}")
        elif verdict != "passed":
            out.append(f"{name}: {verdict}")
        elif _tight(decision, verdict, tight_margin):
            out.append(
                f"{name} passed with little room: margin {_num(decision.margin, 2)} "
                f"(value {_num(decision.value)} against threshold {_num(decision.threshold)})"
            )
    return out


def canary_anomalies(
    state: CanaryState | None, measurements: Sequence[Measurement], needed: bool
) -> list[str]:
    """A canary that has not passed, and its measurements that did not pass."""
    if state is None:
        return (
            ["no canary measurement yet: the candidate has not scored a batch beside production"]
            if needed
            else []
        )
    out = []
    if state.status != PASSED:
        out.append(f"the canary is {state.status}: {state.reason}")
    out += [
        f"canary batch {m.batch} was {m.verdict}: {m.reason}"
        for m in measurements
        if m.verdict != PASS
    ]
    return out


def approval_page(
    evaluation: Evaluation,
    decisions: Mapping[str, GateDecision],
    verdicts: Mapping[str, str],
    request: Request,
    policy: ApprovalSettings,
    canary: CanaryState | None,
    measurements: Sequence[Measurement],
    serving: str | None,
) -> ApprovalPage:
    """The request page of the evaluated candidate (`verdicts`: every staging gate's verdict;
    `decisions`: the evaluation gates' decisions, for their margins; `serving`: the version in
    production now, None when none serves: the first version needs no canary)."""
    candidate, champion = evaluation.candidate, evaluation.champion
    flagged = evaluation.flagged_batches
    anomalies = [
        *gate_anomalies(decisions, verdicts, policy.tight_margin),
        *metric_anomalies(evaluation),
        *slice_anomalies(evaluation),
        *(
            [
                f"{len(flagged)} batch(es) of the training window were flagged by WARN data "
                f"gates: {', '.join(sorted(flagged)[:5])}" + (" ..." if len(flagged) > 5 else "")
            ]
            if flagged
            else []
        ),
        *canary_anomalies(canary, measurements, serving is not None),
    ]
    opened = request.opened_at.isoformat(timespec="seconds") if request.opened_at else "never"
    decision_rows = [
        ["field", "value"],
        ["candidate", f"{evaluation.model} v{candidate.version}"],
        ["serving production now", f"v{serving}" if serving else "none"],
        ["champion at evaluation", f"v{champion.version}" if champion else "none"],
        ["staged at", opened],
        ["expires after", f"{policy.expires_after_hours:g} h"],
        [
            "approvals",
            f"{len(request.approvers)} of {policy.required_approvals}"
            + (f" ({', '.join(request.approvers)})" if request.approvers else ""),
        ],
        ["required roles", ", ".join(policy.required_roles) or "none"],
        ["still needed", "; ".join(request.missing) or "nothing: approved"],
    ]
    sections: list[Section] = [
        (
            "Anomalies",
            [f"{FLAG} {a}" for a in anomalies]
            or ["None found: every gate passed with room, no metric regressed, the canary passed."],
        ),
        (
            "Decision asked",
            [
                decision_rows,
                f"Approve: `make approve VERSION={candidate.version} APPROVER=<you> "
                f"REASON='...'`; reject: `make reject VERSION={candidate.version} "
                "APPROVER=<you> REASON='...'` (or approval_job from the Dagster launchpad).",
            ],
        ),
        ("Candidate against champion", [_metric_table(evaluation)]),
        ("Gates", [_gate_table(decisions, verdicts, policy.tight_margin)]),
        ("Slices", [_slice_table(evaluation)]),
        ("Canary", _canary_parts(canary, measurements, serving is not None)),
    ]
    return ApprovalPage(
        title=f"Approval request: {evaluation.model} v{candidate.version}",
        anomalies=anomalies,
        sections=sections,
    )


def _metric_table(evaluation: Evaluation) -> list[list[str]]:
    candidate, champion = evaluation.candidate, evaluation.champion
    rows = [["metric", "candidate", "champion", "difference", "direction", "flag"]]
    # The metrics the gates judge first, then the descriptive ones (rates, rows).
    ordered = sorted(candidate.metrics, key=lambda m: (m not in GATE_METRICS, m))
    for metric in ordered:
        mine = candidate.metrics[metric]
        theirs = champion.metrics.get(metric) if champion else None
        judged = metric in GATE_METRICS
        worse = _worse_by(metric, mine, theirs) if theirs is not None and judged else None
        direction = "lower is better" if metric in LOWER_IS_BETTER else "higher is better"
        rows.append(
            [
                metric,
                _num(mine),
                _num(theirs),
                _num(mine - theirs, 3) if theirs is not None else "-",
                direction if judged else "descriptive",
                f"{FLAG} worse" if worse is not None and worse > 0 else "",
            ]
        )
    comparison = evaluation.comparison
    if comparison is not None:
        b = comparison.bootstrap
        rows.append(
            [
                "ROC AUC gain (paired bootstrap)",
                _num(b.difference, 3),
                "-",
                f"{b.confidence:.0%} interval [{_num(b.low, 3)}, {_num(b.high, 3)}]",
                "higher is better",
                f"{FLAG} may be worse" if b.low < 0 else "",
            ]
        )
    return rows


def _gate_table(
    decisions: Mapping[str, GateDecision], verdicts: Mapping[str, str], tight_margin: float
) -> list[list[str]]:
    rows = [["gate", "verdict", "value", "threshold", "champion", "margin", "flag"]]
    for name, verdict in sorted(verdicts.items()):
        d = decisions.get(name)
        tight = _tight(d, verdict, tight_margin)
        flag = f"{FLAG} {verdict}" if verdict != "passed" else (f"{FLAG} tight" if tight else "")
        rows.append(
            [
                name,
                verdict,
                _num(d.value) if d else "-",
                _num(d.threshold) if d else "-",
                _num(d.reference) if d else "-",
                _num(d.margin, 2) if d and math.isfinite(d.margin) else "-",
                flag,
            ]
        )
    return rows


def _slice_table(evaluation: Evaluation) -> list[list[str]]:
    rows = [["slice", "rows", "candidate ROC AUC", "champion ROC AUC", "drop interval", "flag"]]
    for s in evaluation.slices:
        significant = _significant_drop(s)
        rows.append(
            [
                f"{s.column}={s.value}",
                str(s.rows),
                _num(s.candidate_roc_auc),
                _num(s.champion_roc_auc),
                f"[{_num(s.drop_low, 3)}, {_num(s.drop_high, 3)}]"
                if s.drop_low is not None
                else "-",
                f"{FLAG} significant drop" if significant else "",
            ]
        )
    return rows


def _canary_parts(
    state: CanaryState | None, measurements: Sequence[Measurement], needed: bool
) -> list[str | list[list[str]]]:
    if state is None:
        return [f"{FLAG} No measurement yet."] if needed else ["None needed: no version serves."]
    rows = [["batch", "share", "rows", "labelled", "verdict", "reason", "flag"]]
    for m in measurements:
        rows.append(
            [
                m.batch,
                f"{m.share:.0%}",
                str(m.rows),
                str(m.labelled_rows),
                m.verdict,
                m.reason,
                f"{FLAG} {m.verdict}" if m.verdict != PASS else "",
            ]
        )
    return [
        f"Status: {state.status} after {state.measurements} measurement(s), "
        f"{state.failures} failure(s); next share {state.share:.0%}. {state.reason}",
        rows,
    ]
