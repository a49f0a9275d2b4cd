"""Measure issue #3's budgets: data validation is cheap next to training.

    .venv/bin/python benchmarks/bench_validation.py [--days 50] [--rows-per-day 20000]

1. Full validation of a 1,000,000-row window (every per-batch gate on every batch file, through
   the same functions the Dagster checks call, verdict ledger and all, plus the window gates)
   against LightGBM training on the same window with pipeline.yaml's parameters, both warm,
   median of --repeats runs. Budget: validation under 10% of training.
2. One new 5,000-row batch through every per-batch gate. Budget: under 0.1 s. With
   --history-days 365, again after a year of judged batches.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from ml_assets.data.batches import clear_cache, join_labels, locate_batches, read_batch
from ml_assets.data.checks import BATCH_GATE_CHECKS, JUDGES, judge_run
from ml_assets.data.expectations import build_profile
from ml_assets.demo import simulate
from ml_assets.features.checks import WINDOW_JUDGES
from ml_assets.features.examples import SPLIT_COLUMN, assign_split
from ml_assets.resources import PipelineResource
from ml_assets.settings import DEFAULT_CONFIG as SETTINGS_PATH
from ml_assets.settings import load_settings
from ml_assets.training.model import import_lightgbm, train_on_splits

SETTINGS = load_settings()
CONTRACT = SETTINGS.dataset


def vector_extensions() -> str:
    """The CPU's widest vector extension: numpy sorts 64-bit values about four times faster
    with AVX-512 than without, and the hashing and leakage rules lean on those sorts, so the
    figures of two hosts compare only when this matches (read from /proc/cpuinfo on Linux)."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "vector extensions unknown"
    return "AVX-512" if "avx512f" in flags else "AVX2, no AVX-512" if "avx2" in flags else "no AVX2"


def pipeline_for(work: Path) -> PipelineResource:
    """This project's pipeline.yaml, pointed at the benchmark's batches and a scratch folder."""
    raw = yaml.safe_load(Path(SETTINGS_PATH).read_text())
    raw["dataset"]["features_dir"] = str(work / "features")
    raw["dataset"]["labels_dir"] = str(work / "labels")
    raw.setdefault("storage", {})["data_dir"] = str(work / "data")
    cases = raw["dataset"].get("behaviour_cases")
    if cases:
        raw["dataset"]["behaviour_cases"] = str(Path(SETTINGS_PATH).parent / cases)
    config = work / "pipeline.yaml"
    config.write_text(yaml.safe_dump(raw))
    return PipelineResource(config_path=str(config))


def save_reference_profile(batches, pipeline: PipelineResource) -> None:
    """The profile gates' reference: it comes from the previous window; a profile of the first
    batch stands in for it here."""
    first = next(iter(batches.values()))
    profile = build_profile(
        join_labels(read_batch(first.features), read_batch(first.labels), CONTRACT, first.day),
        CONTRACT,
    )
    pipeline.features_dir.mkdir(parents=True, exist_ok=True)
    profile.save(pipeline.reference_profile_path)


def judge_all(batches, pipeline) -> int:
    """Every per-batch gate on `batches`, as the checks run them (one call per gate); failures."""
    clear_cache()  # nothing read by an earlier measurement is reused
    failures = 0
    for check in BATCH_GATE_CHECKS:
        (name,) = (spec.name for spec in check.check_specs)
        result = judge_run(name, batches, pipeline, JUDGES[name], run_id="bench")
        failures += int(result.metadata["batches_failed"].value)
    return failures


def validate(batches, pipeline) -> tuple[float, float, float, int]:
    """Full validation from cold caches: (total s, per-batch gates s, window gates s, failures)."""
    started = time.perf_counter()
    failures = judge_all(batches, pipeline)
    batch_s = time.perf_counter() - started
    for judge in WINDOW_JUDGES.values():  # what the three window checks call
        failures += int(not judge(pipeline).passed)
    total = time.perf_counter() - started
    return total, batch_s, total - batch_s, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=50)
    parser.add_argument("--rows-per-day", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--failing-share",
        type=float,
        default=0.0,
        help="share of the batches rewritten with the value_corruption scenario (0.1: every "
        "tenth batch fails the schema and profile gates)",
    )
    parser.add_argument(
        "--history-days",
        type=int,
        default=0,
        help="also time the new batch after this many days of judged 5,000-row batches "
        "(365: a year of kept sketches and verdicts)",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ml_assets_bench_validation_"))
    try:
        return measure(args, work)
    finally:  # about 60 MB of batches, training dataset and quarantine
        shutil.rmtree(work, ignore_errors=True)


def measure(args: argparse.Namespace, work: Path) -> int:
    """Both budgets on a window generated under `work`; the figures printed."""
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
    if args.failing_share > 0:
        every = round(1 / args.failing_share)
        for i in range(every // 2, args.days, every):
            simulate.write_demo(
                features_dir,
                labels_dir,
                start=start + dt.timedelta(days=i),
                days=1,
                rows_per_day=args.rows_per_day,
                seed=7,
                scenario="value_corruption",
            )
    batches = locate_batches(features_dir, labels_dir)
    rows = args.days * args.rows_per_day
    print(
        f"machine: {os.cpu_count()} cores, {vector_extensions()}; window: {args.days} batches x "
        f"{args.rows_per_day} rows "
        f"= {rows:,} rows; {args.failing_share:.0%} of the batches corrupted"
    )

    pipeline = pipeline_for(work)
    save_reference_profile(batches, pipeline)
    # The training dataset asset (not validation) joins the window; its checks read it back.
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
    examples.to_parquet(pipeline.training_dataset_path, index=False)

    # Both sides are measured warm and repeated: each step pays its imports once per process
    # (polars and pyarrow's dataset reader for validation, about 0.2 s; lightgbm for training,
    # about 1.6 s), which is left out of both.
    import_lightgbm()  # as training imports it: its spin count set before its library loads
    import pandera.polars  # noqa: F401

    import ml_assets.data.rules  # noqa: F401

    # Validation and training alternate, so both see the same machine (a shared 2-core box
    # drifts by 10% between minutes); the ratio is the median of the per-round ratios.
    training = SETTINGS.training
    runs, trainings, ratios = [], [], []
    for _ in range(args.repeats):
        runs.append(validate(batches, pipeline))
        started = time.perf_counter()
        booster = train_on_splits(examples, CONTRACT, training)
        trainings.append(time.perf_counter() - started)
        ratios.append(runs[-1][0] / trainings[-1])
    validation_s, batch_s, window_s, failures = (
        statistics.median(x) for x in zip(*runs, strict=True)
    )
    training_s = statistics.median(trainings)
    failed_most = max(run[3] for run in runs)
    if not args.failing_share and failed_most:  # as for the new batch: see time_new_batch
        raise SystemExit(f"the clean window failed {failed_most} gate(s): nothing to compare")
    print(
        f"full validation of the window: {validation_s:.2f} s median of {args.repeats} "
        f"(range {min(r[0] for r in runs):.2f}-{max(r[0] for r in runs):.2f} s; per-batch gates "
        f"{batch_s:.2f} s, window gates {window_s:.2f} s; {failures:.0f} gate failures of "
        f"{len(JUDGES) * len(batches)} batch verdicts)"
    )
    print(
        f"training on the same window: {training_s:.1f} s median of {args.repeats} "
        f"(range {min(trainings):.1f}-{max(trainings):.1f} s; {booster.num_trees()} trees)"
    )
    print(
        f"validation / training: {100 * statistics.median(ratios):.1f}% median of the rounds "
        f"(range {100 * min(ratios):.1f}-{100 * max(ratios):.1f}%; budget 10%); per-batch "
        f"gates alone {100 * batch_s / training_s:.1f}%"
    )

    times = time_new_batch(pipeline, start + dt.timedelta(days=args.days))
    print(
        "one 5,000-row batch through every per-batch gate: median "
        f"{statistics.median(times):.3f} s (max {max(times):.3f} s, {NEW_BATCH_RUNS} runs; "
        "budget 0.1 s)"
    )
    if args.history_days:
        measure_history(args.history_days, work / "history")
    return 0


NEW_BATCH_RUNS = 15  # a median of 15: a burst of the shared machine moves it less than one of 5


def time_new_batch(pipeline: PipelineResource, day: dt.date) -> list[float]:
    """Seconds of validations of a new 5,000-row batch of `day` (every per-batch gate)."""
    features_dir, labels_dir = pipeline.features_dir, pipeline.settings.dataset.labels_dir
    simulate.write_demo(features_dir, labels_dir, start=day, days=1, rows_per_day=5000, seed=7)
    new = {day.isoformat(): locate_batches(features_dir, labels_dir)[day.isoformat()]}
    times = []
    for _ in range(NEW_BATCH_RUNS):
        started = time.perf_counter()
        failures = judge_all(new, pipeline)
        times.append(time.perf_counter() - started)
        # A stable day passes every gate. A gate that failed it (a rule that raised gives an
        # error verdict, quickly) would make the figure fast and wrong.
        if failures:
            raise SystemExit(f"the new stable batch failed {failures} gate(s): nothing to time")
    return times


def measure_history(days: int, work: Path) -> None:
    """The new batch's figure after `days` of delivered, judged 5,000-row batches: what grows
    with history (the kept sketches the re-delivery gate compares with, the batch folder's
    listing, each gate's verdict file) is paid by every new batch."""
    start = dt.date(2025, 1, 1)
    work.mkdir(parents=True)
    pipeline = pipeline_for(work)
    simulate.write_demo(
        pipeline.features_dir,
        pipeline.settings.dataset.labels_dir,
        start=start,
        days=days,
        rows_per_day=5000,
        seed=7,
    )
    batches = locate_batches(pipeline.features_dir, pipeline.settings.dataset.labels_dir)
    save_reference_profile(batches, pipeline)
    history = list(batches)
    for k in range(0, len(history), 50):  # judged 50 at a time, as a backfill's runs would be
        judge_all({d: batches[d] for d in history[k : k + 50]}, pipeline)
    times = time_new_batch(pipeline, start + dt.timedelta(days=days))
    print(
        f"one 5,000-row batch after {days} days of judged history: median "
        f"{statistics.median(times):.3f} s (max {max(times):.3f} s, {NEW_BATCH_RUNS} runs; "
        "budget 0.1 s)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
