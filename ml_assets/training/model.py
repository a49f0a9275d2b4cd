"""Training and scoring with LightGBM, stored in its native text format (never pickled)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ml_assets.data.contract import DataContract, labels_to_binary
from ml_assets.features.examples import SPLIT_COLUMN, build_features

if TYPE_CHECKING:
    from ml_assets.training.policy import TrainingSettings

if TYPE_CHECKING:
    import lightgbm as lgb

# LightGBM's OpenMP threads spin while they wait for work (libgomp's default: 300,000 spins).
# When another process holds one of the cores, a spinning thread takes the CPU its partner
# needs: with num_threads 2 and the other core busy, the demo's training (180,000 rows) took
# 5.5 to 10.9 s instead of 1.0 s idle. At 10,000 spins: 4.5 to 5.0 s busy, the same idle; 300,000
# synthetic rows, 100 rounds: 7.8 to 11.7 s busy unset, 5.7 to 6.2 s with it, 1.55 s idle either
# way (2-core Intel Xeon, 2026-12-08). The models are the same: the spin count only changes how
# a waiting thread waits.
SPIN_COUNT = "10000"


def import_lightgbm() -> ModuleType:
    """LightGBM, with GOMP_SPINCOUNT defaulting to SPIN_COUNT (a value in the environment wins).

    libgomp reads the variable once, when LightGBM's library loads it, so every import of
    LightGBM that may train goes through here: then every process gets it, whoever started it
    (make, `dagster dev`, a Kubernetes run pod, a Celery worker).
    """
    os.environ.setdefault("GOMP_SPINCOUNT", SPIN_COUNT)
    import lightgbm

    return lightgbm


def train_model(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    contract: DataContract,
    *,
    params: dict[str, Any],
    num_boost_round: int,
    early_stopping_rounds: int,
    seed: int,
) -> lgb.Booster:
    """Fit a LightGBM booster on `train`, early-stopping on `valid`; deterministic for a seed."""
    lgb = import_lightgbm()

    settings = {
        **params,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "verbosity": -1,
        "metric": params.get("metric", "auc"),
    }
    x_train = build_features(train, contract)
    x_valid = build_features(valid, contract)
    y_train = labels_to_binary(train[contract.target_column], contract.positive_label)
    y_valid = labels_to_binary(valid[contract.target_column], contract.positive_label)
    if len(np.unique(y_train)) < 2:
        raise ValueError(f"training split has a single class ({len(y_train)} rows); cannot train")
    train_set = lgb.Dataset(x_train, y_train, categorical_feature="auto", free_raw_data=True)
    valid_set = lgb.Dataset(x_valid, y_valid, reference=train_set)
    callbacks = (
        [lgb.early_stopping(early_stopping_rounds, verbose=False)] if early_stopping_rounds else []
    )
    return lgb.train(
        settings,
        train_set,
        num_boost_round=num_boost_round,
        valid_sets=[valid_set],
        callbacks=callbacks,
    )


def validation_scores(booster: lgb.Booster) -> dict[str, float]:
    """The validation split's score of each metric LightGBM early-stopped on (pipeline.yaml's
    `training.lightgbm.metric`: auc by default, any of LightGBM's metrics, or a list)."""
    return {name: float(value) for name, value in booster.best_score["valid_0"].items()}


def train_on_splits(
    examples: pd.DataFrame, contract: DataContract, training: TrainingSettings
) -> lgb.Booster:
    """Train on the window's train split, early-stopping on its validation split, as
    pipeline.yaml's training section says: the candidate, its reproducibility retrain and the
    benchmarks all train through here, so "same config" holds by construction."""
    return train_model(
        examples[examples[SPLIT_COLUMN] == "train"],
        examples[examples[SPLIT_COLUMN] == "validation"],
        contract,
        params=training.lightgbm,
        num_boost_round=training.num_boost_round,
        early_stopping_rounds=training.early_stopping_rounds,
        seed=training.seed,
    )


def save_model(booster: lgb.Booster, path: Path) -> str:
    """Write the booster as LightGBM text (best iteration only); return the file's sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(path), num_iteration=booster.best_iteration or None)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_model(path: Path) -> lgb.Booster:
    """Load a booster from LightGBM's text format (no code runs while loading)."""
    lgb = import_lightgbm()

    if not path.exists():
        raise FileNotFoundError(f"model file {path} does not exist")
    return lgb.Booster(model_file=str(path))


def predict_scores(booster: lgb.Booster, rows: pd.DataFrame, contract: DataContract) -> np.ndarray:
    """Predicted probability of the positive class for raw rows (same features as training)."""
    return booster.predict(build_features(rows, contract), num_threads=1)
