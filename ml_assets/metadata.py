"""Dagster metadata shared by every stage: readable tables and the tags that explain a run."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:
    import pandas as pd

# Every run a sensor, schedule or `make run` requests says why, and on what evidence.
TRIGGER_TAG = "ml_assets/trigger"
EVIDENCE_TAG = "ml_assets/evidence"


def significant(value: float, digits: int = 4) -> float:
    """`value` rounded to `digits` significant digits: 0.8431472732961399 -> 0.8431."""
    import math

    if not math.isfinite(value) or value == 0:
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


SHOWN_ROWS = 20  # rows of a metadata table shown in the UI, unless a caller says otherwise


def markdown_table(
    rows: pd.DataFrame | Sequence[Mapping[str, object]],
    max_rows: int = SHOWN_ROWS,
    *,
    total: int | None = None,
) -> dg.MetadataValue:
    """A table (a DataFrame, or one mapping per row) as markdown for the UI: the first
    `max_rows` rows, and a line saying how many more were left out. `total` is the number of
    rows the table stands for when `rows` holds only its first ones (default: all of `rows`)."""
    from ml_assets import markdown

    return dg.MetadataValue.md(markdown.table(rows, max_rows, total=total))


# Whether each sensor and schedule starts RUNNING is pipeline.yaml's `schedules.running`.
def sensor_status(name: str, running: Collection[str]) -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus.RUNNING if name in running else dg.DefaultSensorStatus.STOPPED


def schedule_status(name: str, running: Collection[str]) -> dg.DefaultScheduleStatus:
    return dg.DefaultScheduleStatus.RUNNING if name in running else dg.DefaultScheduleStatus.STOPPED


def observability(started: float, *, rows: int | None, paths: Sequence[Path] = ()) -> dict:
    """A stage's per-run figures, as its asset's metadata (pipeline_health reads them back):
    the seconds since `started` (time.perf_counter), the bytes of the artefacts it wrote (files,
    or every file under a folder), and the rows it processed."""
    import time

    size = 0
    for path in paths:
        if path.is_dir():
            size += sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        elif path.exists():
            size += path.stat().st_size
    return {
        "stage_seconds": round(time.perf_counter() - started, 3),
        "artefact_bytes": size,
        "rows_processed": rows if rows is not None else 0,
    }
