"""The retraining triggers' rules, on known answers (retraining/triggers, monitoring/live)."""

from ml_assets.monitoring.live import ESTIMATED, sustained_breach
from ml_assets.retraining.triggers import (
    DriftObservation,
    Evidence,
    already_trained_on,
    drift_progress,
    newest_per_batch,
    sustained_drift,
)


def _seen(batch, drifted, reference="r1", share=0.5):
    return DriftObservation(batch, reference, drifted, share)


def test_k_consecutive_drifting_batches_against_one_reference():
    history = [
        _seen("d1", True),
        _seen("d2", False),
        _seen("d3", True),
        _seen("d4", True, reference="r0"),  # measured against an older reference
    ]
    assert sustained_drift(history, "r1", 2, 0.3) is None  # d2 calm, d3 alone
    assert (
        drift_progress(history, "r1") == "batch d3 drift share 0.500; 1 drifting batch(es) in a row"
    )
    history.append(_seen("d4", True, share=0.75))
    evidence = sustained_drift(history, "r1", 2, 0.3)
    assert evidence.batches == ("d3", "d4") and evidence.trigger == "drift"
    assert evidence.details["drifted_share"] == [0.5, 0.75]
    assert sustained_drift(history, "r1", 3, 0.3) is None  # d2 breaks a streak of three
    assert sustained_drift(history, "r0", 1, 0.3).batches == ("d4",)
    # A batch measured again keeps its latest verdict.
    history.append(_seen("d4", False))
    assert sustained_drift(history, "r1", 2, 0.3) is None
    assert [o.drifted for o in newest_per_batch(history) if o.reference == "r1"] == [
        True,
        False,
        True,
        False,
    ]
    assert drift_progress([], "r1").startswith("no batch measured against")


def test_evidence_already_trained_on_and_its_run_key():
    evidence = Evidence("drift", ("2026-02-03", "2026-02-04"), "why", {"reference_version": "r1"})
    assert not already_trained_on(None, evidence)
    assert not already_trained_on("2026-02-02", evidence)
    assert already_trained_on("2026-02-03", evidence)
    same = Evidence(
        "drift", ("2026-02-03", "2026-02-04"), "other words", {"reference_version": "r1"}
    )
    assert same.run_key == evidence.run_key and evidence.run_key.startswith("drift-2026-02-04-")
    newer_reference = Evidence("drift", evidence.batches, "why", {"reference_version": "r2"})
    assert newer_reference.run_key != evidence.run_key


def test_the_breach_rule_reads_the_cbpe_estimate_and_its_scored_rows():
    records = [
        {"batch": f"d{i}", "version": "1", "estimated_roc_auc": auc, "scored_rows": rows}
        for i, (auc, rows) in enumerate([(0.74, 500), (0.76, 500), (0.70, 100)])
    ]
    rule = {"max_drop": 0.03, "window_batches": 2, "min_rows": 200, "measure": ESTIMATED}
    breach = sustained_breach(records, "1", 0.80, **rule)  # threshold 0.77; d2 has too few rows
    assert breach.batches == ("d0", "d1") and breach.values == (0.74, 0.76)
    assert "estimated ROC AUC (CBPE) below 0.770" in breach.reason
    assert "2 scored batches in a row" in breach.reason
    assert sustained_breach(records, "1", 0.78, **rule) is None  # threshold 0.75: d1 is above
    assert sustained_breach(records, "2", 0.80, **rule) is None  # another version
