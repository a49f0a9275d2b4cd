"""The evaluation evidence, typed: what `evaluation_report` measured and every gate decides on.

Written to `evaluation.json` by the asset and read back by the gates, the report and delivery
through attributes, so a renamed or missing field fails where the file is read, naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


class Evidence(BaseModel):
    # NaN and infinity are written as JSON's NaN/Infinity, as json.dumps does, so a value that
    # could not be measured reads back as the same float instead of turning into null.
    model_config = ConfigDict(
        extra="forbid", frozen=True, ser_json_inf_nan="constants", defer_build=True
    )


class Calibration(Evidence):
    """Equal-width bins of predicted probability (filled bins only) and the errors over them."""

    ece: float
    brier: float
    bin_mean_score: list[float]
    bin_positive_rate: list[float]
    bin_rows: list[int]


class Fairness(Evidence):
    """fairlearn's differences across the groups of one sensitive column, and per-group rates."""

    demographic_parity_difference: float
    equalized_odds_difference: float
    groups: list[dict[str, Any]]
    excluded_groups: list[str]


class ModelEvidence(Evidence):
    """One model's scores on the test rows: metrics, calibration, fairness."""

    version: str
    run_id: str | None = None
    metrics: dict[str, float]
    calibration: Calibration
    fairness: dict[str, Fairness]


class SliceEvidence(Evidence):
    """ROC AUC of both models on one slice value; a drop interval when the drop exceeds the
    tolerance in force at evaluation time."""

    column: str
    value: str
    rows: int
    positives: int
    candidate_roc_auc: float
    champion_roc_auc: float | None = None
    drop_low: float | None = None
    drop_high: float | None = None


class Bootstrap(Evidence):
    """Paired bootstrap of ROC AUC(candidate) - ROC AUC(champion) on the same rows."""

    difference: float
    low: float
    high: float
    confidence: float
    samples: int
    valid_samples: int


class McNemar(Evidence):
    """McNemar's exact test on paired errors at the decision threshold."""

    both_right: int
    only_challenger_right: int
    only_champion_right: int
    both_wrong: int
    p_value: float


class Comparison(Evidence):
    bootstrap: Bootstrap
    mcnemar: McNemar


class ScoringCost(Evidence):
    """What scoring with one model costs, in CPU time of the scoring thread.

    CPU time, not the wall clock: a process waiting for a core (a busy CI machine) does not run
    up CPU time, so the figures are the model's cost rather than the machine's load. Each figure
    is the minimum over the measurement's rounds.
    """

    p50_ms: float
    p99_ms: float
    # Rows of one batch call per CPU second, on one thread.
    rows_per_second: float
    # The same single-row requests by the wall clock (median over rounds): what a caller waited
    # on this machine at the time, for information; load changes it and no verdict reads it.
    wall_p50_ms: float
    model_mb: float


class Operational(ScoringCost):
    """The candidate's scoring cost (its own fields), the champion's measured interleaved with
    it in the same process, and the scoring process's memory."""

    champion: ScoringCost | None = None
    peak_rss_mb: float
    baseline_rss_mb: float
    single_row_requests: int
    batch_rows: int
    rounds: int = 1


class BehaviourCase(Evidence):
    """One behaviour case's outcome (minimum functionality, invariance or directional)."""

    kind: str
    name: str
    rows: int
    failures: int
    passed: bool
    detail: str
    failing_sample: list[dict[str, Any]] = []
    score: float | None = None
    expected_min: float | None = None
    expected_max: float | None = None
    failure_rate: float


class Reproducibility(Evidence):
    """A retrain with the same data version, config and seed, beside the candidate."""

    data_version: str
    candidate_data_version: str
    candidate_sha256: str
    retrained_sha256: str
    max_score_difference: float
    seed: int


class Baselines(Evidence):
    """The simple models the candidate must beat, on the same test rows (evaluation/baselines)."""

    train_positive_rate: float
    prior: dict[str, float]  # metrics of every row scored at the train split's positive rate
    logistic_regression: dict[str, float]  # metrics of a logistic regression on the features
    logistic_train_rows: int


class Evaluation(Evidence):
    """Everything `evaluation_report` measured on the candidate (and the champion, if any)."""

    model: str
    data_version: str
    test_rows: int
    decision_threshold: float
    # How the threshold was set: "fixed" (pipeline.yaml) or "max_f1" (on the validation split).
    threshold_rule: str = "fixed"
    candidate: ModelEvidence
    champion: ModelEvidence | None
    slices: list[SliceEvidence]
    comparison: Comparison | None
    operational: Operational
    behaviour: list[BehaviourCase] | None
    reproducibility: Reproducibility
    baselines: Baselines | None = None  # None in evaluations written before the baseline gate
    # Batches of the training window that a WARN data gate flagged: day -> "gate: reason".
    flagged_batches: dict[str, list[str]] = {}
    # The verdicts at evaluation time, as the report shows them; the checks decide afresh from
    # the evidence above and the current pipeline.yaml.
    gates: dict[str, dict[str, Any]] = {}

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=1))

    @classmethod
    def load(cls, path: Path) -> Evaluation:
        """The evaluation at `path`; a missing or malformed file names the file and the field."""
        if not path.exists():
            raise FileNotFoundError(f"no evaluation at {path}: materialise evaluation_report first")
        try:
            return cls.model_validate_json(path.read_text())
        except ValidationError as error:
            fields = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()[:5]
            )
            raise ValueError(f"{path} is not a valid evaluation ({fields})") from None
