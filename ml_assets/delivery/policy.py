"""The delivery stage's policy: the aliases that name each environment, and who may approve."""

from __future__ import annotations

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


class DeliverySettings(StrictModel):
    staging_alias: str = "staging"
    production_alias: str = "production"
    approval: ApprovalSettings = Field(default_factory=ApprovalSettings)
