"""The retraining ledger: what each retrain cost and what it bought, to choose a cadence by.

One row per trained version: why it was trained (the run's trigger), the compute its training
steps took, the rows it learned from, and its marginal gain over the champion it was judged
against: the paired bootstrap of ROC AUC(candidate) - ROC AUC(champion) on the same test rows,
with its interval. A cadence whose retrains rarely gain significantly (the interval's low end
above 0) costs compute for nothing; a trigger whose retrains do gain earns its runs.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ml_assets.evaluation.evidence import Evaluation

# A run no sensor or schedule requested (`make run`, the UI's Materialize button).
MANUAL = "manual"


@dataclass(frozen=True)
class Retrain:
    version: str
    trained_at: str
    trigger: str
    window: str
    train_rows: int | None
    compute_seconds: float
    champion: str
    auc_gain: float | None
    gain_low: float | None
    gain_high: float | None
    gates_failed: str

    @property
    def significant(self) -> bool:
        """The gain's interval lies above 0: the retrain beat its champion on the same rows."""
        return self.gain_low is not None and self.gain_low > 0

    def row(self) -> dict:
        return {**asdict(self), "significant_gain": self.significant}


def gain_over_champion(
    evaluation: Evaluation | None,
) -> tuple[str, float | None, float | None, float | None, str]:
    """(champion version, AUC gain, its interval's low and high, failed gates) of an evaluation;
    "none" and Nones for the first model, "not evaluated" when there is no evaluation."""
    if evaluation is None:
        return "not evaluated", None, None, None, "not evaluated"
    failed = ", ".join(sorted(n for n, d in evaluation.gates.items() if not d.get("passed")))
    if evaluation.champion is None or evaluation.comparison is None:
        return "none", None, None, None, failed or "none"
    boot = evaluation.comparison.bootstrap
    return (
        evaluation.champion.version,
        round(boot.difference, 4),
        round(boot.low, 4),
        round(boot.high, 4),
        failed or "none",
    )


def compute_seconds(steps: Iterable[tuple[str, float | None, float | None]]) -> float:
    """Seconds of the finished steps among `(step key, start, end)`."""
    return round(sum(end - start for _, start, end in steps if start and end), 2)


def cadence_summary(rows: Sequence[Retrain]) -> list[dict]:
    """Per trigger: retrains, their median compute, median gain, and how many gained
    significantly; what a cadence costs beside what it buys."""
    by_trigger: dict[str, list[Retrain]] = {}
    for row in rows:
        by_trigger.setdefault(row.trigger, []).append(row)
    summary = []
    for trigger, group in sorted(by_trigger.items()):
        gains = [r.auc_gain for r in group if r.auc_gain is not None]
        significant = sum(r.significant for r in group)
        total = sum(r.compute_seconds for r in group)
        summary.append(
            {
                "trigger": trigger,
                "retrains": len(group),
                "compute_seconds": round(total, 1),
                "median_auc_gain": round(statistics.median(gains), 4) if gains else None,
                "significant_gains": significant,
                "seconds_per_significant_gain": round(total / significant, 1)
                if significant
                else None,
            }
        )
    return summary


def trigger_of(tags: Mapping[str, str], trigger_tag: str) -> str:
    return tags.get(trigger_tag, MANUAL)
