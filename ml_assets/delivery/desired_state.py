"""Each environment's desired state, and MLflow's aliases brought to it (GitOps).

`deploy/<environment>.yaml` says which version an environment serves, with the hash of its
model file, its canary share and its replica count; MLflow's alias is the running state. Every
change writes the desired state first and moves the alias second, so a process killed in
between leaves a desired state ahead of the alias, which the next reconcile completes. Model
versions are immutable: reconcile moves an alias only to a version whose model file has the
hash the desired state names.
"""

from __future__ import annotations

import math
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

if TYPE_CHECKING:
    from mlflow import MlflowClient

# The kinds of change a desired state records.
STAGED, PROMOTED, ROLLED_BACK, WITHDRAWN = "staged", "promoted", "rolled back", "withdrawn"


class Lineage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str | None = None  # the MLflow training run
    data_version: str | None = None
    code_version: str | None = None
    approvers: list[str] = []
    reason: str = ""
    dagster_run_id: str | None = None


class DesiredState(BaseModel):
    """What one environment should serve."""

    model_config = ConfigDict(extra="forbid")

    environment: str
    model: str
    alias: str
    version: str | None  # None: the environment serves no version (staging withdrawn)
    model_sha256: str | None
    canary_share: float  # the share of each batch a staged candidate starts at (canary.steps)
    expected_requests_per_second: float
    single_row_p50_ms: float | None  # the scoring cost the operational gate measured
    replicas: int
    change: str  # staged, promoted, rolled back, withdrawn
    changed_by: str
    changed_at: str
    lineage: Lineage = Lineage()


class DesiredStateError(ValueError):
    """A desired-state file that cannot be read; the message names the file and the key."""


def replicas_for(
    expected_requests_per_second: float,
    single_row_p50_ms: float | None,
    headroom: float,
    min_replicas: int,
) -> int:
    """Replicas for the traffic with headroom, each serving one request at a time at the
    measured single-row cost (1000 / p50 requests per second); min_replicas when unmeasured."""
    if not single_row_p50_ms or single_row_p50_ms <= 0:
        return min_replicas
    per_replica = 1000.0 / single_row_p50_ms
    needed = expected_requests_per_second * (1.0 + headroom) / per_replica
    return max(min_replicas, math.ceil(needed))


def state_path(folder: Path, environment: str) -> Path:
    return folder / f"{environment}.yaml"


def read_state(folder: Path, environment: str) -> DesiredState | None:
    """The environment's desired state, None when it has none yet."""
    path = state_path(folder, environment)
    if not path.exists():
        return None
    try:
        raw = yaml.safe_load(path.read_text())
        return DesiredState.model_validate(raw)
    except yaml.YAMLError as error:
        raise DesiredStateError(f"{path} is not valid YAML: {error}") from None
    except ValidationError as error:
        keys = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
            for e in error.errors()
        )
        raise DesiredStateError(f"invalid desired state in {path}: {keys}") from None


def write_state(folder: Path, state: DesiredState) -> Path:
    """Write the desired state atomically (a reader sees the old file or the new, whole)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = state_path(folder, state.environment)
    header = (
        f"# Desired state of {state.environment}, written by ml_assets ({state.change} by "
        f"{state.changed_by}). reconcile_job brings the MLflow alias to it.\n"
    )
    tmp = path.with_suffix(f".yaml.{os.getpid()}.tmp")
    tmp.write_text(header + yaml.safe_dump(state.model_dump(), sort_keys=False))
    os.replace(tmp, path)
    return path


def commit_message(state: DesiredState) -> str:
    lineage = state.lineage
    subject = f"deploy {state.environment}: {state.model} v{state.version} ({state.change})"
    if state.version is None:
        subject = f"deploy {state.environment}: {state.model} serves no version ({state.change})"
    body = [
        f"model_sha256: {state.model_sha256}",
        f"data_version: {lineage.data_version}",
        f"code_version: {lineage.code_version}",
        f"mlflow_run_id: {lineage.run_id}",
        f"approvers: {', '.join(lineage.approvers) or 'none'}",
        f"changed_by: {state.changed_by}",
        f"reason: {lineage.reason or 'none given'}",
        f"replicas: {state.replicas}, canary_share: {state.canary_share:g}",
        f"dagster_run_id: {lineage.dagster_run_id}",
    ]
    return subject + "\n\n" + "\n".join(body) + "\n"


def _git(folder: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {folder}: {result.stderr.strip()}")
    return result


def commit_state(path: Path, message: str) -> str | None:
    """Commit the desired-state file alone (other staged changes stay staged); the commit's
    hash, or None when the folder is not in a git work tree or the file did not change."""
    folder = path.parent
    if _git(folder, "rev-parse", "--is-inside-work-tree", check=False).returncode != 0:
        return None
    _git(folder, "add", "--force", "--", path.name)
    if _git(folder, "diff", "--cached", "--quiet", "--", path.name, check=False).returncode == 0:
        return None
    identity = []
    if not _git(folder, "config", "user.email", check=False).stdout.strip():
        # A machine with no git identity (a CI runner) still records who changed what: the
        # approver is in the message; the committer is the pipeline.
        identity = ["-c", "user.name=ml_assets", "-c", "user.email=ml_assets@localhost"]
    _git(folder, *identity, "commit", "--quiet", "--only", "-m", message, "--", path.name)
    return _git(folder, "rev-parse", "HEAD").stdout.strip()


def move_alias(client: MlflowClient, state: DesiredState) -> None:
    """Make MLflow's alias what the desired state says (delete it when no version)."""
    if state.version is None:
        from ml_assets.training.registry import version_for_alias

        if version_for_alias(client, state.model, state.alias) is not None:
            client.delete_registered_model_alias(state.model, state.alias)
        return
    client.set_registered_model_alias(state.model, state.alias, state.version)


@dataclass(frozen=True)
class Reconciliation:
    """What reconcile found for one environment and what it did."""

    environment: str
    alias: str
    desired: str | None
    found: str | None  # the version the alias held before reconcile
    action: str  # in sync, restored, removed, refused, no desired state
    detail: str

    @property
    def drifted(self) -> bool:
        return self.action in ("restored", "removed", "refused")


def reconcile(
    client: MlflowClient,
    environment: str,
    alias: str,
    model: str,
    state: DesiredState | None,
    sha256_of: Callable[[str], str],
) -> Reconciliation:
    """Bring `alias` to the desired state; refuse (and move nothing) when the desired version's
    model file does not have the desired hash. `sha256_of(version)` hashes the registry's
    model file of a version."""
    from ml_assets.training.registry import version_for_alias

    held = version_for_alias(client, model, alias)
    found = str(held.version) if held is not None else None
    if state is None:
        return Reconciliation(
            environment, alias, None, found, "no desired state", "nothing to reconcile"
        )
    desired = state.version
    if desired is not None:
        actual_sha = sha256_of(desired)
        if actual_sha != state.model_sha256:
            return Reconciliation(
                environment,
                alias,
                desired,
                found,
                "refused",
                f"v{desired}'s model file hashes to {actual_sha[:12]}, the desired state names "
                f"{str(state.model_sha256)[:12]}: the version's bits changed; the alias is left "
                "where it is",
            )
    if found == desired:
        return Reconciliation(environment, alias, desired, found, "in sync", "alias as desired")
    # MLflow's registry stores an alias and its version only: who moved it, and when, is not
    # recorded (the versions' own creator and times are).
    seen = (
        f"alias {alias!r} held v{found} (created by {held.user_id or 'unknown'} at "
        f"{_ms(held.creation_timestamp)}, last updated {_ms(held.last_updated_timestamp)}); "
        "MLflow records no author or time for alias moves"
        if held is not None
        else f"alias {alias!r} held no version"
    )
    move_alias(client, state)
    if desired is None:
        return Reconciliation(
            environment, alias, None, found, "removed", f"{seen}; removed, as desired"
        )
    return Reconciliation(
        environment, alias, desired, found, "restored", f"{seen}; restored to v{desired}"
    )


def _ms(timestamp: int | None) -> str:
    import datetime as dt

    if not timestamp:
        return "unknown"
    return dt.datetime.fromtimestamp(timestamp / 1000, dt.UTC).isoformat(timespec="seconds")
