"""Batch scoring through the served model: the contract first, then each model's scores.

The fourth validation point: before a prediction ships, its row is checked against the data
contract with the schema gate's own pandera schema (data/validation.batch_schema); a row that
breaks it is refused with the reason and never scored. The rest are scored by the registered
MLflow model (mlflow.pyfunc), the same object `mlflow models serve` serves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from ml_assets.data.contract import DataContract
from ml_assets.data.engine import engine_for
from ml_assets.data.validation import batch_schema, schema_problems


class BatchRefused(ValueError):
    """The batch as a whole breaks the contract (a missing, extra or mistyped column)."""


def contract_refusals(
    frame: pl.DataFrame, contract: DataContract, *, include_target: bool
) -> dict[int, str]:
    """Row position -> why the contract refuses it (first problem found), for every row that
    breaks the contract; BatchRefused when a problem names no row (the columns are wrong)."""
    import pandera.errors as pa_errors

    schema = batch_schema(contract, include_target=include_target)
    try:
        with engine_for(len(frame)):  # a scored batch is usually small: see data/engine
            schema.validate(frame, lazy=True)
    except pa_errors.SchemaErrors as errors:
        cases = errors.failure_cases.with_columns(pl.col("index").cast(pl.Int64))
    else:
        return {}
    structural = cases.filter(pl.col("index").is_null())
    if len(structural):
        problems = schema_problems(
            structural.to_pandas(),
            None,
            lambda c: frame[c] if c in frame.columns else None,
            len(frame),
        )
        raise BatchRefused("; ".join(problems))
    reasons: dict[int, str] = {}
    for index, column, check, case in cases.select(
        "index", "column", "check", "failure_case"
    ).iter_rows():
        reasons.setdefault(int(index), f"{column}: {check} ({case})")
    return reasons


@dataclass(frozen=True)
class Scored:
    """One model's scores of some rows: NaN where the model refused a row."""

    scores: np.ndarray
    errors: dict[int, str]  # position in the rows given -> the model's message
    cpu_seconds: float  # CPU time of this thread for the scoring call


def _predict(model: Any, features: pd.DataFrame) -> np.ndarray:
    """The registered model's own predict (training/scoring_model.ScoringModel: the contract
    check and the encoding it was trained with), without MLflow's signature enforcement in
    front of it: that converts each value of an `Any` column one at a time (0.3 s of 20,000
    rows), and batch scoring has already checked every row against the contract."""
    return np.asarray(model.unwrap_python_model().predict(None, features), dtype="float64")


def score(model: Any, features: pd.DataFrame) -> Scored:
    """Score `features` (the model's feature columns) with an MLflow pyfunc model. When the
    model refuses the batch (a record it will not score), rows are scored one by one so that
    only the refused ones go without a score, each with the model's reason."""
    from mlflow.exceptions import MlflowException

    if not len(features):
        return Scored(np.empty(0), {}, 0.0)
    start = time.thread_time()
    try:
        return Scored(_predict(model, features), {}, time.thread_time() - start)
    except MlflowException:
        pass  # some record is refused: find which, below
    scores = np.full(len(features), np.nan)
    errors: dict[int, str] = {}
    for i in range(len(features)):
        try:
            scores[i] = float(_predict(model, features.iloc[[i]])[0])
        except MlflowException as error:
            errors[i] = error.message
    return Scored(scores, errors, time.thread_time() - start)


def cpu_per_row(model: Any, features: pd.DataFrame, rounds: int = 3) -> float:
    """The least CPU time per row over `rounds` scorings of `features` (this thread's CPU, so
    a busy machine does not move it)."""
    if not len(features):
        return 0.0
    best = float("inf")
    for _ in range(rounds):
        start = time.thread_time()
        _predict(model, features)
        best = min(best, time.thread_time() - start)
    return best / len(features)
