"""The delivery stage's policy: the aliases that name each environment, and who may approve."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from ml_assets.data.policy import StrictModel


class Approver(StrictModel):
    roles: list[str] = Field(default_factory=list)


class ApprovalSettings(StrictModel):
    """Level 1: production moves when enough people on the allow-list approved the version."""

    # The allow-list: name -> roles. Empty refuses everyone (fail closed): a fork names its own.
    approvers: dict[str, Approver] = Field(default_factory=dict)
    # Distinct approvers production needs; "two-person" is 2 with required_roles [operations].
    required_approvals: int = Field(1, ge=1)
    # Roles that must be among the approvers (each held by at least one of them).
    required_roles: list[str] = Field(default_factory=list)
    # A staged version's approval request lapses after this many hours; stage it again to renew.
    expires_after_hours: float = Field(72.0, gt=0)

    @model_validator(mode="after")
    def _roles_are_held(self) -> ApprovalSettings:
        held = {role for approver in self.approvers.values() for role in approver.roles}
        missing = sorted(set(self.required_roles) - held)
        if self.approvers and missing:
            raise ValueError(
                f"required_roles {missing} are held by no approver in delivery.approval.approvers"
            )
        if self.approvers and self.required_approvals > len(self.approvers):
            raise ValueError(
                f"required_approvals is {self.required_approvals} but only "
                f"{len(self.approvers)} approver(s) are listed"
            )
        return self


class EnvironmentSettings(StrictModel):
    """What one environment runs beside the model version: its traffic and its canary share."""

    # Requests per second the environment must serve; with the single-row latency the
    # operational gate measured, it sizes the replica count written to the desired state.
    expected_requests_per_second: float = Field(10.0, gt=0)
    # Spare capacity on top of the expected traffic (0.5: size for 1.5 times it).
    headroom: float = Field(0.5, ge=0)
    min_replicas: int = Field(1, ge=1)
    # The share of a batch's rows the staging candidate also scores (the canary).
    canary_share: float = Field(0.1, ge=0, le=1)


class DesiredStateSettings(StrictModel):
    """Where each environment's desired state lives, and whether changing it makes a commit."""

    # One <environment>.yaml per environment; relative to pipeline.yaml's folder.
    folder: Path = Path("deploy")
    # In a git work tree, commit each change of the desired state (only that file) with its
    # lineage in the message, so a deployment is a reviewable change.
    git_commit: bool = False


class DeliverySettings(StrictModel):
    staging_alias: str = "staging"
    production_alias: str = "production"
    approval: ApprovalSettings = Field(default_factory=ApprovalSettings)
    desired_state: DesiredStateSettings = Field(default_factory=DesiredStateSettings)
    staging: EnvironmentSettings = Field(default_factory=EnvironmentSettings)
    production: EnvironmentSettings = Field(
        default_factory=lambda: EnvironmentSettings(expected_requests_per_second=50.0)
    )

    def environments(self) -> dict[str, tuple[str, EnvironmentSettings]]:
        """Environment name -> (the MLflow alias that names it, its settings)."""
        return {
            "staging": (self.staging_alias, self.staging),
            "production": (self.production_alias, self.production),
        }
