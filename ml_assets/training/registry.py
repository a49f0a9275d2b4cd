"""Model registry operations on MLflow and the append-only audit log of each model version."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml_assets.data.contract import DataContract

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.models import ModelSignature
    from mlflow.models.model import ModelInfo

MODEL_FILE = "model.txt"
# The feature code a served model imports, bundled with it (paths inside the package): the data
# contract and the record encoder, and the packages' __init__ files that make them importable.
SCORING_CODE = (
    "__init__.py",
    "data/__init__.py",
    "data/contract.py",
    "training/__init__.py",
    "training/serving.py",
)
SCORING_REQUIREMENTS = ("mlflow", "lightgbm", "numpy", "pandas", "pydantic")


def mlflow_run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str | None:
    """The run's page in the MLflow UI when the tracking store is a server (http or https);
    None for a local store, which has no UI address of its own."""
    if not tracking_uri.startswith(("http://", "https://")):
        return None
    return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def scoring_signature(contract: DataContract) -> ModelSignature:
    """The served model's inputs, the contract's model features, every one present as in a
    batch, and its output, one score per record.

    Categories are strings. Numbers are declared Any: MLflow refuses to convert a column of
    JSON integers (int64) to double, and a client sending `"term_months": 36` is right. The
    model itself reads each number and checks it against the contract's range and nullability
    (training/serving.RecordEncoder), naming the field it refuses.
    """
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema
    from mlflow.types.schema import AnyType

    inputs = [
        ColSpec(AnyType() if name in contract.numeric_columns else "string", name)
        for name in contract.model_features
    ]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema([ColSpec("double")]))


def log_scoring_model(
    mlflow: Any, booster_path: Path, contract: DataContract, input_example: pd.DataFrame
) -> ModelInfo:
    """Log the served model into the active MLflow run: a pyfunc model from code
    (training/scoring_model.py) with the booster's text file, the contract and the feature code
    (SCORING_CODE), pinned requirements, a signature and an input example. No pickle."""
    import importlib.metadata
    import shutil
    import tempfile

    package = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        code = Path(tmp) / "ml_assets"
        for relative in SCORING_CODE:
            (code / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(package / relative, code / relative)
        contract_path = Path(tmp) / "contract.json"
        # The contract alone: the dataset settings around it (folders, the demo switch) are
        # the pipeline's, not the model's.
        served = DataContract.model_validate(
            contract.model_dump(include=set(DataContract.model_fields))
        )
        contract_path.write_text(served.model_dump_json(indent=1))
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(package / "training" / "scoring_model.py"),
            artifacts={"booster": str(booster_path), "contract": str(contract_path)},
            code_paths=[str(code)],
            signature=scoring_signature(contract),
            input_example=input_example,
            pip_requirements=[
                f"{name}=={importlib.metadata.version(name)}" for name in SCORING_REQUIREMENTS
            ],
        )


def register_version(
    client: MlflowClient, name: str, run_id: str, model: ModelInfo, tags: dict[str, str]
) -> ModelVersion:
    """A new version of registered model `name`: the MLflow model `model` logged in the run."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)
    return client.create_model_version(
        name, source=model.model_uri, run_id=run_id, tags=tags, model_id=model.model_id
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
    """Fetch a version's LightGBM text file into `target_dir` (an MLflow model keeps it among
    its artefacts; a version registered before models were logged as MLflow models holds it at
    the top of its folder)."""
    from mlflow.artifacts import download_artifacts

    target_dir.mkdir(parents=True, exist_ok=True)
    # The artefacts' own location, asked of this client's store: `version.source` is a
    # models:/ URI, which MLflow would resolve against its global tracking URI (in a fresh
    # process, ./mlflow.db in the working directory), whatever store the client names.
    location = client.get_model_version_download_uri(version.name, version.version)
    with quiet_downloads():
        local = Path(download_artifacts(artifact_uri=location, dst_path=str(target_dir)))
    found = [local / "artifacts" / MODEL_FILE, local / MODEL_FILE] if local.is_dir() else [local]
    path = next((p for p in found if p.exists()), found[0])
    if not path.exists():
        raise FileNotFoundError(
            f"model version {version.version} has no {MODEL_FILE} at {version.source}"
        )
    return path


def model_interface(
    client: MlflowClient, name: str, version: str, target_dir: Path
) -> tuple[list[dict], DataContract]:
    """What a registered version accepts: its MLflow signature's inputs (as
    `Schema.to_dict()`) and the data contract bundled with it, fetched into `target_dir`."""
    from mlflow.artifacts import download_artifacts
    from mlflow.models import Model

    target_dir.mkdir(parents=True, exist_ok=True)
    location = client.get_model_version_download_uri(name, version)
    with quiet_downloads():
        mlmodel = Path(download_artifacts(f"{location}/MLmodel", dst_path=str(target_dir)))
        model = Model.load(str(mlmodel))
        if model.signature is None:
            raise ValueError(f"model version {version} of {name} has no signature")
        artifacts = model.flavors.get("python_function", {}).get("artifacts", {})
        if "contract" not in artifacts:
            raise ValueError(f"model version {version} of {name} bundles no data contract")
        contract = Path(
            download_artifacts(
                f"{location}/{artifacts['contract']['path']}", dst_path=str(target_dir)
            )
        )
    return model.signature.inputs.to_dict(), DataContract.model_validate_json(contract.read_text())


def load_served_model(tracking_uri: str, name: str, version: str, target_dir: Path) -> Any:
    """Version `version` of `name` as MLflow serves it: downloaded from the registry into
    `target_dir` and loaded with mlflow.pyfunc (its code, booster and contract)."""
    import warnings

    import mlflow
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts

    target_dir.mkdir(parents=True, exist_ok=True)
    with quiet_downloads():
        # The artefacts' own location, asked of this store: a models:/ URI would be resolved
        # against MLflow's global tracking URI, whatever store is passed alongside.
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        location = client.get_model_version_download_uri(name, version)
        folder = download_artifacts(artifact_uri=location, dst_path=str(target_dir))
        # Nor MLflow's advice to add type hints to predict (the signature is the model's
        # schema; see scoring_model). A filter cannot silence it: MLflow sets its own "once"
        # filter around the call, so the advice alone is dropped where warnings are shown.
        with warnings.catch_warnings():
            shown = warnings.showwarning

            def show(message, *args, **kwargs):
                if "Add type hints to the `predict` method" not in str(message):
                    shown(message, *args, **kwargs)

            warnings.showwarning = show
            return mlflow.pyfunc.load_model(folder)


@contextlib.contextmanager
def quiet_downloads() -> Iterator[None]:
    """No MLflow download progress bar: a pipeline step's log is no place for one."""
    import os

    before = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = before


GENESIS = "0" * 64  # the "previous hash" of a log's first entry


def _entry_hash(previous: str, record: dict) -> str:
    import hashlib

    body = json.dumps(record, sort_keys=True, default=str)
    return hashlib.sha256((previous + body).encode()).hexdigest()


def append_audit(audit_dir: Path, model: str, version: str, event: str, **fields: Any) -> dict:
    """Append one event to the model's audit log (JSON lines, never rewritten).

    Each entry carries the hash of the one before it (`prev`) and its own (`hash`, of `prev`
    and the entry's fields), so an edited, removed or reordered entry breaks the chain that
    `verify_audit` walks. Appends hold an exclusive lock on the file, so two processes
    appending at once both chain onto the entry before them.
    """
    import fcntl

    record = {
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "model": model,
        "version": str(version),
        "event": event,
        **fields,
    }
    audit_dir.mkdir(parents=True, exist_ok=True)
    with (audit_dir / f"{model}.jsonl").open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        last = None
        for line in handle:
            if line.strip():
                last = line
        previous = json.loads(last).get("hash", GENESIS) if last else GENESIS
        record = json.loads(json.dumps(record, sort_keys=True, default=str))  # as read back
        chained = {**record, "prev": previous, "hash": _entry_hash(previous, record)}
        handle.write(json.dumps(chained, sort_keys=True) + "\n")
        handle.flush()
    return chained


def verify_audit(audit_dir: Path, model: str) -> list[str]:
    """Where the model's audit chain breaks, one line per problem (empty: intact)."""
    path = audit_dir / f"{model}.jsonl"
    if not path.exists():
        return []
    problems, previous = [], GENESIS
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            problems.append(f"{path}:{number}: not a JSON entry")
            previous = None
            continue
        record = {k: v for k, v in entry.items() if k not in ("prev", "hash")}
        if previous is not None and entry.get("prev") != previous:
            problems.append(
                f"{path}:{number}: prev does not match the entry before it "
                "(an entry was removed, inserted or reordered)"
            )
        if entry.get("hash") != _entry_hash(str(entry.get("prev")), record):
            problems.append(f"{path}:{number}: hash does not match the entry (it was edited)")
        previous = entry.get("hash")
    return problems


def read_audit(audit_dir: Path, model: str, version: str | None = None) -> list[dict]:
    """The audit events of `model` (optionally one version), oldest first."""
    path = audit_dir / f"{model}.jsonl"
    if not path.exists():
        return []
    events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [e for e in events if version is None or e["version"] == str(version)]
