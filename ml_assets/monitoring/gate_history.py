"""Gate hygiene: how often each gate ran and failed, and how close it came to its threshold.

A gate that never comes near its threshold may be too loose to ever fail; a gate that fails most
of the time is too strict, or is reporting a real, persistent problem. Both deserve a look.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

NEVER_NEAR = "never near threshold"
FAILS_MOSTLY = "fails most of the time"

COLUMNS = [
    "gate",
    "runs",
    "failures",
    "fail_rate",
    "closest_margin",
    "median_margin",
    "last_value",
    "last_threshold",
    "flag",
]


@dataclass(frozen=True)
class GateEvaluation:
    """One past evaluation of a gate (an asset check).

    `margin` is the gate's own signed, relative distance to its threshold on the passing side:
    > 0 passing with room, 0 at the threshold, < 0 failing (0.1 = 10% of the threshold away).
    None when the gate did not report one: from a value and a threshold alone the direction of
    "passing" is unknown, so no margin is inferred.
    """

    gate: str
    passed: bool
    severity: str
    margin: float | None
    value: float | None
    threshold: float | None
    timestamp: float


def _known(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _or_nan(x: float | None) -> float:
    return float(x) if _known(x) else math.nan


def summarise_gate_history(
    evaluations: list[GateEvaluation],
    *,
    near_margin: float = 0.1,
    min_runs: int = 5,
    max_fail_rate: float = 0.5,
) -> pd.DataFrame:
    """One row per gate, sorted by gate: runs, failures, fail rate, margins, last value, flag.

    `closest_margin` and `median_margin` are over the evaluations that reported a margin (NaN
    when none did); `last_value` and `last_threshold` come from the newest evaluation. Flags, for
    gates with at least `min_runs` runs: "fails most of the time" when the fail rate exceeds
    `max_fail_rate`; otherwise "never near threshold" when every evaluation reported a margin and
    the closest one is still above `near_margin`; otherwise "".
    """
    if min_runs < 1:
        raise ValueError(f"min_runs must be at least 1, got {min_runs}")
    if not 0.0 <= max_fail_rate <= 1.0:
        raise ValueError(f"max_fail_rate must be between 0 and 1, got {max_fail_rate}")

    by_gate: dict[str, list[GateEvaluation]] = {}
    for evaluation in evaluations:
        by_gate.setdefault(evaluation.gate, []).append(evaluation)

    rows = []
    for gate in sorted(by_gate):
        history = by_gate[gate]
        runs = len(history)
        failures = sum(not e.passed for e in history)
        fail_rate = failures / runs
        margins = [float(e.margin) for e in history if _known(e.margin)]
        closest = min(margins) if margins else math.nan
        median = float(pd.Series(margins).median()) if margins else math.nan
        # The newest evaluation; on equal timestamps the later one in the input wins.
        last = max(enumerate(history), key=lambda item: (item[1].timestamp, item[0]))[1]
        flag = ""
        if runs >= min_runs:
            if fail_rate > max_fail_rate:
                flag = FAILS_MOSTLY
            elif len(margins) == runs and closest > near_margin:
                flag = NEVER_NEAR
        rows.append(
            {
                "gate": gate,
                "runs": runs,
                "failures": failures,
                "fail_rate": fail_rate,
                "closest_margin": closest,
                "median_margin": median,
                "last_value": _or_nan(last.value),
                "last_threshold": _or_nan(last.threshold),
                "flag": flag,
            }
        )
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.astype(
        {
            "gate": "object",
            "runs": "int64",
            "failures": "int64",
            "fail_rate": "float64",
            "closest_margin": "float64",
            "median_margin": "float64",
            "last_value": "float64",
            "last_threshold": "float64",
            "flag": "object",
        }
    )
