"""Drift of a batch against the training reference, measured with evidently."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ml_assets.monitoring.policy import DriftSettings


@dataclass(frozen=True)
class DriftSummary:
    """Evidently's verdict on one batch: share of drifted columns and per-column scores."""

    drifted_share: float
    drifted_columns: int
    columns: int
    threshold: float
    column_scores: dict[str, dict[str, float | str]] = field(default_factory=dict)

    @property
    def dataset_drift(self) -> bool:
        return self.drifted_share > self.threshold

    @property
    def drifted_column_names(self) -> list[str]:
        """Columns past their own test's threshold (p-values below it, distances at or above)."""
        names = []
        for column, score in self.column_scores.items():
            method = str(score["method"]).lower()
            if "p_value" in method or "test" in method:
                drifted = score["score"] < score["threshold"]
            else:
                drifted = score["score"] >= score["threshold"]
            if drifted:
                names.append(column)
        return sorted(names)


def measure_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: list[str],
    *,
    drifted_share_threshold: float,
    html_path: Path | None = None,
    policy: DriftSettings | None = None,
) -> DriftSummary:
    """Run evidently's DataDriftPreset on `columns` with the policy's per-column methods and
    thresholds (evidently's size-based choice where the policy names none); optionally save
    the HTML report."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    missing = [c for c in columns if c not in current.columns]
    if missing:
        raise KeyError(f"current batch lacks drift column(s) {missing}")
    methods = {}
    if policy is not None:
        methods = {
            "num_method": policy.numeric_method,
            "cat_method": policy.categorical_method,
            "num_threshold": policy.numeric_threshold,
            "cat_threshold": policy.categorical_threshold,
            "per_column_threshold": dict(policy.column_thresholds) or None,
        }
    report = Report(
        [DataDriftPreset(columns=columns, drift_share=drifted_share_threshold, **methods)]
    )
    snapshot = report.run(current_data=current[columns], reference_data=reference[columns])
    if html_path is not None:
        html_path.parent.mkdir(parents=True, exist_ok=True)
        snapshot.save_html(str(html_path))
    count, share, scores = None, None, {}
    for metric in snapshot.dict()["metrics"]:
        kind = metric["config"]["type"]
        if kind.endswith("DriftedColumnsCount"):
            count, share = metric["value"]["count"], metric["value"]["share"]
        elif kind.endswith("ValueDrift"):
            cfg = metric["config"]
            scores[cfg["column"]] = {
                "score": float(metric["value"]),
                "method": str(cfg["method"]),
                "threshold": float(cfg["threshold"]),
            }
    if count is None or share is None:
        raise RuntimeError("evidently's report has no DriftedColumnsCount metric")
    return DriftSummary(
        drifted_share=float(share),
        drifted_columns=int(count),
        columns=len(columns),
        threshold=drifted_share_threshold,
        column_scores=scores,
    )
