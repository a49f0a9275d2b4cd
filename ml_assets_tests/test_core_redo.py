"""Pure core: what `make run` redoes when no batch arrived (retraining/policy.what_to_redo)."""

from ml_assets.retraining.policy import what_to_redo

CANDIDATE = {"model_version": "4", "data_version": "w1", "training_policy": "t1"}
EVALUATION = {"model_version": "4", "evaluation_policy": "e1"}
PASSED = {"candidate_meets_metric_floors": "passed", "candidate_is_calibrated": "warned"}


def _redo(**changes):
    inputs = {
        "window_version": "w1",
        "training_policy": "t1",
        "evaluation_policy": "e1",
        "candidate": CANDIDATE,
        "evaluation": EVALUATION,
        "verdicts": PASSED,
        "staged_version": "4",
    }
    return what_to_redo(**(inputs | changes))


def test_nothing_to_redo_when_trained_evaluated_and_staged():
    assert _redo().job is None
    # A candidate its gates blocked is settled too: it is not evaluated again and again.
    assert _redo(verdicts={**PASSED, "x": "failed"}, staged_version="3").job is None


def test_training_inputs_retrain():
    assert _redo(candidate=None).job == "training_job"
    assert _redo(window_version="w2").job == "training_job"
    redo = _redo(training_policy="t2")
    assert redo.job == "training_job" and "training settings" in redo.reason


def test_evaluation_inputs_and_unfinished_work_re_evaluate():
    assert _redo(evaluation=None).reason == "version 4 has no finished evaluation"
    assert _redo(evaluation={**EVALUATION, "model_version": "3"}).job == "evaluation_job"
    assert "gate policy changed" in _redo(evaluation_policy="e2").reason
    errored = _redo(verdicts={**PASSED, "candidate_passes_behaviour_tests": "skipped"})
    assert errored.job == "evaluation_job"
    assert "candidate_passes_behaviour_tests (skipped)" in errored.reason
    unstaged = _redo(staged_version="3")
    assert unstaged.job == "evaluation_job" and "not staged" in unstaged.reason
