"""Measure issue #3's budgets: data validation is cheap next to training.

    .venv/bin/python benchmarks/bench_validation.py [--days 50] [--rows-per-day 20000]

1. Full validation of a 1,000,000-row window (every per-batch gate on every batch file, read from
   disk as the checks read it, plus the window gates) against LightGBM training on the same
   window with pipeline.yaml's parameters. Budget: validation under 10% of training.
2. One new 5,000-row batch through every per-batch gate. Budget: under 1 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from ml_assets import simulate
from ml_assets.core.batches import locate_batches, read_batch, read_labels
from ml_assets.core.expectations import StatisticalPolicy, build_profile
from ml_assets.core.features import SPLIT_COLUMN, assign_split, join_labels
from ml_assets.core.integrity import labels_per_class, split_integrity
from ml_assets.core.training import train_model
from ml_assets.core.validation import (
    check_label_join,
    check_label_leakage,
    check_positive_rate,
    check_statistics,
    check_timestamps,
    validate_batch,
)
from ml_assets.settings import load_settings

SETTINGS = load_settings()
CONTRACT = SETTINGS.dataset
VALIDATION = SETTINGS.validation
POLICY = StatisticalPolicy(**VALIDATION.statistics.model_dump())


def judge_batch(batch, profile) -> int:
    """Every per-batch gate on one batch, as the checks run them; returns failures."""
    frame = read_batch(batch.features)
    labels = read_labels(batch, CONTRACT.id_column, CONTRACT.target_column, True)
    reports = [
        validate_batch(frame, CONTRACT, day=batch.day, max_failing_row_share=0.0, sample_rows=10),
        check_timestamps(frame, CONTRACT, day=batch.day, sample_rows=10),
        check_statistics(frame, profile, CONTRACT, POLICY, day=batch.day, sample_rows=10),
        check_label_join(
            frame, labels, CONTRACT, day=batch.day, min_join_rate=0.99, sample_rows=10
        ),
        check_positive_rate(labels, profile, CONTRACT, POLICY, day=batch.day),
        check_label_leakage(
            join_labels(frame, labels, CONTRACT, batch.day),
            CONTRACT,
            max_auc=VALIDATION.max_single_feature_auc,
            day=batch.day,
        ),
    ]
    return sum(not r.passed for r in reports)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=50)
    parser.add_argument("--rows-per-day", type=int, default=20_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ml_assets_bench_validation_"))
    features_dir, labels_dir = work / "features", work / "labels"
    start = dt.date(2026, 1, 1)
    simulate.write_demo(
        features_dir,
        labels_dir,
        start=start,
        days=args.days,
        rows_per_day=args.rows_per_day,
        seed=7,
    )
    batches = locate_batches(features_dir, labels_dir)
    rows = args.days * args.rows_per_day
    print(
        f"machine: {os.cpu_count()} cores; window: {args.days} batches x {args.rows_per_day} rows "
        f"= {rows:,} rows"
    )

    # The reference profile comes from the previous window; a profile of the first batches
    # stands in for it here.
    first = next(iter(batches.values()))
    profile = build_profile(
        join_labels(read_batch(first.features), read_batch(first.labels), CONTRACT, first.day),
        CONTRACT,
    )

    started = time.perf_counter()
    failures = sum(judge_batch(b, profile) for b in batches.values())
    examples = pd.concat(
        [
            join_labels(read_batch(b.features), read_batch(b.labels), CONTRACT, b.day)
            for b in batches.values()
        ],
        ignore_index=True,
    )
    examples[SPLIT_COLUMN] = assign_split(
        examples[CONTRACT.id_column], seed=42, validation=0.15, test=0.2
    )
    split_integrity(examples, CONTRACT)
    labels_per_class(examples, CONTRACT)
    check_label_leakage(
        examples,
        CONTRACT,
        max_auc=VALIDATION.max_single_feature_auc,
        day="window",
        max_rows=VALIDATION.leakage_sample_rows,
    )
    validation_s = time.perf_counter() - started
    print(f"full validation of the window: {validation_s:.1f} s ({failures} gate failures)")

    training = SETTINGS.training
    started = time.perf_counter()
    booster = train_model(
        examples[examples[SPLIT_COLUMN] == "train"],
        examples[examples[SPLIT_COLUMN] == "validation"],
        CONTRACT,
        params=training.lightgbm,
        num_boost_round=training.num_boost_round,
        early_stopping_rounds=training.early_stopping_rounds,
        seed=training.seed,
    )
    training_s = time.perf_counter() - started
    print(f"training on the same window: {training_s:.1f} s ({booster.num_trees()} trees)")
    print(f"validation / training: {100 * validation_s / training_s:.1f}% (budget 10%)")

    day = start + dt.timedelta(days=args.days)
    simulate.write_demo(features_dir, labels_dir, start=day, days=1, rows_per_day=5000, seed=7)
    new = locate_batches(features_dir, labels_dir)[day.isoformat()]
    times = []
    for _ in range(5):
        started = time.perf_counter()
        judge_batch(new, profile)
        times.append(time.perf_counter() - started)
    print(
        "one 5,000-row batch through every per-batch gate: "
        f"median {statistics.median(times):.3f} s (max {max(times):.3f} s, 5 runs; budget 1 s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
