"""pipeline.yaml -> typed, validated settings.

Loaded once per process (`load_settings` is cached). A wrong or missing key fails at load time
with a message naming the key and the file.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ml_assets.core.contract import DataContract

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "pipeline.yaml"
CONFIG_ENV_VAR = "ML_ASSETS_CONFIG"


class SettingsError(ValueError):
    """pipeline.yaml is missing, unreadable or invalid; the message names the key and file."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetSettings(DataContract):
    """The data contract plus where the batches live."""

    features_dir: Path
    labels_dir: Path | None = None
    demo: bool = False


class StatisticsSettings(_Strict):
    """Statistical expectations: significance for the batch's size and a floor on the effect."""

    alpha: float = Field(1e-6, gt=0, lt=1)
    min_mean_shift_std: float = Field(0.25, ge=0)
    min_std_ratio: float = Field(1.5, ge=1)
    min_tail_excess: float = Field(0.02, ge=0, le=1)
    min_category_distance: float = Field(0.1, ge=0, le=1)
    max_unseen_category_share: float = Field(0.01, ge=0, le=1)
    min_null_rate_excess: float = Field(0.02, ge=0, le=1)
    max_null_rate: float = Field(0.2, ge=0, le=1)
    min_positive_rate_shift: float = Field(0.05, ge=0, le=1)


Severity = Literal["ERROR", "WARN"]


class ValidationSettings(_Strict):
    # full: every row (production, nightly); sample: a seeded fraction of each batch (CI on
    # large data). Label joinability always reads every id.
    depth: Literal["full", "sample"] = "full"
    sample_fraction: float = Field(0.1, gt=0, le=1)
    sample_seed: int = 0
    max_failing_row_share: float = Field(0.0, ge=0, le=1)
    min_label_join_rate: float = Field(0.99, ge=0, le=1)
    label_delay_days: int = Field(0, ge=0)
    failing_rows_sample: int = Field(10, ge=1)
    max_single_feature_auc: float = Field(0.98, gt=0.5, le=1)
    leakage_sample_rows: int = Field(200_000, ge=1000)
    min_labels_per_class: int = Field(50, ge=1)
    parity_sample_rows: int = Field(200, ge=1)
    statistics: StatisticsSettings = Field(default_factory=StatisticsSettings)
    severity: dict[str, Severity] = Field(default_factory=dict)

    def severity_of(self, check: str) -> Severity:
        """ERROR (blocks, quarantines) unless pipeline.yaml says WARN for this check."""
        return self.severity.get(check, "ERROR")


class SplitSettings(_Strict):
    validation: float = Field(gt=0, lt=0.5)
    test: float = Field(gt=0, lt=0.5)


class TrainingSettings(_Strict):
    window_days: int = Field(ge=1)
    min_window_days: int = Field(1, ge=1)
    split: SplitSettings
    seed: int = 42
    registered_model_name: str
    experiment_name: str
    lightgbm: dict[str, Any]
    num_boost_round: int = Field(ge=1)
    early_stopping_rounds: int = Field(0, ge=0)


# Metrics where lower is better; every other metric is better when higher.
LOWER_IS_BETTER = frozenset({"log_loss", "brier"})
GATE_METRICS = frozenset({"roc_auc", "pr_auc", "log_loss", "brier", "accuracy", "f1"})


class _Gate(_Strict):
    # ERROR: a failure keeps the candidate off staging. WARN: recorded and shown, not blocking.
    severity: Severity = "ERROR"


class FloorGate(_Gate):
    min_roc_auc: float = Field(0.7, ge=0, le=1)
    min_pr_auc: float = Field(0.0, ge=0, le=1)
    max_log_loss: float = Field(1.0, gt=0)
    min_f1: float = Field(0.0, ge=0, le=1)
    min_accuracy: float = Field(0.0, ge=0, le=1)


class ChampionGate(_Gate):
    # Largest tolerated regression per metric against the production model (absolute units).
    max_regression: dict[str, float] = Field(default_factory=lambda: {"roc_auc": 0.01})

    @field_validator("max_regression")
    @classmethod
    def _known_metrics(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - GATE_METRICS)
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; known: {sorted(GATE_METRICS)}")
        if any(v < 0 for v in value.values()):
            raise ValueError("tolerances must be >= 0")
        return value


class SliceGate(_Gate):
    min_rows: int = Field(200, ge=10)
    min_roc_auc: float = Field(0.6, ge=0, le=1)
    # A slice fails against the champion when its ROC AUC drops by more than this AND the drop
    # is significant at significance.confidence (paired bootstrap on the slice's rows).
    max_regression: float = Field(0.03, ge=0, le=1)


class FairnessGate(_Gate):
    # Groups with fewer test rows, or with one class only, are left out: their rates are noise
    # (fairlearn counts the true-positive rate of a group without positives as 0).
    min_group_rows: int = Field(200, ge=1)
    max_demographic_parity_difference: float = Field(0.1, ge=0, le=1)
    max_equalized_odds_difference: float = Field(0.1, ge=0, le=1)
    # Largest tolerated increase of either difference against the champion.
    max_regression: float = Field(0.02, ge=0, le=1)


class CalibrationGate(_Gate):
    max_brier: float = Field(0.25, gt=0, le=1)
    max_ece: float = Field(0.05, gt=0, le=1)
    bins: int = Field(10, ge=2, le=100)


class OperationalGate(_Gate):
    max_p50_ms: float = Field(20.0, gt=0)
    max_p99_ms: float = Field(50.0, gt=0)
    min_rows_per_second: float = Field(20_000.0, gt=0)
    max_model_mb: float = Field(20.0, gt=0)
    max_peak_memory_mb: float = Field(1024.0, gt=0)
    single_row_requests: int = Field(200, ge=10)
    batch_rows: int = Field(20_000, ge=100)


class BehaviourGate(_Gate):
    # YAML file of behaviour cases (minimum functionality, invariance, directional), relative to
    # this file; null skips the gate with a recorded reason.
    cases: Path | None = None
    # Test rows that the invariance and directional perturbations are applied to.
    sample_rows: int = Field(1000, ge=10)
    # Score change that counts as "unchanged" (invariance) or "not lower" (directional).
    score_tolerance: float = Field(0.02, ge=0, le=1)
    # Share of perturbed rows allowed to break an invariance or directional expectation.
    max_failure_rate: float = Field(0.01, ge=0, le=1)


class SignificanceGate(_Gate):
    # non_inferior: the AUC difference's lower confidence bound is above -margin.
    # superior: additionally the lower bound is above 0 (a significant improvement).
    rule: Literal["non_inferior", "superior"] = "superior"
    confidence: float = Field(0.95, gt=0.5, lt=1)
    non_inferiority_margin: float = Field(0.01, ge=0, le=1)
    bootstrap_samples: int = Field(1000, ge=100)
    seed: int = 0


class ReproducibilityGate(_Gate):
    # Largest score difference on the test rows between the candidate and a retrain.
    max_score_difference: float = Field(0.0, ge=0)


class GateSettings(_Strict):
    # Scores at or above it count as predicted defaults (F1, accuracy, fairness, McNemar).
    decision_threshold: float = Field(gt=0, lt=1)
    floors: FloorGate = Field(default_factory=FloorGate)
    champion: ChampionGate = Field(default_factory=ChampionGate)
    slices: SliceGate = Field(default_factory=SliceGate)
    fairness: FairnessGate = Field(default_factory=FairnessGate)
    calibration: CalibrationGate = Field(default_factory=CalibrationGate)
    operational: OperationalGate = Field(default_factory=OperationalGate)
    behaviour: BehaviourGate = Field(default_factory=BehaviourGate)
    significance: SignificanceGate = Field(default_factory=SignificanceGate)
    reproducibility: ReproducibilityGate = Field(default_factory=ReproducibilityGate)


class DeliverySettings(_Strict):
    staging_alias: str = "staging"
    production_alias: str = "production"


class DriftSettings(_Strict):
    reference_sample_rows: int = Field(20000, ge=100)
    drifted_columns_share: float = Field(gt=0, le=1)
    retrain_on_drift: bool = True


class ScheduleSettings(_Strict):
    retraining_cron: str
    # When gate_history_schedule reviews the gates' history (pass rates, margins).
    gate_history_cron: str = "0 6 * * *"
    timezone: str = "UTC"
    sensor_interval_seconds: int = Field(60, ge=5)


class StorageSettings(_Strict):
    data_dir: Path
    mlflow_dir: Path


class Settings(_Strict):
    dataset: DatasetSettings
    validation: ValidationSettings
    training: TrainingSettings
    gates: GateSettings
    delivery: DeliverySettings
    drift: DriftSettings
    schedules: ScheduleSettings
    storage: StorageSettings
    source: Path = Field(exclude=True)

    @property
    def mlflow_tracking_uri(self) -> str:
        return os.environ.get("MLFLOW_TRACKING_URI") or (
            f"sqlite:///{self.storage.mlflow_dir / 'mlflow.db'}"
        )

    @property
    def mlflow_artifact_location(self) -> str:
        return (self.storage.mlflow_dir / "artifacts").as_uri()


def _resolve_paths(raw: dict[str, Any], base: Path) -> None:
    """Make the relative paths of the file absolute against the file's folder, in place."""
    for section, keys in {
        "dataset": ("features_dir", "labels_dir"),
        "storage": ("data_dir", "mlflow_dir"),
    }.items():
        block = raw.get(section)
        if not isinstance(block, dict):
            continue
        for key in keys:
            value = block.get(key)
            if value is not None and not Path(value).is_absolute():
                block[key] = str((base / value).resolve())
    gates = raw.get("gates")
    behaviour = gates.get("behaviour") if isinstance(gates, dict) else None
    cases = behaviour.get("cases") if isinstance(behaviour, dict) else None
    if cases is not None and not Path(cases).is_absolute():
        behaviour["cases"] = str((base / cases).resolve())


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
