"""Delivery speed (issue #11): batch scoring with the canary, canary analysis, promotion and
rollback, and MLflow's scoring server over loopback HTTP.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_delivery.py [--rows 20000] [--repeats 5]

Builds a temporary project (demo data, --days batches of --rows rows), trains and stages v1 with
`make run`'s command, approves it, adds a day and trains v2 (staged: the canary candidate), then
measures, each --repeats times, median and range:
- scoring one --rows batch: the contract check, production on every row and the candidate on
  its canary share (models loaded once, as a server holds them), and the whole
  `batch_predictions` step (reading the file and loading both models included);
- canary analysis of that batch: `measure` alone, and the whole `canary_analysis` step;
- promotion and rollback through the CLI, wall clock from process start to exit;
- `mlflow models serve` of production: single-row p50 and p99 over loopback HTTP (sequential
  requests), and throughput under a bounded load (--clients concurrent clients).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import yaml

from benchmarks.bench_run import temp_project

ROOT = Path(__file__).resolve().parents[1]


def spread(values: list[float], scale: float = 1.0, unit: str = "s") -> str:
    values = [v * scale for v in values]
    return (
        f"median {statistics.median(values):.3f} {unit} "
        f"(min {min(values):.3f}, max {max(values):.3f}, n={len(values)})"
    )


def cli(env: dict, *args: str) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "ml_assets.cli.run", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args) or 'run'} exited {done.returncode}: {done.stderr}")
    return seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: bytes) -> float:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as answer:
        answer.read()
    return time.perf_counter() - started


def serve_and_measure(folder: Path, record: dict, requests: int, clients: int) -> dict:
    port = free_port()
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    server = subprocess.Popen(
        [
            str(bin_dir / "mlflow"),
            "models",
            "serve",
            "-m",
            str(folder),
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            "1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/invocations"
    body = json.dumps({"dataframe_records": [record]}).encode()
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                post(url, body)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the scoring server did not start") from None
                time.sleep(0.25)
        for _ in range(20):  # warm-up
            post(url, body)
        latencies = sorted(post(url, body) for _ in range(requests))
        done: list[float] = []

        def client(n: int) -> None:
            for _ in range(n):
                done.append(post(url, body))

        started = time.perf_counter()
        threads = [
            threading.Thread(target=client, args=(requests // clients,)) for _ in range(clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        return {
            "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[int(len(latencies) * 0.99) - 1],
            "throughput_rps": len(done) / elapsed,
            "loaded_p50_ms": 1000 * statistics.median(done),
        }
    finally:
        if server.poll() is None:
            os.killpg(server.pid, 15)
            server.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ml_assets_bench_delivery_"))
    try:
        return measure_delivery(args, work)
    finally:  # the project: its batches, MLflow store, Dagster instance and served models
        shutil.rmtree(work, ignore_errors=True)


def measure_delivery(args: argparse.Namespace, work: Path) -> int:
    """Every figure on a project made under `work`, printed."""
    env, _home = temp_project(work)
    config = Path(env["ML_ASSETS_CONFIG"])
    raw = yaml.safe_load(config.read_text())
    raw["dataset"]["demo"] = False
    raw["training"].update(window_days=args.days, min_window_days=min(7, args.days))
    # One batch measured again and again never completes the canary's steps; the approvals
    # below time the promotion itself, not the wait for a canary.
    raw["delivery"]["canary"] = {"required_for_approval": False}
    # v2 differs from v1 by one day of data: whether it beats v1 significantly is not what this
    # measures, so the comparison with production only warns here.
    for gate in ("champion", "significance"):
        raw["gates"][gate]["severity"] = "WARN"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    os.environ.update(env)

    from ml_assets.demo import simulate
    from ml_assets.settings import load_settings

    settings = load_settings(config)
    start = dt.date(2026, 1, 1)

    def write(first: int, days: int) -> list[str]:
        simulate.write_demo(
            settings.dataset.features_dir,
            settings.dataset.labels_dir,
            start=start + dt.timedelta(days=first),
            days=days,
            rows_per_day=args.rows,
            seed=first + 1,
            scenario="stable",
            scenario_start=start,
            scenario_end=start,
        )
        return [(start + dt.timedelta(days=first + i)).isoformat() for i in range(days)]

    print(
        f"project in {work} (removed at the end): {args.days} days of {args.rows:,} rows, "
        "then 1 more"
    )
    write(0, args.days)
    print(f"make run (v1): {cli(env):.1f} s")
    promote_seconds = [cli(env, "approve", "--version", "1", "--approver", "ana")]
    write(args.days, 1)
    print(f"make run (v2): {cli(env):.1f} s")
    (day,) = write(args.days + 1, 1)

    import dagster as dg
    import numpy as np

    from ml_assets.data.batches import locate_batches
    from ml_assets.data.reading import read_cast
    from ml_assets.definitions import defs
    from ml_assets.delivery.canary import canary_rows, measure
    from ml_assets.delivery.scoring import contract_refusals, score
    from ml_assets.resources import PipelineResource
    from ml_assets.training.registry import load_served_model, version_for_alias

    pipeline = PipelineResource(config_path=str(config))
    client, name = pipeline.mlflow_client(), settings.training.registered_model_name
    staged = version_for_alias(client, name, "staging")
    assert staged is not None and str(staged.version) == "2", "v2 did not reach staging"
    dataset, share = settings.dataset, settings.delivery.canary.steps[0]
    served = work / "served"
    uri = settings.mlflow_tracking_uri
    champion = load_served_model(uri, name, "1", served / "v1")
    challenger = load_served_model(uri, name, "2", served / "v2")
    path = locate_batches(dataset.features_dir, dataset.labels_dir)[day].features

    scoring, measuring = [], []
    for _ in range(args.repeats):
        frame = read_cast(path, dataset)
        started = time.perf_counter()
        refused = contract_refusals(frame, dataset, include_target=False)
        rows = frame.to_pandas()
        features = rows[dataset.model_features]
        production = score(champion, features)
        chosen = canary_rows(rows[dataset.id_column], share)
        canary = score(challenger, features[chosen])
        scoring.append(time.perf_counter() - started)
        labels = np.random.default_rng(0).uniform(size=int(chosen.sum())) < 0.2
        started = time.perf_counter()
        measure(
            batch=day,
            version="2",
            production_version="1",
            share=share,
            production_scores=production.scores[chosen],
            canary_scores=canary.scores,
            labels=labels.astype(float),
            production_cpu_per_row=1e-6,
            canary_cpu_per_row=1e-6,
            production_errors=0,
            canary_errors=0,
            policy=settings.delivery.canary,
        )
        measuring.append(time.perf_counter() - started)
    assert not refused
    print(
        f"scoring {len(rows):,} rows (contract, production on all, candidate on "
        f"{int(chosen.sum()):,}): {spread(scoring)}"
    )
    print(f"canary measure of one batch: {spread(measuring)}")

    instance = dg.DagsterInstance.get()
    instance.add_dynamic_partitions("batches", [day])
    job = defs().resolve_job_def("scoring_job")
    steps: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        result = job.execute_in_process(
            instance=instance, partition_key=day, resources={"pipeline": pipeline}
        )
        for event in result.all_events:
            if event.is_step_success:
                seconds = event.event_specific_data.duration_ms / 1000
                steps.setdefault(event.step_key, []).append(seconds)
    for step, seconds in steps.items():
        print(f"{step} step (file read and model loads included): {spread(seconds)}")

    # Promotion and rollback, each a whole CLI process: v2 is approved, then rolled back.
    rollback_seconds = []
    for _ in range(args.repeats):
        promote_seconds.append(cli(env, "approve", "--version", "2", "--approver", "olu"))
        rollback_seconds.append(
            cli(env, "rollback", "--approver", "olu", "--reason", "bench", "--from-version", "2")
        )
    print(f"promotion (make approve, a whole process): {spread(promote_seconds)}")
    print(f"rollback (make rollback, a whole process): {spread(rollback_seconds)}")
    # The same jobs in a warm process, as the webserver's run launcher or the daemon runs them
    # once the code is loaded: the promotion itself, without Python's and the libraries' start.
    warm: dict[str, list[float]] = {"approval_job": [], "rollback_job": []}
    configs = {
        "approval_job": {"record_decision": {"config": {"version": "2", "approver": "olu"}}},
        "rollback_job": {
            "roll_back_production": {
                "config": {"approver": "olu", "reason": "bench", "from_version": "2"}
            }
        },
    }
    for _ in range(args.repeats):
        for name_ in ("approval_job", "rollback_job"):
            started = time.perf_counter()
            done = (
                defs()
                .resolve_job_def(name_)
                .execute_in_process(
                    instance=instance,
                    run_config={"ops": configs[name_]},
                    resources={"pipeline": pipeline},
                )
            )
            assert done.success, name_
            warm[name_].append(time.perf_counter() - started)
    print(f"promotion (approval_job in a warm process): {spread(warm['approval_job'])}")
    print(f"rollback (rollback_job in a warm process): {spread(warm['rollback_job'])}")

    record = json.loads(rows[dataset.model_features].head(1).to_json(orient="records"))[0]
    folder = next((served / "v1").rglob("MLmodel")).parent  # the model's own folder
    server = serve_and_measure(folder, record, args.requests, args.clients)
    print(
        f"mlflow models serve, single-row over loopback: p50 {server['p50_ms']:.2f} ms, "
        f"p99 {server['p99_ms']:.2f} ms ({args.requests} sequential requests); throughput "
        f"{server['throughput_rps']:.0f} requests/s with {args.clients} clients "
        f"(p50 {server['loaded_p50_ms']:.2f} ms under that load)"
    )
    print(f"machine: {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
