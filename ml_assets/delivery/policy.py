"""The delivery stage's policy: the aliases that name each environment, and who may approve."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

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
    # The approval request flags a gate that passed with a margin below this (the distance to
    # its threshold in the gate's own scale, 0.1: within a tenth of the threshold).
    tight_margin: float = Field(0.1, ge=0)

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
    # Level 1: production moves on approval; Level 2: it moves by itself once every gate and
    # the canary passed (production only; staging always follows the gates).
    level: Literal[1, 2] = 1


class CanarySettings(StrictModel):
    """The canary's analysis, after Argo Rollouts and Flagger: one measurement per batch."""

    # The candidate's share of each batch at each step; it starts at the first and moves to the
    # next after `passes_per_step` passing batches. Passing the last step completes the canary.
    steps: list[float] = Field(default_factory=lambda: [0.1, 0.25, 0.5], min_length=1)
    passes_per_step: int = Field(1, ge=1)
    # Failed measurements tolerated: one more aborts the canary and withdraws staging.
    failure_limit: int = Field(1, ge=0)
    # Failed measurements in a row that abort it, whatever the limit above.
    consecutive_failure_limit: int = Field(2, ge=1)
    # Fewer canary rows (or, once labels are due, labelled canary rows) in a batch: the
    # measurement is inconclusive, and holds the canary for a person.
    min_rows: int = Field(100, ge=1)
    min_labelled_rows: int = Field(100, ge=1)
    # The two-sample KS statistic between the candidate's and production's scores on the same
    # rows: beyond this the candidate ranks the same people very differently.
    max_score_divergence: float = Field(0.25, gt=0, le=1)
    # The candidate's CPU time per row over production's, both measured on the same rows.
    max_cost_ratio: float = Field(2.0, gt=0)
    # Rows the candidate refuses beyond those production refuses, as a share of the batch.
    max_error_rate_excess: float = Field(0.0, ge=0)
    # Paired log loss on labelled canary rows, candidate minus production: the canary fails
    # when the lower 95% bound of the increase is beyond this (significantly worse).
    max_log_loss_increase: float = Field(0.01, ge=0)
    # Under Level 1 an approval waits for the canary to pass (a held canary may be approved
    # by a person who accepts it); false lets a person approve a running canary.
    required_for_approval: bool = True

    @model_validator(mode="after")
    def _steps_rise(self) -> CanarySettings:
        if any(not 0 < s <= 1 for s in self.steps) or self.steps != sorted(self.steps):
            raise ValueError(f"steps must rise within (0, 1], got {self.steps}")
        return self


class RollbackSettings(StrictModel):
    """Automatic rollback: only on a live-performance breach sustained over a window."""

    automatic: bool = True
    # A labelled batch breaches when production's ROC AUC on it is more than this below the
    # AUC the serving version had on its test rows at evaluation.
    max_roc_auc_drop: float = Field(0.05, gt=0, le=1)
    # Rollback needs this many consecutive labelled batches in breach: never one noisy batch.
    window_batches: int = Field(3, ge=2)
    # A batch with fewer labelled rows says nothing and does not count.
    min_labels: int = Field(200, ge=10)


class ModelCardSettings(StrictModel):
    """What only people know about the model, for its card (delivery/model_card)."""

    intended_use: str = "Not stated: set delivery.model_card.intended_use in pipeline.yaml."
    out_of_scope: str = "Not stated: set delivery.model_card.out_of_scope in pipeline.yaml."
    limitations: str = "Not stated: set delivery.model_card.limitations in pipeline.yaml."


class DesiredStateSettings(StrictModel):
    """Where each environment's desired state lives, and whether changing it makes a commit."""

    # One <environment>.yaml per environment; relative to pipeline.yaml's folder.
    folder: Path = Path("deploy")
    # In a git work tree, commit each change of the desired state (only that file) with its
    # lineage in the message, so a deployment is a reviewable change.
    git_commit: bool = False


class ReadinessSettings(StrictModel):
    """Model-aware checks before staging (delivery/readiness): compatibility and cold start."""

    # CPU seconds of a fresh process, from its start until the model is loaded from the
    # registry (interpreter, imports and download included): what a new replica costs.
    max_load_cpu_seconds: float = Field(30.0, gt=0)
    # Peak resident memory of that process after the warm-up requests, MiB.
    max_resident_mb: float = Field(1024.0, gt=0)
    # Single-row requests (the model's own input example) the fresh process must answer.
    warmup_requests: int = Field(20, ge=1)
    # false: a candidate may break production's clients (a planned change, announced to them).
    require_backward_compatible: bool = True


class DeliverySettings(StrictModel):
    staging_alias: str = "staging"
    production_alias: str = "production"
    approval: ApprovalSettings = Field(default_factory=ApprovalSettings)
    desired_state: DesiredStateSettings = Field(default_factory=DesiredStateSettings)
    canary: CanarySettings = Field(default_factory=CanarySettings)
    rollback: RollbackSettings = Field(default_factory=RollbackSettings)
    model_card: ModelCardSettings = Field(default_factory=ModelCardSettings)
    readiness: ReadinessSettings = Field(default_factory=ReadinessSettings)
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
