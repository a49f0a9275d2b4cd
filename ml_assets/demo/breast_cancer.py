"""The Wisconsin Diagnostic Breast Cancer data as daily batches with the label in the batch.

Source: scikit-learn's bundled copy of the UCI Wisconsin Diagnostic Breast Cancer (WDBC) data
(`sklearn.datasets.load_breast_cancer`, shipped inside the scikit-learn package, no download).
569 fine-needle-aspirate samples, 212 malignant and 357 benign, with 30 numeric features: the
mean, the standard error ("error") and the worst (largest) value of ten measurements of the cell
nuclei (radius, texture, perimeter, area, smoothness, compactness, concavity, concave points,
symmetry, fractal dimension). No values are missing; every feature is >= 0.

What the batches look like:

* Columns are snake_case: "mean radius" -> `mean_radius`, "worst concave points" ->
  `worst_concave_points`.
* `sample_id`: "bc-" and the sample's row number in scikit-learn's copy, zero-padded to six
  digits ("bc-000123"), so an id names the same patient whatever the seed.
* `diagnosis`: the label, a column of the batch. 1 = malignant (the positive class), 0 = benign.
  scikit-learn codes the target the other way round (0 = malignant, 1 = benign), so
  `diagnosis = 1 - target`; `positive_label: 1` in the config therefore means malignant.
* `sampled_at`: a timestamp inside the batch's day (seconds drawn uniformly, sorted).

The split into days: the 569 rows are shuffled with `numpy.random.default_rng(seed)` and cut in
order into days of `rows_per_day` rows from `start` on, one file `YYYY-MM-DD.parquet` per day; the
last day holds the remainder (20 rows per day gives 28 days of 20 and a 29th of 9). The rows have
no real dates: the days only simulate delivery in batches. Same arguments, identical files.

CLI:

    python -m ml_assets.demo.breast_cancer --out DIR [--start 2026-03-01] \\
        [--rows-per-day 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ml_assets.data.batches import list_batch_files

ID_COLUMN = "sample_id"
TIMESTAMP_COLUMN = "sampled_at"
TARGET_COLUMN = "diagnosis"
MALIGNANT = 1
BENIGN = 0

DEFAULT_START = dt.date(2026, 3, 1)
DEFAULT_ROWS_PER_DAY = 20
DEFAULT_SEED = 0

_SECONDS_PER_DAY = 24 * 60 * 60


def snake_case(name: str) -> str:
    """A column name as a snake_case identifier: "mean concave points" -> "mean_concave_points"."""
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def load_frame() -> pd.DataFrame:
    """scikit-learn's copy of the data: 30 snake_case features, `sample_id` and `diagnosis`.

    One row per sample in scikit-learn's order; `diagnosis` is 1 for malignant, 0 for benign.
    """
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    # scikit-learn: target 0 is target_names[0] == "malignant"; make malignant the positive class.
    malignant_code = list(bunch.target_names).index("malignant")
    features = bunch.data.rename(columns=snake_case).astype("float64")
    frame = pd.DataFrame(
        {ID_COLUMN: [f"bc-{i:06d}" for i in range(len(features))]}, index=features.index
    )
    frame = pd.concat([frame, features], axis=1)
    frame[TARGET_COLUMN] = np.where(bunch.target == malignant_code, MALIGNANT, BENIGN).astype(
        "int64"
    )
    return frame.reset_index(drop=True)


def daily_batches(
    frame: pd.DataFrame, start: dt.date, rows_per_day: int, seed: int
) -> dict[str, pd.DataFrame]:
    """Shuffle `frame` with `seed` and cut it into days of `rows_per_day` rows from `start`.

    Every row is kept once; the last day holds the remainder. Each day gets a timestamp column
    (sorted uniform seconds inside the day) right after the id column, if the frame has one.
    Returns {"YYYY-MM-DD": rows of that day}, oldest first. Pure: the input is not modified.
    """
    if rows_per_day < 1:
        raise ValueError(f"rows_per_day must be at least 1, got {rows_per_day}")
    rng = np.random.default_rng(seed)
    shuffled = frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
    batches: dict[str, pd.DataFrame] = {}
    for number, first in enumerate(range(0, len(shuffled), rows_per_day)):
        day = start + dt.timedelta(days=number)
        rows = shuffled.iloc[first : first + rows_per_day].reset_index(drop=True)
        seconds = np.sort(rng.integers(0, _SECONDS_PER_DAY, size=len(rows)))
        stamps = pd.Timestamp(day) + pd.to_timedelta(seconds, unit="s")
        position = 1 if ID_COLUMN in rows.columns else 0
        rows.insert(position, TIMESTAMP_COLUMN, pd.DatetimeIndex(stamps).astype("datetime64[ns]"))
        batches[day.isoformat()] = rows
    return batches


def write_batches(batches: dict[str, pd.DataFrame], out: Path) -> list[Path]:
    """Write each day to `out/YYYY-MM-DD.parquet`; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for day, rows in batches.items():
        path = out / f"{day}.parquet"
        rows.to_parquet(path, index=False, engine="pyarrow", compression="snappy")
        paths.append(path)
    return paths


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ml_assets.demo.breast_cancer",
        description=(
            "Write scikit-learn's breast-cancer data (569 rows) as daily YYYY-MM-DD.parquet "
            "batches with the label `diagnosis` (1 = malignant, 0 = benign) in each batch."
        ),
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the batch files")
    parser.add_argument(
        "--start",
        type=dt.date.fromisoformat,
        default=DEFAULT_START,
        help=f"date of the first batch (default {DEFAULT_START.isoformat()})",
    )
    parser.add_argument(
        "--rows-per-day",
        type=int,
        default=DEFAULT_ROWS_PER_DAY,
        help=f"rows per batch; the last batch holds the remainder (default {DEFAULT_ROWS_PER_DAY})",
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"shuffle seed (default {DEFAULT_SEED})"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.rows_per_day < 1:
        parser.error("--rows-per-day must be at least 1")
    batches = daily_batches(load_frame(), args.start, args.rows_per_day, args.seed)
    paths = write_batches(batches, args.out)
    others = sorted(set(list_batch_files(args.out)) - set(batches))
    if others:
        print(
            f"warning: {args.out} also holds {len(others)} other batch file(s) "
            f"({others[0]} .. {others[-1]}); the pipeline will read them too",
            file=sys.stderr,
        )
    rows = sum(len(b) for b in batches.values())
    span = f"{paths[0].stem} .. {paths[-1].stem}"
    print(f"wrote {len(paths)} batches ({rows} rows, {span}) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
