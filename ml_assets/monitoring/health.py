"""Pipeline health: is a stage's latest run much slower, or its artefact much larger, than its
recent runs? Each stage records its seconds, artefact bytes and rows as asset metadata
(metadata.observability); this compares the latest with the median of the runs before it."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ml_assets.monitoring.policy import ObservabilitySettings


@dataclass(frozen=True)
class StageHealth:
    stage: str
    earlier_runs: int
    seconds: float
    median_seconds: float | None
    bytes: int
    median_bytes: float | None
    rows: int
    median_rows: float | None
    flags: tuple[str, ...]

    def row(self) -> dict:
        def ratio(value: float, median: float | None) -> float | None:
            return round(value / median, 2) if median else None

        return {
            "stage": self.stage,
            "earlier_runs": self.earlier_runs,
            "seconds": self.seconds,
            "median_seconds": self.median_seconds,
            "seconds_ratio": ratio(self.seconds, self.median_seconds),
            "bytes": self.bytes,
            "median_bytes": self.median_bytes,
            "bytes_ratio": ratio(self.bytes, self.median_bytes),
            "rows": self.rows,
            "median_rows": self.median_rows,
            "flags": "; ".join(self.flags) or "ok",
        }


def stage_health(
    stage: str, runs: Sequence[Mapping], policy: ObservabilitySettings
) -> StageHealth | None:
    """The latest of `runs` (oldest first; each with stage_seconds, artefact_bytes and
    rows_processed) against the median of up to `history_runs` before it; None without runs."""
    if not runs:
        return None
    *earlier, latest = runs
    earlier = earlier[-policy.history_runs :]
    seconds = float(latest["stage_seconds"])
    size = int(latest["artefact_bytes"])
    rows = int(latest["rows_processed"])
    if len(earlier) < policy.min_history:
        return StageHealth(stage, len(earlier), seconds, None, size, None, rows, None, ())
    median_seconds = statistics.median(float(r["stage_seconds"]) for r in earlier)
    median_bytes = statistics.median(int(r["artefact_bytes"]) for r in earlier)
    median_rows = statistics.median(int(r["rows_processed"]) for r in earlier)
    flags = []
    if (
        seconds >= policy.min_seconds
        and median_seconds > 0
        and seconds > policy.max_seconds_ratio * median_seconds
    ):
        flags.append(
            f"{seconds:.1f} s is {seconds / median_seconds:.1f}x the median {median_seconds:.1f} s "
            f"(limit {policy.max_seconds_ratio}x)"
        )
    if median_bytes > 0 and size > policy.max_bytes_ratio * median_bytes:
        flags.append(
            f"{size:,} bytes is {size / median_bytes:.1f}x the median {median_bytes:,.0f} "
            f"(limit {policy.max_bytes_ratio}x)"
        )
    return StageHealth(
        stage,
        len(earlier),
        seconds,
        round(median_seconds, 3),
        size,
        median_bytes,
        rows,
        median_rows,
        tuple(flags),
    )
