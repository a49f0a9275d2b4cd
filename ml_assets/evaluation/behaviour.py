"""Behaviour tests for tabular models, CheckList-style: cases as data, results with evidence.

Three kinds (Ribeiro et al., 2020, adapted to tabular credit risk):
- minimum functionality: hand-written applicants whose risk band is obvious;
- invariance: perturbations of real rows that must not move the score beyond a tolerance;
- directional: perturbations that must not lower the score beyond a tolerance.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ml_assets.data.contract import DataContract
from ml_assets.evaluation.evidence import BehaviourCase

Scorer = Callable[[pd.DataFrame], np.ndarray]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Perturbation(_Strict):
    column: str | None = None
    add: float | None = None
    set: Any = None
    swap: tuple[str, str] | None = None
    reverse_columns: bool = False

    @model_validator(mode="after")
    def _one_operation(self) -> Perturbation:
        chosen = [
            self.add is not None,
            self.set is not None,
            self.swap is not None,
            self.reverse_columns,
        ]
        if sum(chosen) != 1:
            raise ValueError("give exactly one of add, set, swap, reverse_columns")
        if not self.reverse_columns and self.column is None:
            raise ValueError("add, set and swap need a column")
        return self


class Expectation(_Strict):
    min_score: float | None = Field(None, ge=0, le=1)
    max_score: float | None = Field(None, ge=0, le=1)


class MinimumFunctionalityCase(_Strict):
    name: str
    applicant: dict[str, Any]
    expect: Expectation


class PerturbationCase(_Strict):
    name: str
    perturb: Perturbation


class BehaviourSuite(_Strict):
    base_applicant: dict[str, Any] = Field(default_factory=dict)
    minimum_functionality: list[MinimumFunctionalityCase] = Field(default_factory=list)
    invariance: list[PerturbationCase] = Field(default_factory=list)
    directional: list[PerturbationCase] = Field(default_factory=list)


def load_suite(path: Path, contract: DataContract) -> BehaviourSuite:
    """Parse and check a cases file; errors name the file and the offending case or column."""
    try:
        suite = BehaviourSuite.model_validate(yaml.safe_load(path.read_text()) or {})
    except OSError as error:
        raise ValueError(f"cannot read behaviour cases {path}: {error.strerror}") from None
    except ValidationError as error:
        raise ValueError(f"invalid behaviour cases in {path}: {error}") from None
    known = set(contract.feature_columns)
    for case in suite.minimum_functionality:
        missing = sorted(set(contract.model_features) - set(case.applicant))
        unknown = sorted(set(case.applicant) - known)
        if missing or unknown:
            raise ValueError(
                f"{path}: case {case.name!r}: missing column(s) {missing}, unknown {unknown}"
            )
    for case in [*suite.invariance, *suite.directional]:
        column = case.perturb.column
        if column is not None and column not in known:
            raise ValueError(f"{path}: case {case.name!r} perturbs unknown column {column!r}")
    return suite


def perturb(rows: pd.DataFrame, change: Perturbation, contract: DataContract) -> pd.DataFrame:
    """A perturbed copy of `rows`; numbers stay inside the contract's range."""
    if change.reverse_columns:
        return rows[rows.columns[::-1]].copy()
    out = rows.copy()
    column = change.column
    if change.add is not None:
        spec = contract.numeric_columns.get(column)
        if spec is None:
            raise ValueError(f"add needs a numeric column; {column!r} is not one")
        values = out[column].astype(float) + change.add
        out[column] = values.clip(lower=spec.min, upper=spec.max)
    elif change.swap is not None:
        a, b = change.swap
        out[column] = out[column].map(lambda v: b if v == a else a if v == b else v)
    else:
        out[column] = change.set
    return out


def _sample(frame: pd.DataFrame, ids: np.ndarray, limit: int = 5) -> list[dict]:
    return frame.loc[ids[:limit]].round(4).to_dict(orient="records")


def run_suite(
    suite: BehaviourSuite,
    score: Scorer,
    rows: pd.DataFrame,
    contract: DataContract,
    *,
    tolerance: float,
    max_failure_rate: float,
) -> list[BehaviourCase]:
    """Every case of the suite against `score` (raw rows -> scores); perturbations use `rows`."""
    results = []
    for case in suite.minimum_functionality:
        value = float(score(pd.DataFrame([case.applicant]))[0])
        low, high = case.expect.min_score, case.expect.max_score
        ok = (low is None or value >= low) and (high is None or value <= high)
        band = f"[{low if low is not None else 0}, {high if high is not None else 1}]"
        results.append(
            BehaviourCase(
                kind="minimum_functionality",
                name=case.name,
                rows=1,
                failures=0 if ok else 1,
                passed=ok,
                detail=f"score {value:.4f}, expected within {band}",
                score=value,
                expected_min=low,
                expected_max=high,
                failure_rate=0.0 if ok else 1.0,
            )
        )
    rows = rows.reset_index(drop=True)
    base = score(rows)
    for kind, cases in (("invariance", suite.invariance), ("directional", suite.directional)):
        for case in cases:
            changed = score(perturb(rows, case.perturb, contract))
            delta = changed - base
            broken = np.abs(delta) > tolerance if kind == "invariance" else delta < -tolerance
            failing = np.flatnonzero(broken)
            rate = len(failing) / len(rows) if len(rows) else 0.0
            evidence = pd.DataFrame({"score": base, "perturbed_score": changed, "delta": delta})
            results.append(
                BehaviourCase(
                    kind=kind,
                    name=case.name,
                    rows=len(rows),
                    failures=len(failing),
                    passed=rate <= max_failure_rate,
                    detail=f"{len(failing)} of {len(rows)} rows broke it ({rate:.1%}, allowed "
                    f"{max_failure_rate:.1%}); largest change {float(np.max(np.abs(delta))):.4f}"
                    if len(rows)
                    else "no rows",
                    failing_sample=_sample(evidence, failing),
                    failure_rate=rate,
                )
            )
    return results
