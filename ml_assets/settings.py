"""pipeline.yaml -> typed, validated settings, composed from the policy each stage defines.

Loaded once per process (`load_settings` is cached). A wrong or missing key fails at load time
with a message naming the key and the file.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, ValidationInfo, field_validator

from ml_assets.data.policy import (
    CONTRACT_KEYS,
    DatasetSettings,
    StrictModel,
    ValidationSettings,
)
from ml_assets.delivery.policy import DeliverySettings
from ml_assets.evaluation.policy import GateSettings
from ml_assets.monitoring.policy import DriftSettings, ObservabilitySettings
from ml_assets.retraining.policy import RetrainingSettings, ScheduleSettings
from ml_assets.training.policy import TrainingSettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "pipeline.yaml"
CONFIG_ENV_VAR = "ML_ASSETS_CONFIG"
# The Celery broker's and result backend's URLs when they hold a password (never in the file).
CELERY_BROKER_ENV_VAR = "ML_ASSETS_CELERY_BROKER_URL"
CELERY_BACKEND_ENV_VAR = "ML_ASSETS_CELERY_BACKEND_URL"


class SettingsError(ValueError):
    """pipeline.yaml is missing, unreadable or invalid; the message names the key and file."""


class StorageSettings(StrictModel):
    data_dir: Path
    mlflow_dir: Path


class CelerySettings(StrictModel):
    """dagster-celery's broker, result backend and queue, shared by the run and its workers."""

    broker: str = "pyamqp://guest@127.0.0.1:5672//"
    backend: str = "rpc://"
    # Workers take tasks from this queue only: one queue per deployment (or per test).
    queue: str = Field(default="ml_assets", pattern=r"^[A-Za-z0-9_.-]+$")

    @field_validator("broker", "backend")
    @classmethod
    def _no_password(cls, url: str, info: ValidationInfo) -> str:
        from urllib.parse import urlsplit

        if urlsplit(url).password:
            variable = {"broker": CELERY_BROKER_ENV_VAR, "backend": CELERY_BACKEND_ENV_VAR}
            raise ValueError(
                f"holds a password, which must not be in the repository: leave it out here and "
                f"set ${variable[info.field_name]} to the whole URL"
            )
        return url

    @property
    def broker_env(self) -> str | None:
        """The environment variable that holds the broker's URL, when it is set."""
        return CELERY_BROKER_ENV_VAR if os.environ.get(CELERY_BROKER_ENV_VAR) else None

    @property
    def backend_env(self) -> str | None:
        return CELERY_BACKEND_ENV_VAR if os.environ.get(CELERY_BACKEND_ENV_VAR) else None

    @property
    def broker_url(self) -> str:
        return os.environ.get(CELERY_BROKER_ENV_VAR) or self.broker

    @property
    def backend_url(self) -> str:
        return os.environ.get(CELERY_BACKEND_ENV_VAR) or self.backend


class ExecutionSettings(StrictModel):
    """Where the steps of the training and evaluation jobs run: in the run's own process, or
    on dagster-celery workers (every other job stays in process)."""

    executor: Literal["in_process", "celery"] = "in_process"
    celery: CelerySettings = Field(default_factory=CelerySettings)


class Settings(StrictModel):
    dataset: DatasetSettings
    validation: ValidationSettings
    training: TrainingSettings
    gates: GateSettings
    delivery: DeliverySettings
    drift: DriftSettings
    schedules: ScheduleSettings
    retraining: RetrainingSettings = Field(default_factory=RetrainingSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    storage: StorageSettings
    execution: ExecutionSettings = Field(default_factory=ExecutionSettings)
    # Who answers for the pipeline's assets in the Dagster UI: "team:<name>" or an email.
    owners: list[str] = Field(default_factory=lambda: ["team:ml"])
    source: Path = Field(exclude=True)

    @field_validator("owners")
    @classmethod
    def _owners_are_teams_or_emails(cls, owners: list[str]) -> list[str]:
        import re

        bad = [o for o in owners if not re.fullmatch(r"team:[\w.-]+|[^@\s]+@[^@\s]+\.\w+", o)]
        if bad:
            raise ValueError(f"owners must be 'team:<name>' or an email address, got {bad}")
        return owners

    @property
    def mlflow_tracking_uri(self) -> str:
        return os.environ.get("MLFLOW_TRACKING_URI") or (
            f"sqlite:///{self.storage.mlflow_dir / 'mlflow.db'}"
        )

    @property
    def desired_state_dir(self) -> Path:
        """The folder of each environment's desired state, relative to this file's folder."""
        folder = self.delivery.desired_state.folder
        return folder if folder.is_absolute() else (self.source.parent / folder).resolve()

    @property
    def mlflow_artifact_location(self) -> str | None:
        """Where a new experiment keeps its artefacts: under storage.mlflow_dir for a local
        store; None for a tracking server, which serves its own (`mlflow server
        --serve-artifacts`: clients write through it, and never to a path of this machine)."""
        if self.mlflow_tracking_uri.startswith(("http://", "https://")):
            return None
        return (self.storage.mlflow_dir / "artifacts").as_uri()

    # What each stage's results depend on besides the data: a change redoes that stage and the
    # ones after it, and nothing before. Keys a stage never reads are left out of its hash, so
    # changing them redoes nothing there.
    @property
    def data_gate_policy(self) -> str:
        """The per-batch gates' inputs: the contract, and the validation policy less the
        window and candidate gates' sample sizes."""
        return _digest(
            self.dataset.model_dump_json(include=CONTRACT_KEYS - {"slice_columns"}),
            self.validation.model_dump_json(exclude=_WINDOW_AND_CANDIDATE_KEYS),
        )

    @property
    def training_policy(self) -> str:
        """What a model is trained from besides the window's data: the contract and
        `training`, which includes the registered model's name."""
        return _digest(
            self.dataset.model_dump_json(include=CONTRACT_KEYS - {"slice_columns"}),
            self.training.model_dump_json(),
        )

    @property
    def evaluation_policy(self) -> str:
        """What the evaluation and its gates read besides the candidate: `gates`, the slice
        and sensitive columns, the behaviour cases (their file's content) and the aliases."""
        cases = self.dataset.behaviour_cases
        return _digest(
            self.gates.model_dump_json(),
            self.dataset.model_dump_json(include={"slice_columns", "sensitive_columns"}),
            cases.read_text() if cases is not None and cases.is_file() else "no cases",
            self.delivery.model_dump_json(include={"staging_alias", "production_alias"}),
        )


def _digest(*parts: str) -> str:
    import hashlib

    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


# validation keys that only the window gates or the serving-parity check read.
_WINDOW_AND_CANDIDATE_KEYS = {"leakage_sample_rows", "min_labels_per_class", "parity_sample_rows"}


def _resolve_paths(raw: dict[str, Any], base: Path) -> None:
    """Make the relative paths of the file absolute against the file's folder, in place."""
    for section, keys in {
        "dataset": ("features_dir", "labels_dir", "behaviour_cases"),
        "storage": ("data_dir", "mlflow_dir"),
    }.items():
        block = raw.get(section)
        if not isinstance(block, dict):
            continue
        for key in keys:
            value = block.get(key)
            if value is not None and not Path(value).is_absolute():
                block[key] = str((base / value).resolve())


def _describe(error: ValidationError, path: Path) -> str:
    lines = [f"invalid settings in {path}:"]
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"])
        lines.append(f"  {key}: {item['msg']}")
    return "\n".join(lines)


def parse_settings(raw: dict[str, Any], source: Path) -> Settings:
    """Validate a parsed pipeline.yaml mapping; relative paths resolve against `source`'s folder."""
    if not isinstance(raw, dict):
        raise SettingsError(f"{source}: the top level must be a mapping of sections")
    raw = {**raw, "source": str(source)}
    _resolve_paths(raw, source.parent)
    try:
        return Settings.model_validate(raw)
    except ValidationError as error:
        raise SettingsError(_describe(error, source)) from None


def config_path() -> Path:
    return Path(os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG).resolve()


@functools.cache
def _load(path: Path, stamp: tuple[int, int]) -> Settings:
    try:
        text = path.read_text()
    except OSError as error:
        raise SettingsError(f"cannot read settings file {path}: {error.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SettingsError(f"{path} is not valid YAML: {error}") from None
    return parse_settings(raw, path)


def load_settings(path: Path | str | None = None) -> Settings:
    """Settings from `path`, else $ML_ASSETS_CONFIG, else the project's pipeline.yaml.

    Parsed once per file version: an edited file is read again.
    """
    resolved = Path(path).resolve() if path else config_path()
    try:
        stat = resolved.stat()
    except OSError as error:
        raise SettingsError(f"cannot read settings file {resolved}: {error.strerror}") from None
    return _load(resolved, (stat.st_mtime_ns, stat.st_size))
