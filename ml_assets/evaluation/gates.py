"""Evaluation gate decisions: pure functions from evaluation evidence and policy to a verdict.

Every gate is a list of criteria (value against threshold, with the champion's value beside it).
The gate passes when every criterion does; the criterion closest to failing is the gate's headline
value, and its margin (distance to the threshold on the passing side, relative to a scale) is what
the gate-history asset tracks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ml_assets.evaluation.policy import (
    LOWER_IS_BETTER,
    BaselineGate,
    BehaviourGate,
    CalibrationGate,
    ChampionGate,
    FairnessGate,
    FloorGate,
    GateSettings,
    OperationalGate,
    ReproducibilityGate,
    SignificanceGate,
    SliceGate,
)

if TYPE_CHECKING:
    from ml_assets.evaluation.evidence import (
        Baselines,
        BehaviourCase,
        Calibration,
        Comparison,
        Evaluation,
        Fairness,
        Operational,
        Reproducibility,
        SliceEvidence,
    )


@dataclass(frozen=True)
class Criterion:
    """One comparison of a gate: `value` must be `direction` `threshold`."""

    name: str
    value: float
    threshold: float
    direction: Literal[">=", "<="]
    reference: float | None = None
    # Distance that counts as "one unit" of margin; the threshold's size when not given.
    scale: float | None = None
    # Set when passing takes more than the comparison (e.g. a drop must also be significant).
    verdict: bool | None = None
    note: str = ""
    # A yes/no property (identical files, say): the margin is +1 when it holds, -1 when not.
    binary: bool = False

    @property
    def margin(self) -> float:
        if self.binary:
            # Nothing to be near: a yes/no property is either held (no margin) or broken.
            return math.inf if self.passed else -1.0
        margin = self._room()
        if math.isnan(margin):
            return 0.0 if self.passed else -1.0
        if self.verdict is not None:
            # An overridden verdict (a breach that is not significant, say) keeps the margin's
            # sign consistent with it: a pass never shows a negative margin, a failure never a
            # positive one.
            return max(margin, 0.0) if self.verdict else min(margin, 0.0)
        return margin

    def _room(self) -> float:
        room = (
            self.value - self.threshold if self.direction == ">=" else self.threshold - self.value
        )
        scale = self.scale if self.scale else (abs(self.threshold) or 1.0)
        return room / scale

    @property
    def passed(self) -> bool:
        if self.verdict is not None:
            return self.verdict
        if math.isnan(self.value):
            return False
        return (
            self.value >= self.threshold if self.direction == ">=" else self.value <= self.threshold
        )

    def row(self) -> dict[str, Any]:
        return {
            "criterion": self.name,
            "value": round(self.value, 5),
            "rule": f"{self.direction} {round(self.threshold, 5)}",
            "champion": None if self.reference is None else round(self.reference, 5),
            "passed": self.passed,
            "note": self.note,
        }


@dataclass(frozen=True)
class GateDecision:
    """A gate's verdict with its evidence: value, threshold, champion's value, margin and why."""

    gate: str
    passed: bool
    value: float
    threshold: float
    reference: float | None
    margin: float
    reason: str
    criteria: tuple[Criterion, ...] = field(default_factory=tuple)

    def table(self) -> list[dict[str, Any]]:
        return [c.row() for c in self.criteria]

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["criteria"] = self.table()
        return out


def decide(gate: str, criteria: list[Criterion], *, empty_reason: str = "") -> GateDecision:
    """Combine criteria: all must pass; the failing (or tightest) one explains the verdict."""
    if not criteria:
        return GateDecision(
            gate, True, 0.0, 0.0, None, math.inf, empty_reason or "nothing to judge"
        )
    failing = [c for c in criteria if not c.passed]
    binding = failing[0] if failing else min(criteria, key=lambda c: c.margin)
    champion = "" if binding.reference is None else f" (champion {binding.reference:.4g})"
    note = f"; {binding.note}" if binding.note else ""
    if failing:
        # Every failing criterion is named, not counted.
        others = (
            f"; also failing: {', '.join(c.name for c in failing[1:])}" if len(failing) > 1 else ""
        )
        reason = (
            f"{binding.name} = {binding.value:.4g} breaks {binding.direction} "
            f"{binding.threshold:.4g}{champion}{note}{others}"
        )
    else:
        reason = (
            f"all {len(criteria)} criteria pass; closest: {binding.name} = {binding.value:.4g} "
            f"vs {binding.direction} {binding.threshold:.4g}{champion}"
        )
    return GateDecision(
        gate=gate,
        passed=not failing,
        value=binding.value,
        threshold=binding.threshold,
        reference=binding.reference,
        margin=-1.0
        if failing and min(c.margin for c in criteria) >= 0
        else min(c.margin for c in criteria),
        reason=reason,
        criteria=tuple(criteria),
    )


def _no_champion(gate: str) -> GateDecision:
    return GateDecision(
        gate, True, 0.0, 0.0, None, math.inf, "no champion: no model holds the production alias"
    )


def _skill(value: float, base: float) -> float:
    """1 - value / base: 0 for the base-rate predictor's loss, 1 for a perfect model."""
    return 1 - value / base if base > 0 else math.nan


def _no_baselines() -> Criterion:
    return Criterion(
        "baseline evidence",
        math.nan,
        0.0,
        ">=",
        verdict=False,
        note="this evaluation predates the baselines: rematerialise evaluation_report",
    )


def metric_floors(
    metrics: dict[str, float], baselines: Baselines | None, policy: FloorGate
) -> GateDecision:
    """Floors on the candidate's test metrics; log loss as skill against the base rate."""
    criteria = [
        Criterion("roc_auc", metrics["roc_auc"], policy.min_roc_auc, ">="),
        Criterion("pr_auc", metrics["pr_auc"], policy.min_pr_auc, ">="),
    ]
    if baselines is None:
        criteria.append(_no_baselines())
    else:
        prior = baselines.prior["log_loss"]
        criteria.append(
            Criterion(
                "log_loss skill vs base rate",
                _skill(metrics["log_loss"], prior),
                policy.min_log_loss_skill,
                ">=",
                scale=0.1,
                note=f"log loss {metrics['log_loss']:.4f}, base-rate predictor's {prior:.4f}",
            )
        )
    if policy.max_log_loss is not None:
        criteria.append(Criterion("log_loss", metrics["log_loss"], policy.max_log_loss, "<="))
    criteria += [
        Criterion("f1", metrics["f1"], policy.min_f1, ">="),
        Criterion("accuracy", metrics["accuracy"], policy.min_accuracy, ">="),
    ]
    return decide("metric_floors", criteria)


def beats_baselines(
    metrics: dict[str, float], baselines: Baselines | None, policy: BaselineGate
) -> GateDecision:
    """Better than the prior (log loss) and than a logistic regression (ROC AUC)."""
    if baselines is None:
        return decide("baselines", [_no_baselines()])
    logistic = baselines.logistic_regression
    return decide(
        "baselines",
        [
            Criterion(
                "log_loss vs base-rate predictor",
                metrics["log_loss"],
                baselines.prior["log_loss"],
                "<=",
                verdict=metrics["log_loss"] < baselines.prior["log_loss"],
                scale=0.05,
                note=f"every row scored {baselines.train_positive_rate:.4f}",
            ),
            Criterion(
                "roc_auc vs logistic regression",
                metrics["roc_auc"],
                logistic["roc_auc"] + policy.min_roc_auc_gain,
                ">=",
                scale=0.01,
                note=f"logistic regression {logistic['roc_auc']:.4f}, gain needed "
                f"{policy.min_roc_auc_gain:+.4f}, fitted on {baselines.logistic_train_rows} "
                "train rows",
            ),
        ],
    )


def champion_regression(
    candidate: dict[str, float], champion: dict[str, float] | None, policy: ChampionGate
) -> GateDecision:
    """No metric may regress beyond its tolerance against the production model."""
    if champion is None:
        return _no_champion("champion_regression")
    criteria = []
    for metric, tolerance in sorted(policy.max_regression.items()):
        lower = metric in LOWER_IS_BETTER
        criteria.append(
            Criterion(
                metric,
                candidate[metric],
                champion[metric] + tolerance if lower else champion[metric] - tolerance,
                "<=" if lower else ">=",
                reference=champion[metric],
                scale=tolerance or None,
                note=f"tolerance {tolerance}",
            )
        )
    return decide("champion_regression", criteria)


def slice_regression(slices: list[SliceEvidence], policy: SliceGate) -> GateDecision:
    """Every large-enough slice reaches the floor and does not significantly regress."""
    criteria = []
    for s in slices:
        if s.rows < policy.min_rows:
            continue
        label = f"{s.column}={s.value}"
        criteria.append(
            Criterion(
                f"{label} roc_auc",
                s.candidate_roc_auc,
                policy.min_roc_auc,
                ">=",
                reference=s.champion_roc_auc,
                note=f"{s.rows} rows",
            )
        )
        if s.champion_roc_auc is None:
            continue
        drop = s.champion_roc_auc - s.candidate_roc_auc
        # A breach that was within the tolerance in force at evaluation time has no bootstrap
        # interval: with the tighter tolerance now configured it counts until re-evaluated.
        untested = drop > policy.max_regression and s.drop_low is None
        significant = untested or (s.drop_low is not None and s.drop_low > 0)
        criteria.append(
            Criterion(
                f"{label} drop vs champion",
                drop,
                policy.max_regression,
                "<=",
                reference=s.champion_roc_auc,
                scale=policy.max_regression or None,
                verdict=not (drop > policy.max_regression and significant),
                note=(
                    f"drop CI [{s.drop_low:.4f}, {s.drop_high:.4f}]"
                    if s.drop_low is not None
                    else "no interval at this tolerance: rematerialise evaluation_report"
                    if untested
                    else "drop within tolerance: no significance test needed"
                ),
            )
        )
    return decide("slice_regression", criteria, empty_reason="no slice reaches min_rows")


def fairness(
    candidate: dict[str, Fairness], champion: dict[str, Fairness] | None, policy: FairnessGate
) -> GateDecision:
    """Parity and equalized-odds differences within bounds and not worse than the champion's."""
    criteria = []
    bounds = {
        "demographic_parity_difference": policy.max_demographic_parity_difference,
        "equalized_odds_difference": policy.max_equalized_odds_difference,
    }
    for column, result in sorted(candidate.items()):
        for metric, bound in bounds.items():
            theirs = getattr(champion[column], metric) if champion else None
            mine = getattr(result, metric)
            criteria.append(Criterion(f"{column} {metric}", mine, bound, "<=", reference=theirs))
            if theirs is not None:
                criteria.append(
                    Criterion(
                        f"{column} {metric} vs champion",
                        mine,
                        theirs + policy.max_regression,
                        "<=",
                        reference=theirs,
                        scale=policy.max_regression or None,
                        note=f"tolerance {policy.max_regression}",
                    )
                )
    return decide("fairness", criteria, empty_reason="no sensitive column configured")


def calibration(
    candidate: Calibration,
    champion: Calibration | None,
    baselines: Baselines | None,
    policy: CalibrationGate,
) -> GateDecision:
    """Brier skill against the base rate and calibration error relative to the base rate
    (absolute ceilings too, when configured)."""
    criteria = []
    if baselines is None:
        criteria.append(_no_baselines())
    else:
        prior_brier = baselines.prior["brier"]
        rate = baselines.train_positive_rate
        rarer = min(rate, 1 - rate)
        criteria += [
            Criterion(
                "brier skill vs base rate",
                _skill(candidate.brier, prior_brier),
                policy.min_brier_skill,
                ">=",
                reference=champion and _skill(champion.brier, prior_brier),
                scale=0.1,
                note=f"Brier {candidate.brier:.4f}, base-rate predictor's {prior_brier:.4f}",
            ),
            Criterion(
                "ece / rarer class rate",
                candidate.ece / rarer if rarer > 0 else math.nan,
                policy.max_relative_ece,
                "<=",
                reference=champion and champion.ece / rarer if rarer > 0 else None,
                note=f"ECE {candidate.ece:.4f}, rarer class rate {rarer:.4f}",
            ),
        ]
    if policy.max_brier is not None:
        criteria.append(
            Criterion("brier", candidate.brier, policy.max_brier, "<=", champion and champion.brier)
        )
    if policy.max_ece is not None:
        criteria.append(
            Criterion("ece", candidate.ece, policy.max_ece, "<=", champion and champion.ece)
        )
    return decide("calibration", criteria)


def operational(profile: Operational, policy: OperationalGate) -> GateDecision:
    """Latency, throughput, model size and scoring memory within the budget, and not much
    slower than the champion measured beside the candidate."""
    champion = profile.champion
    criteria = [
        Criterion("p50_ms", profile.p50_ms, policy.max_p50_ms, "<=", champion and champion.p50_ms),
        Criterion("p99_ms", profile.p99_ms, policy.max_p99_ms, "<=", champion and champion.p99_ms),
        Criterion(
            "rows_per_second",
            profile.rows_per_second,
            policy.min_rows_per_second,
            ">=",
            champion and champion.rows_per_second,
        ),
        Criterion(
            "model_mb", profile.model_mb, policy.max_model_mb, "<=", champion and champion.model_mb
        ),
        Criterion("peak_rss_mb", profile.peak_rss_mb, policy.max_peak_memory_mb, "<="),
    ]
    if champion is not None:
        criteria += [
            Criterion(
                "p50 slowdown vs champion",
                profile.p50_ms / champion.p50_ms,
                policy.max_slowdown,
                "<=",
                1.0,
                note="candidate's single-row p50 / champion's, measured interleaved",
            ),
            Criterion(
                "batch slowdown vs champion",
                champion.rows_per_second / profile.rows_per_second,
                policy.max_slowdown,
                "<=",
                1.0,
                note="candidate's CPU time per batch row / champion's, measured interleaved",
            ),
        ]
    return decide("operational", criteria)


def behaviour(results: list[BehaviourCase] | None, policy: BehaviourGate) -> GateDecision:
    """Every behaviour case holds (minimum functionality exactly, perturbations up to a rate)."""
    if results is None:
        return decide("behaviour", [], empty_reason="no behaviour cases configured")
    criteria = []
    for r in results:
        name = f"{r.kind}: {r.name}"
        if r.kind == "minimum_functionality":
            # The score against its band: a case just inside the band is a near miss.
            for bound, direction in ((r.expected_max, "<="), (r.expected_min, ">=")):
                if bound is not None:
                    criteria.append(
                        Criterion(name, r.score, bound, direction, scale=0.05, note=r.detail)
                    )
            continue
        criteria.append(
            Criterion(
                name,
                r.failures / r.rows if r.rows else 0.0,
                policy.max_failure_rate,
                "<=",
                scale=policy.max_failure_rate or 0.01,
                note=r.detail,
            )
        )
    return decide("behaviour", criteria, empty_reason="the cases file holds no case")


def significance(comparison: Comparison | None, policy: SignificanceGate) -> GateDecision:
    """Non-inferiority (and, under `superior`, significant gain) of the AUC difference."""
    if comparison is None:
        return _no_champion("significance")
    boot, test = comparison.bootstrap, comparison.mcnemar
    evidence = (
        f"AUC diff {boot.difference:+.4f}, {boot.confidence:.0%} CI "
        f"[{boot.low:+.4f}, {boot.high:+.4f}]; McNemar p = {test.p_value:.3g} "
        f"({test.only_challenger_right} vs {test.only_champion_right} discordant)"
    )
    criteria = [
        Criterion(
            "AUC difference lower bound (non-inferiority)",
            boot.low,
            -policy.non_inferiority_margin,
            ">=",
            scale=policy.non_inferiority_margin or None,
            note=evidence,
        )
    ]
    if policy.rule == "superior":
        criteria.append(
            Criterion(
                "AUC difference lower bound (superiority)",
                boot.low,
                0.0,
                ">=",
                scale=policy.non_inferiority_margin or None,
                verdict=boot.low > 0,
                note=evidence,
            )
        )
    return decide("significance", criteria)


def reproducibility(evidence: Reproducibility, policy: ReproducibilityGate) -> GateDecision:
    """A retrain with the same data version, config and seed gives the same model or scores."""
    same_file = evidence.candidate_sha256 == evidence.retrained_sha256
    note = (
        f"candidate {evidence.candidate_sha256[:12]}, retrain "
        f"{evidence.retrained_sha256[:12]}: {'same file' if same_file else 'files differ'}"
    )
    if evidence.data_version != evidence.candidate_data_version:
        return decide(
            "reproducibility",
            [
                Criterion(
                    "training data version",
                    math.nan,
                    0.0,
                    "<=",
                    verdict=False,
                    note=f"training data is {evidence.data_version}, the candidate was "
                    f"trained on {evidence.candidate_data_version}: rematerialise the chain",
                )
            ],
        )
    return decide(
        "reproducibility",
        [
            Criterion(
                "max score difference on test rows",
                evidence.max_score_difference,
                policy.max_score_difference,
                "<=",
                binary=True,
                verdict=same_file or evidence.max_score_difference <= policy.max_score_difference,
                note=note,
            )
        ],
    )


def _champion(e: Evaluation, part: str) -> Any:
    return getattr(e.champion, part) if e.champion else None


Decider = Callable[["Evaluation", GateSettings], GateDecision]


@dataclass(frozen=True)
class EvaluationGate:
    """One evaluation gate: its check name, its block of pipeline.yaml's `gates:` (thresholds
    and severity), the description the UI shows, and its decision from the evidence."""

    name: str
    section: str
    description: str
    decide: Decider


# The ten evaluation gates, spelled once: the checks, the report's gate table, the MLflow tags
# and the severities all come from this table.
EVALUATION_GATES: tuple[EvaluationGate, ...] = (
    EvaluationGate(
        "candidate_meets_metric_floors",
        "floors",
        "Test ROC AUC, PR AUC, F1 and accuracy reach their floors; log loss beats the base rate "
        "by the configured skill.",
        lambda e, g: metric_floors(e.candidate.metrics, e.baselines, g.floors),
    ),
    EvaluationGate(
        "candidate_beats_baselines",
        "baselines",
        "Beats the base-rate predictor on log loss and a logistic regression on ROC AUC, on the "
        "same test rows.",
        lambda e, g: beats_baselines(e.candidate.metrics, e.baselines, g.baselines),
    ),
    EvaluationGate(
        "candidate_not_worse_than_production",
        "champion",
        "No metric regresses beyond its tolerance against the production model on the same "
        "test rows.",
        lambda e, g: champion_regression(e.candidate.metrics, _champion(e, "metrics"), g.champion),
    ),
    EvaluationGate(
        "candidate_slices_not_worse",
        "slices",
        "Every large-enough slice reaches its AUC floor and does not significantly regress "
        "against the production model.",
        lambda e, g: slice_regression(e.slices, g.slices),
    ),
    EvaluationGate(
        "candidate_is_fair_across_groups",
        "fairness",
        "Demographic parity and equalized odds differences within bounds and no worse than the "
        "production model's.",
        lambda e, g: fairness(e.candidate.fairness, _champion(e, "fairness"), g.fairness),
    ),
    EvaluationGate(
        "candidate_is_calibrated",
        "calibration",
        "Brier skill over the base rate, and calibration error relative to the base rate, "
        "within bounds.",
        lambda e, g: calibration(
            e.candidate.calibration, _champion(e, "calibration"), e.baselines, g.calibration
        ),
    ),
    EvaluationGate(
        "candidate_meets_operational_budget",
        "operational",
        "Single-row p50/p99 latency, throughput, model size and scoring memory within budget "
        "on this machine.",
        lambda e, g: operational(e.operational, g.operational),
    ),
    EvaluationGate(
        "candidate_passes_behaviour_tests",
        "behaviour",
        "Minimum-functionality, invariance and directional behaviour cases hold.",
        lambda e, g: behaviour(e.behaviour, g.behaviour),
    ),
    EvaluationGate(
        "candidate_passes_champion_challenger_test",
        "significance",
        "Paired bootstrap and McNemar against the production model satisfy the configured rule.",
        lambda e, g: significance(e.comparison, g.significance),
    ),
    EvaluationGate(
        "candidate_training_is_reproducible",
        "reproducibility",
        "A retrain with the same data version, config and seed gives the same model file or "
        "scores.",
        lambda e, g: reproducibility(e.reproducibility, g.reproducibility),
    ),
)


def severities(gates: GateSettings) -> dict[str, str]:
    """Each evaluation gate's severity (ERROR or WARN), from its block of pipeline.yaml."""
    return {gate.name: getattr(gates, gate.section).severity for gate in EVALUATION_GATES}


def decide_all(evaluation: Evaluation, gates: GateSettings) -> dict[str, GateDecision]:
    """Every evaluation gate's decision, keyed by its check name."""
    return {gate.name: gate.decide(evaluation, gates) for gate in EVALUATION_GATES}


def evidence_for(section: str, evaluation: Evaluation) -> Any:
    """The part of the evaluation a gate decided on (JSON-ready), for its check's metadata."""
    if section in ("floors", "champion", "fairness", "calibration"):
        part = "metrics" if section in ("floors", "champion") else section
        mine = getattr(evaluation.candidate, part)
        if section == "floors":
            return mine
        theirs = _champion(evaluation, part)
        return _jsonable({"candidate": mine, "champion": theirs})
    key = {"significance": "comparison"}.get(section, section)  # baselines: its own field
    return _jsonable(getattr(evaluation, key))


def _jsonable(value: Any) -> Any:
    """Evidence models (alone, in lists or dicts) as plain JSON values."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value
