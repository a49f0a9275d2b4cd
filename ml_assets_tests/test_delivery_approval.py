"""The approval gate: the allow-list, the two-person rule, rejection, expiry, idempotence."""

import datetime as dt

import dagster as dg
import pytest

from ml_assets.delivery.approval import Refused, check_decision, request_state
from ml_assets.delivery.policy import ApprovalSettings
from ml_assets.training.registry import read_audit, verify_audit, version_for_alias
from ml_assets_tests.conftest import copy_project, decide

T0 = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
TEAM = {"ana": {"roles": ["data_science"]}, "olu": {"roles": ["operations"]}}
TWO_PERSON = ApprovalSettings(
    approvers=TEAM, required_approvals=2, required_roles=["operations"], expires_after_hours=24
)


def _event(event, minutes, version="3", **fields):
    at = (T0 + dt.timedelta(minutes=minutes)).isoformat(timespec="seconds")
    return {"event": event, "version": version, "at": at, **fields}


def test_two_person_rule_needs_two_different_approvers_one_from_operations():
    staged = [_event("staged", 0)]
    assert not request_state(staged, "3", TWO_PERSON, T0).approved
    twice = [*staged, _event("approved", 1, approver="ana"), _event("approved", 2, approver="ana")]
    request = request_state(twice, "3", TWO_PERSON, T0)
    assert request.approvers == ("ana",) and not request.approved
    assert request.missing == (
        "1 more approval(s) from different approvers (1 of 2)",
        "an approver with the 'operations' role",
    )
    both = [*twice, _event("approved", 3, approver="olu")]
    assert request_state(both, "3", TWO_PERSON, T0).approved
    # An approval of an earlier staging does not count for the new request.
    restaged = [*both, _event("staged", 10)]
    assert request_state(restaged, "3", TWO_PERSON, T0).approvers == ()


def test_rejection_and_expiry_close_the_request():
    events = [_event("staged", 0), _event("rejected", 5, approver="olu", reason="slice drop")]
    request = request_state(events, "3", TWO_PERSON, T0)
    assert not request.approved and "rejected by olu: slice drop" in request.missing
    with pytest.raises(Refused, match="was rejected by olu"):
        check_decision(request, "ana", "approved", "", TWO_PERSON)
    late = request_state([_event("staged", 0)], "3", TWO_PERSON, T0 + dt.timedelta(hours=25))
    assert late.expired
    with pytest.raises(Refused, match="expired"):
        check_decision(late, "olu", "approved", "", TWO_PERSON)


def test_decisions_the_policy_refuses():
    request = request_state([_event("staged", 0)], "3", TWO_PERSON, T0)
    with pytest.raises(Refused, match="'mallory' is not on the approver list"):
        check_decision(request, "mallory", "approved", "", TWO_PERSON)
    with pytest.raises(Refused, match="a rejection needs a reason"):
        check_decision(request, "ana", "rejected", " ", TWO_PERSON)
    never = request_state([], "3", TWO_PERSON, T0)
    with pytest.raises(Refused, match="never reached staging"):
        check_decision(never, "ana", "approved", "", TWO_PERSON)
    with pytest.raises(ValueError, match="held by no approver"):
        ApprovalSettings(approvers={"ana": {"roles": []}}, required_roles=["operations"])


def _production_materializations(instance):
    return instance.fetch_materializations(dg.AssetKey("production_model"), limit=10).records


def _pair(trained_pair_root, tmp_path, **approval):
    """The session's trained pair (v1 in production, v2 staged), copied, under `approval`; the
    canary has its own tests, so approving v2 does not wait for one here."""
    return copy_project(
        trained_pair_root,
        tmp_path / "p",
        approval={"approvers": TEAM, **approval},
        canary={"required_for_approval": False},
    )


def test_approval_job_moves_production_only_when_the_policy_is_met(
    trained_pair_root, tmp_path, instance
):
    project = _pair(trained_pair_root, tmp_path, **TWO_PERSON.model_dump(exclude={"approvers"}))
    client, name = project.pipeline.mlflow_client(), project.settings.training.registered_model_name

    def production():
        held = version_for_alias(client, name, "production")
        return str(held.version) if held else None

    def events():
        return [e["event"] for e in read_audit(project.pipeline.audit_dir, name, "2")]

    stranger = decide(project, instance, "2", "mallory")
    assert not stranger.success and production() == "1"
    assert not _production_materializations(instance)  # the asset shows no failed move
    first = decide(project, instance, "2", "ana")
    assert first.success and production() == "1"
    assert "needs: " in first.output_for_node("record_decision")
    assert decide(project, instance, "2", "ana").success  # twice: nothing changes
    assert events() == ["registered", "staged", "approved"]
    second = decide(project, instance, "2", "olu", reason="ops review")
    assert second.success and production() == "2"
    (moved,) = _production_materializations(instance)
    assert moved.asset_materialization.metadata["approvers"].value == "ana, olu"
    assert decide(project, instance, "2", "olu").success  # already serving: nothing changes
    assert events() == ["registered", "staged", "approved", "approved", "promoted"]
    assert client.get_model_version(name, "2").tags["approved_by"] == "ana, olu"
    # A rejection closes the request: later approvals are refused; production keeps serving.
    assert not decide(project, instance, "2", "ana", decision="rejected").success  # no reason
    assert decide(project, instance, "2", "olu", decision="rejected", reason="incident").success
    refused = decide(project, instance, "2", "ana")
    assert not refused.success and production() == "2"
    assert len(_production_materializations(instance)) == 1
    assert verify_audit(project.pipeline.audit_dir, name) == []


def test_an_expired_request_is_refused(trained_pair_root, tmp_path, instance):
    # v2 was staged when the pair was built, longer ago than 0.36 s.
    project = _pair(trained_pair_root, tmp_path, expires_after_hours=0.0001)
    expired = decide(project, instance, "2", "ana")
    assert not expired.success
    failure = next(e for e in expired.all_events if e.is_step_failure)
    assert "the request expired" in failure.step_failure_data.error.message
    name = project.settings.training.registered_model_name
    held = version_for_alias(project.pipeline.mlflow_client(), name, "production")
    assert str(held.version) == "1"  # production keeps serving v1
