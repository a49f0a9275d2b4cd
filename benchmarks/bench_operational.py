"""The operational gate's verdict must not depend on how busy the machine is (issue #10 G).

    PYTHONPATH=. .venv/bin/python benchmarks/bench_operational.py [--measurements 20]

Trains a model like the demo's (pipeline.yaml's LightGBM parameters, --days of simulated
batches), then measures it with `measure_scoring` --measurements times on an idle machine and
--measurements times while a busy loop runs (one per spare core), with an identical copy of the
model as champion so the relative budget is exercised too. Prints each figure's median and
range per condition and the gate's verdict under pipeline.yaml's operational policy; the
verdict must be the same in every measurement.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from ml_assets.data.batches import join_labels
from ml_assets.demo import simulate
from ml_assets.evaluation.gates import operational
from ml_assets.evaluation.operational import measure_scoring
from ml_assets.features.examples import SPLIT_COLUMN, assign_split
from ml_assets.settings import load_settings
from ml_assets.training.model import save_model, train_on_splits

SETTINGS = load_settings()
CONTRACT = SETTINGS.dataset
POLICY = SETTINGS.gates.operational
FIGURES = ("p50_ms", "p99_ms", "rows_per_second", "wall_p50_ms")


def demo_examples(days: int, rows_per_day: int) -> pd.DataFrame:
    start = dt.date(2026, 1, 1)
    frames = []
    for i in range(days):
        day = start + dt.timedelta(days=i)
        features, labels = simulate.generate_day(day, rows_per_day, seed=i)
        frames.append(join_labels(features, labels, CONTRACT, day.isoformat()))
    data = pd.concat(frames, ignore_index=True)
    split = SETTINGS.training.split
    data[SPLIT_COLUMN] = assign_split(
        data[CONTRACT.id_column],
        seed=SETTINGS.training.seed,
        validation=split.validation,
        test=split.test,
    )
    return data


def measure(model: Path, champion: Path, rows: pd.DataFrame, n: int) -> list:
    return [
        measure_scoring(
            model,
            rows,
            CONTRACT,
            champion_path=champion,
            single_row_requests=POLICY.single_row_requests,
            batch_rows=POLICY.batch_rows,
            rounds=POLICY.rounds,
        )
        for _ in range(n)
    ]


def summarise(label: str, profiles: list) -> set[bool]:
    print(f"\n{label}: {len(profiles)} measurements")
    for figure in FIGURES:
        values = [getattr(p, figure) for p in profiles]
        print(
            f"  {figure:16s} median {statistics.median(values):12.4g}   "
            f"range {min(values):.4g} .. {max(values):.4g}"
        )
    ratios = [p.p50_ms / p.champion.p50_ms for p in profiles]
    print(f"  p50 vs identical champion: {min(ratios):.3f} .. {max(ratios):.3f}")
    decisions = [operational(p, POLICY) for p in profiles]
    verdicts = {d.passed for d in decisions}
    print(f"  verdicts: {sorted(verdicts)}; binding: {sorted({d.reason for d in decisions})[:3]}")
    return verdicts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rows-per-day", type=int, default=2000)
    parser.add_argument("--measurements", type=int, default=20)
    args = parser.parse_args()

    examples = demo_examples(args.days, args.rows_per_day)
    test = examples[examples[SPLIT_COLUMN] == "test"].drop(columns=[SPLIT_COLUMN])
    booster = train_on_splits(examples, CONTRACT, SETTINGS.training)
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model.txt"
        save_model(booster, model)
        champion = Path(tmp) / "champion.txt"
        shutil.copy(model, champion)
        print(
            f"model: {booster.num_trees()} trees, {model.stat().st_size / 2**20:.2f} MiB; "
            f"{len(examples):,} rows; {os.cpu_count()} cores; policy {POLICY.model_dump()}"
        )
        idle = summarise("idle", measure(model, champion, test, args.measurements))
        spare = max((os.cpu_count() or 2) - 1, 1)
        loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(spare)]
        try:
            busy = summarise(
                f"{spare} busy loop(s)", measure(model, champion, test, args.measurements)
            )
        finally:
            for loop in loops:
                loop.kill()
                loop.wait()
    stable = len(idle | busy) == 1
    print(f"\nverdict stable across {2 * args.measurements} measurements: {stable}")
    return 0 if stable else 1


if __name__ == "__main__":
    sys.exit(main())
