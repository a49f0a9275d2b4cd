"""Measure what issue #2 budgets: definitions import time, `make run` wall time on the default
demo (first run and the up-to-date second run), and the orchestration overhead of its runs.

    .venv/bin/python benchmarks/bench_run.py [--rows-per-day 2000] [--days 120]

Everything runs in a temporary project (config copy, data, MLflow store, DAGSTER_HOME), so the
developer's own state is untouched. Prints one line per figure.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def import_seconds(repeat: int = 7) -> dict[str, list[float]]:
    """Seconds to import dagster, then ml_assets.definitions on top, in fresh interpreters.

    Bytecode caching is switched on (some shells set PYTHONDONTWRITEBYTECODE, which makes every
    process recompile the project) and one warm-up run writes the cache, as a user's first
    `dagster dev` does.
    """
    code = (
        "import time; t0 = time.perf_counter(); import dagster; t1 = time.perf_counter();"
        "import ml_assets.definitions; t2 = time.perf_counter();"
        "print(t1 - t0, t2 - t1, t2 - t0)"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    times: dict[str, list[float]] = {"dagster": [], "ml_assets": [], "total": []}
    for attempt in range(repeat + 1):
        out = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        if attempt:  # the first run warms the bytecode cache
            for name, value in zip(times, out.stdout.split(), strict=True):
                times[name].append(float(value))
    return times


def temp_project(work: Path) -> tuple[dict, Path]:
    """A copy of pipeline.yaml whose data, stores and DAGSTER_HOME live under `work`.

    Returns the environment that selects it (ML_ASSETS_CONFIG, DAGSTER_HOME) and the home.
    """
    raw = yaml.safe_load((ROOT / "pipeline.yaml").read_text())
    raw["dataset"].update(
        features_dir=str(work / "raw/features"), labels_dir=str(work / "raw/labels")
    )
    raw["storage"].update(data_dir=str(work / "data"), mlflow_dir=str(work / "data/mlflow"))
    # Relative paths resolve against the config's folder; the cases stay the repository's.
    raw["dataset"]["behaviour_cases"] = str(ROOT / raw["dataset"]["behaviour_cases"])
    config = work / "pipeline.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    home = work / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "ML_ASSETS_CONFIG": str(config), "DAGSTER_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env, home


def timed_run(env: dict) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "ml_assets.cli.run"],
        cwd=ROOT,
        env=env,
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if done.returncode not in (0, 1):  # 1: a gate blocked, a verdict like any other
        raise RuntimeError(f"make run exited {done.returncode}: {done.stderr[-2000:]}")
    return time.perf_counter() - started


def step_and_run_seconds(home: Path) -> list[tuple[str, float, float]]:
    """(job, run wall seconds, seconds inside asset and check bodies) for each run."""
    os.environ["DAGSTER_HOME"] = str(home)
    import dagster as dg
    from dagster._core.events import DagsterEventType

    instance = dg.DagsterInstance.get()
    rows = []
    for record in instance.get_run_records():
        run = record.dagster_run
        wall = (record.end_time or 0) - (record.start_time or 0)
        body = 0.0
        for entry in instance.all_logs(
            run.run_id, of_type={DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE}
        ):
            data = entry.dagster_event.event_specific_data
            duration = getattr(data, "duration_ms", None)
            body += (duration or 0) / 1000
        rows.append((run.job_name, wall, body))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--rows-per-day", type=int, default=2000)
    parser.add_argument("--import-only", action="store_true", help="measure the import only")
    args = parser.parse_args()

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}"
    )
    times = import_seconds()
    median = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"import ml_assets.definitions: median {median['total']:.2f} s "
        f"(min {min(times['total']):.2f}, max {max(times['total']):.2f}, "
        f"{len(times['total'])} runs; budget 1 s), of which import dagster "
        f"{median['dagster']:.2f} s and the project's own modules {median['ml_assets']:.2f} s"
    )
    if args.import_only:
        return

    work = Path(tempfile.mkdtemp(prefix="ml_assets_bench_"))
    try:
        env, home = temp_project(work)

        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "ml_assets.demo.simulate",
                "--days",
                str(args.days),
                "--rows-per-day",
                str(args.rows_per_day),
            ],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        generate = time.perf_counter() - started
        first = timed_run(env)
        second = timed_run(env)
        rows = step_and_run_seconds(home)
        print(
            f"demo data: {args.days} days x {args.rows_per_day} rows, generated in {generate:.1f} s"
        )
        print(
            f"make run, first (ingest {args.days} batches, gate, train, evaluate, stage, drift): "
            f"{first:.1f} s wall (budget 90 s)"
        )
        print(f"make run, second (everything up to date): {second:.1f} s wall")
        for job, wall, body in rows:
            overhead = wall - body
            print(
                f"run {job}: {wall:.1f} s run wall, {body:.1f} s inside asset and check bodies, "
                f"orchestration overhead {overhead:.1f} s = {100 * overhead / wall:.0f}% "
                "(budget 25%)"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
