"""Operational figures of a model on the machine that runs it: latency, throughput, size, memory.

`measure_scoring` runs the measurement in a fresh child process (`python -m
ml_assets.evaluation.operational <workdir>`), so the memory figures are those of a process that only
scores, and the caller's threads (a Dagster run, a test runner) do not disturb the timings. The
parent writes the request (rows as parquet, the contract as JSON, the settings) into a temporary
folder; the child writes its figures there as JSON.

The verdict must not depend on how busy the machine is, so the timings are CPU time of the
scoring thread (time spent waiting for a core is not counted), each figure is the minimum over
several rounds, and the champion, when there is one, is measured in the same process with its
rounds interleaved with the candidate's: whatever slows one slows the other, and the gate's
relative budget compares the two. The wall clock is recorded beside, for information.

Sizes are in MiB (2**20 bytes), the unit of /proc's kB figures; "MB" in field names means MiB.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml_assets.data.contract import DataContract
from ml_assets.evaluation.evidence import Operational, ScoringCost

MB = 2**20
"""Bytes per MB in every figure of this module (MiB)."""

_MODULE = "ml_assets.evaluation.operational"
_REQUEST = "request.json"
_CONTRACT = "contract.json"
_ROWS = "rows.parquet"
_RESULT = "result.json"
_STDERR_TAIL_CHARS = 4000


def measure_scoring(
    model_path: Path,
    rows: pd.DataFrame,
    contract: DataContract,
    *,
    champion_path: Path | None = None,
    single_row_requests: int = 200,
    batch_rows: int = 20000,
    rounds: int = 5,
    warmup: int = 20,
    timeout_seconds: float = 600.0,
) -> Operational:
    """Latency, throughput, size and memory of scoring `rows` with the model at `model_path`,
    and the champion's latency and throughput measured beside it when `champion_path` is given.

    Runs in a fresh child process. `rows` are raw batch rows (at least the contract's model
    features); they are cycled for the single-row requests and repeated to `batch_rows` for the
    throughput. Raises FileNotFoundError for a missing model file and RuntimeError, with the
    child's stderr, when the measurement fails or exceeds `timeout_seconds`.
    """
    paths = [Path(model_path).resolve()]
    if champion_path is not None:
        paths.append(Path(champion_path).resolve())
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"model file {path} does not exist")
    if rows.empty:
        raise ValueError("measure_scoring needs at least one row")
    if single_row_requests < 1 or batch_rows < 1 or rounds < 1 or warmup < 0:
        raise ValueError(
            "single_row_requests, batch_rows and rounds must be >= 1 and warmup >= 0, got "
            f"{single_row_requests}, {batch_rows}, {rounds}, {warmup}"
        )

    with tempfile.TemporaryDirectory(prefix="ml_assets_operational_") as tmp:
        workdir = Path(tmp)
        rows.to_parquet(workdir / _ROWS, index=False)
        # Settings classes extend the contract with their own keys; the child reads a contract.
        (workdir / _CONTRACT).write_text(
            contract.model_dump_json(include=set(DataContract.model_fields))
        )
        request = {
            "model_paths": [str(p) for p in paths],
            "single_row_requests": single_row_requests,
            "batch_rows": batch_rows,
            "rounds": rounds,
            "warmup": warmup,
        }
        (workdir / _REQUEST).write_text(json.dumps(request))
        result = run_child(_MODULE, workdir, _RESULT, timeout_seconds, "scoring measurement")

    costs = [
        ScoringCost(**figures, model_mb=path.stat().st_size / MB)
        for figures, path in zip(result["models"], paths, strict=True)
    ]
    return Operational(
        **costs[0].model_dump(),
        champion=costs[1] if len(costs) > 1 else None,
        peak_rss_mb=float(result["peak_rss_mb"]),
        baseline_rss_mb=float(result["baseline_rss_mb"]),
        single_row_requests=single_row_requests,
        batch_rows=batch_rows,
        rounds=rounds,
    )


def run_child(
    module: str, workdir: Path, result_name: str, timeout_seconds: float, what: str
) -> dict[str, Any]:
    """Run `python -m <module> <workdir>` in a fresh process; the JSON it wrote to
    `workdir/<result_name>`, or RuntimeError naming `what` with the child's stderr."""
    command = [sys.executable, "-m", module, str(workdir)]
    # The child imports the same ml_assets as the caller, installed or not.
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    try:
        done = subprocess.run(
            command,
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout_seconds,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(
            f"{what} exceeded {timeout_seconds:g} s ({' '.join(command)}); "
            f"stderr tail:\n{_tail(exc.stderr)}"
        ) from exc
    result_path = workdir / result_name
    if done.returncode != 0 or not result_path.exists():
        raise RuntimeError(
            f"{what} failed with exit code {done.returncode} "
            f"({' '.join(command)}); stderr tail:\n{_tail(done.stderr)}"
        )
    return json.loads(result_path.read_text())


def _tail(stream: str | bytes | None) -> str:
    if stream is None:
        return "<no stderr>"
    text = stream.decode(errors="replace") if isinstance(stream, bytes) else stream
    return text[-_STDERR_TAIL_CHARS:] or "<empty stderr>"


def rss_mb(field: str) -> float:
    """VmRSS or VmHWM (peak) of this process from /proc; getrusage's peak elsewhere."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024 / MB  # kB
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MB if sys.platform == "darwin" else peak * 1024 / MB  # bytes on macOS, else kB


def _repeat_to(rows: pd.DataFrame, n: int) -> pd.DataFrame:
    """The first `n` rows of `rows` repeated as often as needed."""
    if len(rows) >= n:
        return rows.iloc[:n].reset_index(drop=True)
    copies = math.ceil(n / len(rows))
    return pd.concat([rows] * copies, ignore_index=True).iloc[:n]


def _measure_in_child(workdir: Path) -> dict[str, Any]:
    """The child's side: every figure but the model sizes, measured in this process."""
    import lightgbm  # noqa: F401  (imported before the baseline, like a service would)
    import pyarrow  # noqa: F401  (read_parquet's engine; imported before the baseline)

    from ml_assets.training.model import load_model, predict_scores
    from ml_assets.training.serving import RecordEncoder, score_record, to_records

    baseline_rss_mb = rss_mb("VmRSS")

    request = json.loads((workdir / _REQUEST).read_text())
    contract = DataContract.model_validate_json((workdir / _CONTRACT).read_text())
    rows = pd.read_parquet(workdir / _ROWS)
    requests, warmup = int(request["single_row_requests"]), int(request["warmup"])
    batch_rows, rounds = int(request["batch_rows"]), int(request["rounds"])
    records = to_records(_repeat_to(rows, min(len(rows), requests + warmup)))
    batch = _repeat_to(rows, batch_rows)
    encoder = RecordEncoder(contract)

    def single_rows(booster: Any) -> tuple[np.ndarray, np.ndarray]:
        """CPU and wall seconds of `requests` single-row requests, one after the other."""
        cpu, wall = np.empty(requests), np.empty(requests)
        for i in range(requests):
            record = records[(warmup + i) % len(records)]
            wall_start, cpu_start = time.perf_counter_ns(), time.thread_time_ns()
            score_record(booster, encoder, record)
            cpu[i] = time.thread_time_ns() - cpu_start
            wall[i] = time.perf_counter_ns() - wall_start
        return cpu / 1e9, wall / 1e9

    def batch_cpu_seconds(booster: Any) -> float:
        start = time.thread_time_ns()
        scores: np.ndarray = predict_scores(booster, batch, contract)
        seconds = (time.thread_time_ns() - start) / 1e9
        if len(scores) != batch_rows:
            raise RuntimeError(f"predict_scores gave {len(scores)} scores for {batch_rows} rows")
        return seconds

    def warm(booster: Any) -> Any:
        for i in range(warmup):
            score_record(booster, encoder, records[i % len(records)])
        return booster

    # The candidate alone first: its warm-up, and the peak memory of a process scoring it only.
    candidate = warm(load_model(Path(request["model_paths"][0])))
    batch_cpu_seconds(candidate)
    peak_rss_mb = rss_mb("VmHWM")
    models = [candidate] + [warm(load_model(Path(p))) for p in request["model_paths"][1:]]

    # Rounds interleaved across the models, so a slow moment of the machine hits each of them.
    p50s, p99s, wall_p50s, batch_seconds = ([[] for _ in models] for _ in range(4))
    for _ in range(rounds):
        for m, booster in enumerate(models):
            cpu, wall = single_rows(booster)
            p50, p99 = np.percentile(cpu * 1000.0, [50, 99])
            p50s[m].append(float(p50))
            p99s[m].append(float(p99))
            wall_p50s[m].append(float(np.median(wall)) * 1000.0)
            batch_seconds[m].append(batch_cpu_seconds(booster))
    return {
        "models": [
            {
                "p50_ms": min(p50s[m]),
                "p99_ms": min(p99s[m]),
                "rows_per_second": batch_rows / max(min(batch_seconds[m]), 1e-9),
                "wall_p50_ms": float(np.median(wall_p50s[m])),
            }
            for m in range(len(models))
        ],
        "peak_rss_mb": peak_rss_mb,
        "baseline_rss_mb": baseline_rss_mb,
    }


def child_main(module: str, result_name: str, work: Callable[[Path], dict[str, Any]]) -> None:
    """A measuring child's entry point (`python -m <module> <workdir>`, see run_child): run
    `work` on the workdir, write its result there atomically, and exit at once.

    Exiting with os._exit skips the interpreter's shutdown once the result is on disk: nothing
    is left to do, and exit handlers (MLflow's: 1.1 s in the cold-load child; 0.3 s here)
    would be paid on every measurement.
    """
    if len(sys.argv) != 2:
        print(f"usage: python -m {module} <workdir>", file=sys.stderr)
        code = 2
    else:
        workdir = Path(sys.argv[1])
        result = work(workdir)
        partial = workdir / f"{result_name}.partial"
        partial.write_text(json.dumps(result))
        partial.replace(workdir / result_name)
        code = 0
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    child_main(_MODULE, _RESULT, _measure_in_child)
