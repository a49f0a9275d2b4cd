"""Model registry operations on MLflow and the append-only audit log of each model version."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

MODEL_FILE = "model.txt"


def mlflow_run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str | None:
    """The run's page in the MLflow UI when the tracking store is a server (http or https);
    None for a local store, which has no UI address of its own."""
    if not tracking_uri.startswith(("http://", "https://")):
        return None
    return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def register_version(
    client: MlflowClient, name: str, run_id: str, artifact_uri: str, tags: dict[str, str]
) -> ModelVersion:
    """A new version of registered model `name` from the run's `model/` artefact folder."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)
    return client.create_model_version(
        name, source=f"{artifact_uri}/model", run_id=run_id, tags=tags
    )


def version_for_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version holding `alias`, or None when no version holds it (or the model is new)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def download_model_file(client: MlflowClient, version: ModelVersion, target_dir: Path) -> Path:
    """Fetch a version's LightGBM text file into `target_dir`."""
    from mlflow.artifacts import download_artifacts

    target_dir.mkdir(parents=True, exist_ok=True)
    local = Path(download_artifacts(artifact_uri=version.source, dst_path=str(target_dir)))
    path = local / MODEL_FILE if local.is_dir() else local
    if not path.exists():
        raise FileNotFoundError(
            f"model version {version.version} has no {MODEL_FILE} at {version.source}"
        )
    return path


def append_audit(audit_dir: Path, model: str, version: str, event: str, **fields: Any) -> dict:
    """Append one event to the version's audit log (JSON lines; never rewritten)."""
    record = {
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "model": model,
        "version": str(version),
        "event": event,
        **fields,
    }
    audit_dir.mkdir(parents=True, exist_ok=True)
    with (audit_dir / f"{model}.jsonl").open("a") as handle:
        handle.write(json.dumps(record, sort_keys=True, default=str) + "\n")
    return record


def read_audit(audit_dir: Path, model: str, version: str | None = None) -> list[dict]:
    """The audit events of `model` (optionally one version), oldest first."""
    path = audit_dir / f"{model}.jsonl"
    if not path.exists():
        return []
    events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [e for e in events if version is None or e["version"] == str(version)]
