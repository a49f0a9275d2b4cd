"""How fast does the model go stale? (ML Test Score, monitoring: "staleness impact".)

    PYTHONPATH=. .venv/bin/python benchmarks/staleness_study.py [--rows-per-day 2000]

For each scenario (stable, and concept drift starting `--drift-days` before the newest day),
the simulator writes a timeline of `--days` days in memory. Models are trained on windows of
`--window-days` days whose newest day is `age` days before the evaluation days (the newest
`--eval-days`), with pipeline.yaml's training settings and split (train_on_splits, as
candidate_model trains); every model scores the same evaluation rows. The table shows each
model's ROC AUC on them, and its loss against the freshest model (age 0). A model that stays
within the evaluation gates' tolerance at an age can be retrained that rarely; past it, the
cadence must be shorter, or a trigger must catch the change.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import time

import numpy as np
import pandas as pd


def timeline(days: int, rows: int, scenario: str, drift_days: int, seed: int) -> pd.DataFrame:
    from ml_assets.demo.simulate import ID_COLUMN, generate_day

    end = dt.date(2026, 6, 30)
    frames = []
    for offset in range(days):
        day = end - dt.timedelta(days=days - 1 - offset)
        drifting = scenario != "stable" and offset >= days - drift_days
        features, labels = generate_day(day, rows, seed, scenario if drifting else "stable")
        frame = features.merge(labels, on=ID_COLUMN)
        frame["batch_day"] = day.isoformat()
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=150)
    parser.add_argument("--rows-per-day", type=int, default=2000)
    parser.add_argument("--window-days", type=int, default=30)
    parser.add_argument("--eval-days", type=int, default=7)
    parser.add_argument("--drift-days", type=int, default=45)
    parser.add_argument("--ages", default="0,7,14,30,60,90")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    from sklearn.metrics import roc_auc_score

    from ml_assets.features.examples import SPLIT_COLUMN, assign_split
    from ml_assets.settings import load_settings
    from ml_assets.training.model import predict_scores, train_on_splits

    settings = load_settings()
    dataset, training = settings.dataset, settings.training
    ages = [int(a) for a in args.ages.split(",")]
    if max(ages) + args.window_days + args.eval_days > args.days:
        parser.error("--days is too short for the oldest age's window and the evaluation days")
    print(
        f"machine: {platform.machine()}, {platform.python_version()}; {args.days} days x "
        f"{args.rows_per_day} rows; windows of {args.window_days} days; evaluated on the newest "
        f"{args.eval_days} days; concept drift over the newest {args.drift_days} days"
    )
    for scenario in ("stable", "concept_drift"):
        started = time.perf_counter()
        frame = timeline(args.days, args.rows_per_day, scenario, args.drift_days, args.seed)
        frame[SPLIT_COLUMN] = assign_split(
            frame[dataset.id_column],
            seed=training.seed,
            validation=training.split.validation,
            test=training.split.test,
        )
        days = sorted(frame["batch_day"].unique())
        evaluation = frame[frame["batch_day"].isin(days[-args.eval_days :])]
        y = (evaluation[dataset.target_column] == dataset.positive_label).to_numpy()
        rows = []
        for age in ages:
            last = len(days) - args.eval_days - age
            window = days[last - args.window_days : last]
            examples = frame[frame["batch_day"].isin(window)]
            booster = train_on_splits(examples, dataset, training)
            auc = roc_auc_score(y, predict_scores(booster, evaluation, dataset))
            rows.append({"age_days": age, "window": f"{window[0]}..{window[-1]}", "roc_auc": auc})
        table = pd.DataFrame(rows)
        table["loss_vs_fresh"] = table["roc_auc"].iloc[0] - table["roc_auc"]
        print(f"\n{scenario} ({time.perf_counter() - started:.0f} s)")
        print(table.round(4).to_string(index=False))
    tolerance = settings.gates.champion.max_regression.get("roc_auc", np.nan)
    print(f"\nthe champion gate's ROC AUC tolerance: {tolerance}")


if __name__ == "__main__":
    main()
