"""Measure issue #12's budgets: a sensor tick with nothing new, and one new daily batch against
30 and 365 days of history.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_retraining.py [--rows-per-day 1000]

For each history length, in a temporary project (a copy of pipeline.yaml with its data, MLflow
store and Dagster instance under a temporary folder): the simulator writes the days, one run
ingests them all, training_job trains on the newest `training.window_days` and an approval puts
v1 in production. Every retraining sensor and the schedule are then ticked with nothing new,
`--ticks` times. Then, for each of `--new-days` new days: the new batch arrives, the
new_batch_sensor sees it, its ingestion run (data gates, drift report) and its scoring run
(batch_predictions, canary_analysis, production_performance) run in process; each is timed,
the first new day (the process's warm-up) left out of the medians.
The evaluation gates are set to WARN here: what is measured is the cost per batch, not whether
a model trained on the bench's data passes them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_run import temp_project  # noqa: E402  (a sibling script, not a package)

START = dt.date(2025, 1, 1)
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def _configure(config: Path, window_days: int) -> None:
    raw = yaml.safe_load(config.read_text())
    raw["training"]["window_days"] = window_days
    for gate in raw["gates"].values():
        if isinstance(gate, dict) and "severity" in gate:
            gate["severity"] = "WARN"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))


def measure(history: int, args: argparse.Namespace) -> dict:
    import dagster as dg

    from ml_assets import definitions
    from ml_assets.demo.simulate import write_demo
    from ml_assets.resources import PipelineResource, mlflow_tracking
    from ml_assets.retraining.sensors import build_automation

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env, _ = temp_project(work)
        config = Path(env["ML_ASSETS_CONFIG"])
        _configure(config, args.window_days)
        os.environ.update({k: env[k] for k in ("ML_ASSETS_CONFIG", "DAGSTER_HOME")})
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        pipeline = PipelineResource(config_path=str(config))
        settings = pipeline.settings
        resources = {"pipeline": pipeline, "mlflow": mlflow_tracking}
        dataset = settings.dataset
        total = history + args.new_days
        write_demo(
            dataset.features_dir,
            dataset.labels_dir,
            start=START,
            days=total,
            rows_per_day=args.rows_per_day,
            seed=11,
        )
        days = [(START + dt.timedelta(days=i)).isoformat() for i in range(total)]
        # The new days arrive one by one: hold them back until their turn.
        held = work / "held"
        held.mkdir()
        for day in days[history:]:
            for folder in (dataset.features_dir, dataset.labels_dir):
                (held / folder.name).mkdir(exist_ok=True)
                (folder / f"{day}.parquet").rename(held / folder.name / f"{day}.parquet")

        defs = definitions.defs()
        instance = dg.DagsterInstance.get()
        try:

            def run(job: str, **kwargs):
                result = defs.resolve_job_def(job).execute_in_process(
                    instance=instance, resources=resources, raise_on_error=False, **kwargs
                )
                if not result.success:
                    failed = [e.message for e in result.all_events if e.is_step_failure]
                    raise RuntimeError(f"{job} failed: {failed[:3]}")
                return result

            sensors, schedules = build_automation(settings)
            new_batch_sensor = sensors[0]

            def tick(sensor):
                context = dg.build_sensor_context(
                    instance=instance, resources={"pipeline": pipeline}
                )
                return sensor(context)

            # The history: one ingestion run over every day, a model, production.
            first = tick(new_batch_sensor)
            instance.add_dynamic_partitions(
                "batches", list(first.dynamic_partitions_requests[0].partition_keys)
            )
            started = time.perf_counter()
            run("ingestion_job", tags={RANGE_START: days[0], RANGE_END: days[history - 1]})
            ingest_history = time.perf_counter() - started
            run("training_job")
            run(
                "approval_job",
                run_config={
                    "ops": {
                        "record_decision": {
                            "config": {"version": "1", "approver": "ana", "reason": "bench"}
                        }
                    }
                },
            )
            # Nothing new since the model: every tick must skip.
            idle = {}
            for definition in (*sensors, *schedules):
                times = []
                for _ in range(args.ticks):
                    started = time.perf_counter()
                    if isinstance(definition, dg.ScheduleDefinition):
                        context = dg.build_schedule_context(
                            instance=instance,
                            resources={"pipeline": pipeline},
                            scheduled_execution_time=dt.datetime.now(dt.UTC),
                        )
                        outcome = definition.evaluate_tick(context)
                        launched = outcome.run_requests or []
                    else:
                        outcome = tick(definition)
                        launched = getattr(outcome, "run_requests", None) or (
                            [outcome] if isinstance(outcome, dg.RunRequest) else []
                        )
                    times.append(time.perf_counter() - started)
                    if launched:
                        raise RuntimeError(
                            f"{definition.name} launched {launched} with nothing new"
                        )
                idle[definition.name] = statistics.median(times)
            batches = []
            for day in days[history:]:
                for folder in (dataset.features_dir, dataset.labels_dir):
                    (held / folder.name / f"{day}.parquet").rename(folder / f"{day}.parquet")
                started = time.perf_counter()
                seen = tick(new_batch_sensor)
                instance.add_dynamic_partitions("batches", [day])
                sensed = time.perf_counter() - started
                started = time.perf_counter()
                run("ingestion_job", tags={RANGE_START: day, RANGE_END: day})
                ingested = time.perf_counter() - started
                started = time.perf_counter()
                run("scoring_job", partition_key=day)
                scored = time.perf_counter() - started
                assert len(seen.run_requests) == 1, seen
                batches.append({"sensor": sensed, "ingest": ingested, "score": scored})
        finally:
            instance.dispose()
    # The first new day warms the process up (evidently's first import and report, the
    # scoring model's first load): it is run, and not counted.
    batches = batches[1:]
    per_batch = [b["sensor"] + b["ingest"] + b["score"] for b in batches]
    return {
        "history": history,
        "ingest_history": ingest_history,
        "per_batch": statistics.median(per_batch),
        "parts": {k: statistics.median(b[k] for b in batches) for k in batches[0]},
        "idle": idle,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--histories", default="30,365")
    parser.add_argument("--rows-per-day", type=int, default=1000)
    parser.add_argument("--window-days", type=int, default=30)
    parser.add_argument("--new-days", type=int, default=4)
    parser.add_argument("--ticks", type=int, default=5)
    parser.add_argument("--json-out", help=argparse.SUPPRESS)  # one history, in a child
    args = parser.parse_args()
    print(
        f"machine: {os.cpu_count()} cores, {platform.machine()}; {args.rows_per_day} rows per "
        f"day; training window {args.window_days} days; {args.new_days} new days per history"
    )
    histories = [int(h) for h in args.histories.split(",")]
    if args.json_out:
        (history,) = histories
        Path(args.json_out).write_text(json.dumps(measure(history, args)))
        return
    # Each history in a fresh process: the same start for both, and no Dagster state (an
    # instance, its definitions-state storage) carried from one to the next.
    results = []
    for history in histories:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "result.json"
            argv = [sys.argv[0], "--histories", str(history), "--json-out", str(out)]
            for flag in ("rows_per_day", "window_days", "new_days", "ticks"):
                argv += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
            done = subprocess.run(
                [sys.executable, *argv], capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                raise RuntimeError(f"history {history} failed: {done.stderr[-3000:]}")
            results.append(json.loads(out.read_text()))
    for r in results:
        parts = ", ".join(f"{k} {v:.2f} s" for k, v in r["parts"].items())
        print(
            f"history {r['history']} days (ingested in {r['ingest_history']:.1f} s): one new "
            f"batch {r['per_batch']:.2f} s median ({parts})"
        )
        for name, seconds in r["idle"].items():
            print(
                f"  idle tick {name}: {seconds * 1000:.0f} ms median of {args.ticks}, "
                "nothing launched"
            )
    if len(results) == 2:
        ratio = results[1]["per_batch"] / results[0]["per_batch"]
        print(
            f"one new batch, {results[1]['history']} vs {results[0]['history']} days: "
            f"ratio {ratio:.2f} (budget 1.2)"
        )


if __name__ == "__main__":
    main()
