"""Known answers for the approval request page (delivery/approval_request): which anomalies it
flags, and that the HTML highlights them. The page's wiring (written at staging, refreshed by
the canary and by each decision, linked from staging_model) is in test_delivery_canary.py."""

from __future__ import annotations

import datetime as dt

from ml_assets.delivery.approval import Request
from ml_assets.delivery.approval_request import (
    approval_page,
    canary_anomalies,
    gate_anomalies,
    metric_anomalies,
    slice_anomalies,
)
from ml_assets.delivery.canary import Measurement, canary_state
from ml_assets.delivery.model_card import to_html, to_markdown
from ml_assets.delivery.policy import ApprovalSettings, CanarySettings
from ml_assets.evaluation.evidence import SliceEvidence
from ml_assets.evaluation.gates import GateDecision
from ml_assets_tests.test_core_evaluation import _tiny_evaluation


def _with_champion(candidate: dict, champion: dict):
    e = _tiny_evaluation()
    return e.model_copy(
        update={
            "candidate": e.candidate.model_copy(update={"metrics": candidate}),
            "champion": e.candidate.model_copy(update={"version": "1", "metrics": champion}),
        }
    )


def test_only_judged_metrics_worse_than_the_champion_are_anomalies():
    e = _with_champion(
        {"roc_auc": 0.80, "log_loss": 0.30, "brier": 0.12, "rows": 100.0},
        {"roc_auc": 0.81, "log_loss": 0.31, "brier": 0.10, "rows": 500.0},
    )
    assert metric_anomalies(e) == [
        "brier is worse than the champion's (v1) by 0.02: 0.12 against 0.1",
        "roc_auc is worse than the champion's (v1) by 0.01: 0.8 against 0.81",
    ]
    assert metric_anomalies(_tiny_evaluation()) == []  # no champion, nothing to compare


def test_a_slice_is_an_anomaly_only_when_its_drop_is_significant():
    def piece(value: str, low: float) -> SliceEvidence:
        return SliceEvidence(
            column="region",
            value=value,
            rows=900,
            positives=90,
            candidate_roc_auc=0.70,
            champion_roc_auc=0.74,
            drop_low=low,
            drop_high=low + 0.05,
        )

    e = _tiny_evaluation().model_copy(
        update={"slices": [piece("north", 0.01), piece("south", -0.01)]}
    )
    assert slice_anomalies(e) == [
        "slice region=north (900 rows): ROC AUC 0.7 against the champion's 0.74, a significant "
        "drop (at least 0.01)"
    ]


def _decision(name: str, margin: float) -> GateDecision:
    return GateDecision(name, True, 0.72, 0.7, None, margin, "crafted")


def test_warned_failed_and_tight_gates_are_anomalies_and_roomy_ones_are_not():
    decisions = {n: _decision(n, m) for n, m in (("a", -0.2), ("b", 0.05), ("c", 0.5))}
    verdicts = {"a": "warned", "b": "passed", "c": "passed", "d": "never ran"}
    assert gate_anomalies(decisions, verdicts, tight_margin=0.1) == [
        "a failed at WARN severity (it does not block): crafted",
        "b passed with little room: margin 0.05 (value 0.72 against threshold 0.7)",
        "d: never ran",
    ]
    assert gate_anomalies(decisions, {"b": "passed"}, tight_margin=0.0) == []


def _measurement(batch: str, verdict: str) -> Measurement:
    return Measurement(batch, "2", "1", 0.1, 150, 0, verdict, f"crafted {verdict}")


def test_the_canary_is_an_anomaly_until_it_passes_and_only_when_one_is_needed():
    policy = CanarySettings(steps=[0.1, 0.5])
    assert canary_anomalies(None, [], needed=False) == []
    assert canary_anomalies(None, [], needed=True) == [
        "no canary measurement yet: the candidate has not scored a batch beside production"
    ]
    held = [_measurement("2026-01-05", "pass"), _measurement("2026-01-06", "inconclusive")]
    assert canary_anomalies(canary_state(held, policy), held, needed=True) == [
        "the canary is held: batch 2026-01-06 inconclusive: crafted inconclusive; held for a "
        "person",
        "canary batch 2026-01-06 was inconclusive: crafted inconclusive",
    ]
    passed = [_measurement("2026-01-05", "pass"), _measurement("2026-01-06", "pass")]
    assert canary_anomalies(canary_state(passed, policy), passed, needed=True) == []


def test_the_page_puts_anomalies_first_and_the_html_highlights_them():
    e = _with_champion({"roc_auc": 0.80}, {"roc_auc": 0.81})
    opened = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    request = Request("3", opened, ("ana",), None, False, ("an approver with the 'ops' role",))
    page = approval_page(
        e,
        {"g": _decision("g", 0.5)},
        {"g": "passed"},
        request,
        ApprovalSettings(required_approvals=1),
        None,
        [],
        serving="1",
    )
    assert page.title == "Approval request: m v3"
    assert page.anomalies == [
        "roc_auc is worse than the champion's (v1) by 0.01: 0.8 against 0.81",
        "no canary measurement yet: the candidate has not scored a batch beside production",
    ]
    assert page.sections[0][0] == "Anomalies"
    markdown = to_markdown(page.title, page.sections)
    assert markdown.index("## Anomalies") < markdown.index("## Candidate against champion")
    assert "| still needed | an approver with the 'ops' role |" in markdown
    assert "| roc_auc | 0.8 | 0.81 | -0.01 | higher is better | ⚠ worse |" in markdown
    html = to_html(page.title, page.sections)
    assert "<p class='flag'>⚠ roc_auc is worse" in html
    assert "<tr class='flag'><td>roc_auc</td>" in html
    assert "<tr><td>g</td><td>passed</td>" in html  # a roomy pass is not highlighted
