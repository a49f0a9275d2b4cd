"""Model-aware checks before staging: can the candidate take production's traffic?

The evaluation gates ask whether the candidate is a better model; these ask whether it can
replace the one that serves without breaking a client or a replica:

- **Backward compatibility.** Every request production accepts today, the candidate accepts:
  each input of the candidate's MLflow signature is one production's clients send, with a type
  that takes what they send; and the candidate's data contract (bundled with the model, it is
  what refuses a record) is at least as wide as production's: the same kind for each feature,
  every category production knows, a numeric range that contains production's, nulls where
  production allowed them. Inputs production takes and the candidate no longer reads are fine
  (the model ignores extra fields) and are listed as notes.
- **Cold start.** In a fresh process, the candidate loads from the registry's artefact store as
  a replica would (`mlflow.pyfunc.load_model` on the version's download URI, the interpreter,
  imports and artefact download included) within a CPU-time budget, answers warm-up requests
  (its own input example, one row per request, each a probability), and its peak resident
  memory fits a budget. The parent asks the registry where version N's files are, the one
  lookup a replica makes over the tracking server's REST API: done in the child against the
  embedded SQLite store it cost 0.6 to 0.8 s of SQLAlchemy and schema checks (a quarter of the
  child), which no replica pays.

The load budget is CPU time of the child process, not wall time: a busy machine makes a load
wait for a core but does not make it cost more, and no verdict here may depend on how busy the
machine is. The wall time is recorded beside it, for information.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml_assets.data.contract import DataContract
from ml_assets.evaluation.gates import Criterion

if TYPE_CHECKING:
    from ml_assets.delivery.policy import ReadinessSettings

_MODULE = "ml_assets.delivery.readiness"
_REQUEST = "request.json"
_RESULT = "result.json"

# MLflow column type -> the types a value of it may be handed to without loss.
_ACCEPTED_BY = {
    "boolean": {"boolean"},
    "integer": {"integer", "long", "float", "double"},
    "long": {"long", "double"},
    "float": {"float", "double"},
    "double": {"double"},
    "string": {"string"},
    "binary": {"binary"},
    "datetime": {"datetime"},
}


@dataclass(frozen=True)
class Break:
    """One way a request production accepts would be refused (or misread) by the candidate."""

    field: str
    production: str
    candidate: str
    problem: str


def signature_breaks(production: list[dict], candidate: list[dict]) -> list[Break]:
    """Breaks between two MLflow input schemas (`Schema.to_dict()`: name, type, required).

    A candidate input production did not have breaks clients when it is required; a shared input
    breaks them when the candidate's type does not take production's ("any" takes everything).
    """
    before = {column["name"]: column for column in production}
    breaks = []
    for column in candidate:
        name, kind = column["name"], column["type"]
        old = before.get(name)
        if old is None:
            if column.get("required", True):
                breaks.append(Break(name, "absent", kind, "required, and clients do not send it"))
            continue
        if kind != "any" and kind not in _ACCEPTED_BY.get(old["type"], {old["type"]}):
            breaks.append(
                Break(name, old["type"], kind, f"a {old['type']} value is not a valid {kind}")
            )
        elif column.get("required", True) and not old.get("required", True):
            breaks.append(
                Break(name, "optional", "required", "required now; clients may leave it out")
            )
    return breaks


def contract_breaks(production: DataContract, candidate: DataContract) -> list[Break]:
    """Breaks between the data contracts the two models check each record against."""
    breaks = []
    old_features = set(production.model_features)
    for name in candidate.model_features:
        if name not in old_features:
            breaks.append(Break(name, "absent", _kind(candidate, name), "clients do not send it"))
            continue
        old_kind, new_kind = _kind(production, name), _kind(candidate, name)
        if old_kind != new_kind:
            breaks.append(Break(name, old_kind, new_kind, "changed kind"))
        elif new_kind == "numeric":
            breaks.extend(_numeric_breaks(name, production, candidate))
        else:
            lost = [
                v
                for v in production.categorical_columns[name]
                if v not in set(candidate.categorical_columns[name])
            ]
            if lost:
                breaks.append(
                    Break(
                        name,
                        f"{len(production.categorical_columns[name])} categories",
                        f"{len(candidate.categorical_columns[name])} categories",
                        f"refuses categories production accepts: {_listing(lost)}",
                    )
                )
    return breaks


def dropped_inputs(production: DataContract, candidate: DataContract) -> list[str]:
    """Features production reads and the candidate does not: clients may still send them."""
    kept = set(candidate.model_features)
    return [name for name in production.model_features if name not in kept]


def _kind(contract: DataContract, name: str) -> str:
    return "numeric" if name in contract.numeric_columns else "categorical"


def _numeric_breaks(name: str, production: DataContract, candidate: DataContract) -> list[Break]:
    old, new = production.numeric_columns[name], candidate.numeric_columns[name]
    old_min = -math.inf if old.min is None else old.min
    new_min = -math.inf if new.min is None else new.min
    old_max = math.inf if old.max is None else old.max
    new_max = math.inf if new.max is None else new.max
    breaks = []
    if new_min > old_min or new_max < old_max:
        breaks.append(
            Break(
                name,
                f"[{old_min:g}, {old_max:g}]",
                f"[{new_min:g}, {new_max:g}]",
                "narrower range: values production accepts are refused",
            )
        )
    if old.nullable and not new.nullable:
        breaks.append(Break(name, "nullable", "not nullable", "refuses nulls production accepts"))
    return breaks


def _listing(values: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


@dataclass(frozen=True)
class ColdLoad:
    """What a fresh process measured loading a model from the registry and warming it up."""

    model_uri: str
    load_cpu_seconds: float  # the child's CPU time from its start until the model is loaded
    load_wall_seconds: float  # for information: waiting for a core is not the model's cost
    peak_resident_mb: float  # the child's peak RSS after the warm-up, MiB
    warmup_requests: int
    warmup_answered: int  # requests answered with exactly one probability
    first_request_ms: float  # CPU time of the first request (lazy initialisation shows here)
    warm_p50_ms: float  # median CPU time of the requests after the first
    example_rows: int


def cold_load_criteria(load: ColdLoad, policy: ReadinessSettings) -> list[Criterion]:
    """The cold-start budgets as criteria (value against threshold, with a margin each)."""
    return [
        Criterion("load_cpu_seconds", load.load_cpu_seconds, policy.max_load_cpu_seconds, "<="),
        Criterion("peak_resident_mb", load.peak_resident_mb, policy.max_resident_mb, "<="),
        Criterion(
            "warmup_answered",
            float(load.warmup_answered),
            float(load.warmup_requests),
            ">=",
            binary=True,
            verdict=load.warmup_answered == load.warmup_requests,
        ),
    ]


def measure_cold_load(
    tracking_uri: str,
    name: str,
    version: str,
    *,
    warmup_requests: int,
    timeout_seconds: float = 300.0,
) -> ColdLoad:
    """Load version `version` of `name` from the registry at `tracking_uri` in a fresh child
    process and send it `warmup_requests` single-row requests (see the module docstring).

    RuntimeError, with the child's stderr, when the model does not load or does not answer at
    all (a load that raises is a failed cold start, reported as such by the caller).
    """
    import tempfile

    from ml_assets.evaluation.operational import run_child

    if warmup_requests < 1:
        raise ValueError(f"warmup_requests must be >= 1, got {warmup_requests}")
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    model_uri = f"models:/{name}/{version}"
    try:
        registry = MlflowClient(tracking_uri, registry_uri=tracking_uri)
        files = registry.get_model_version_download_uri(name, version)
    except MlflowException as error:  # no such version: nothing for a replica to load
        raise RuntimeError(
            f"{model_uri} is not in the registry at {tracking_uri}: {error}"
        ) from error
    with tempfile.TemporaryDirectory(prefix="ml_assets_cold_load_") as tmp:
        workdir = Path(tmp)
        request = {
            "tracking_uri": tracking_uri,
            "model_uri": model_uri,
            "download_uri": files,
            "warmup_requests": warmup_requests,
            "spawned_at": time.time(),
        }
        (workdir / _REQUEST).write_text(json.dumps(request))
        result = run_child(_MODULE, workdir, _RESULT, timeout_seconds, "cold load")
    return ColdLoad(**result)


def _load_in_child(workdir: Path) -> dict[str, Any]:
    """The child's side: load from the registry, warm up, report CPU, wall and memory."""
    import resource

    from ml_assets.evaluation.operational import rss_mb

    request = json.loads((workdir / _REQUEST).read_text())

    # The artefact store is the parent's (a server's proxied artefacts resolve through the
    # tracking URI), whatever a global default (./mlruns, ./mlflow.db) would have said.
    os.environ["MLFLOW_TRACKING_URI"] = request["tracking_uri"]
    os.environ["MLFLOW_REGISTRY_URI"] = request["tracking_uri"]
    import warnings

    import mlflow
    import numpy as np

    with warnings.catch_warnings():
        # MLflow's advice to add type hints (training/scoring_model explains why there are none).
        warnings.simplefilter("ignore", UserWarning)
        model = mlflow.pyfunc.load_model(request["download_uri"])
    usage = resource.getrusage(resource.RUSAGE_SELF)
    load_cpu = usage.ru_utime + usage.ru_stime
    load_wall = time.time() - float(request["spawned_at"])

    example = model.input_example
    if example is None or len(example) == 0:
        raise RuntimeError(f"{request['model_uri']} has no input example to warm up with")
    requests = int(request["warmup_requests"])
    answered, cpu_ms = 0, []
    for i in range(requests):
        row = example.iloc[[i % len(example)]]
        start = time.thread_time_ns()
        scores = np.asarray(model.predict(row), dtype="float64").ravel()
        cpu_ms.append((time.thread_time_ns() - start) / 1e6)
        if len(scores) == 1 and math.isfinite(scores[0]) and 0.0 <= scores[0] <= 1.0:
            answered += 1
    warm = sorted(cpu_ms[1:]) or cpu_ms
    return {
        "model_uri": request["model_uri"],
        "load_cpu_seconds": load_cpu,
        "load_wall_seconds": load_wall,
        "peak_resident_mb": rss_mb("VmHWM"),
        "warmup_requests": requests,
        "warmup_answered": answered,
        "first_request_ms": cpu_ms[0],
        "warm_p50_ms": warm[len(warm) // 2],
        "example_rows": len(example),
    }


if __name__ == "__main__":
    from ml_assets.evaluation.operational import child_main

    child_main(_MODULE, _RESULT, _load_in_child)
