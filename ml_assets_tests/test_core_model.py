"""Pure core: training, scoring, metrics, gate decisions, drift, registry audit log."""

import datetime as dt
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from ml_assets.demo import simulate
from ml_assets.evaluation.metrics import classification_metrics
from ml_assets.features.examples import assign_split
from ml_assets.monitoring.drift import measure_drift
from ml_assets.settings import load_settings
from ml_assets.training.model import load_model, predict_scores, save_model, train_model
from ml_assets.training.registry import append_audit, read_audit, verify_audit

CONTRACT = load_settings().dataset
PARAMS = {"objective": "binary", "learning_rate": 0.1, "num_leaves": 15, "num_threads": 1}


def _examples(days=4, rows=1000, scenario="stable", start=dt.date(2026, 3, 1)):
    frames = []
    for i in range(days):
        f, y = simulate.generate_day(start + dt.timedelta(days=i), rows, seed=5, scenario=scenario)
        frames.append(f.merge(y, on=CONTRACT.id_column))
    data = pd.concat(frames, ignore_index=True)
    data["split"] = assign_split(data[CONTRACT.id_column], seed=1, validation=0.2, test=0.2)
    return data


@pytest.fixture(scope="module")
def examples():
    return _examples()


def _train(examples, **kw):
    return train_model(
        examples[examples.split == "train"],
        examples[examples.split == "validation"],
        CONTRACT,
        params={**PARAMS, **kw},
        num_boost_round=80,
        early_stopping_rounds=10,
        seed=3,
    )


def test_training_learns_and_is_reproducible(examples, tmp_path):
    first, second = _train(examples), _train(examples)
    sha1 = save_model(first, tmp_path / "a" / "model.txt")
    sha2 = save_model(second, tmp_path / "b" / "model.txt")
    assert sha1 == sha2  # same data, config and seed: the same model file
    test = examples[examples.split == "test"]
    scores = predict_scores(load_model(tmp_path / "a" / "model.txt"), test, CONTRACT)
    metrics = classification_metrics(test[CONTRACT.target_column].to_numpy(), scores, 0.5)
    assert metrics["roc_auc"] > 0.75
    assert 0 < metrics["brier"] < 0.15
    # The loaded text model scores exactly as the in-memory booster.
    assert np.allclose(scores, predict_scores(first, test, CONTRACT))


def test_text_model_needs_no_pickle(examples, tmp_path):
    save_model(_train(examples), tmp_path / "model.txt")
    head = (tmp_path / "model.txt").read_text()[:200]
    assert head.startswith("tree")
    with pytest.raises(FileNotFoundError, match=r"missing\.txt"):
        load_model(tmp_path / "missing.txt")


def test_single_class_training_is_refused(examples):
    one_class = examples.assign(defaulted=0)
    with pytest.raises(ValueError, match="single class"):
        _train(one_class)


def test_metrics_match_known_answers():
    y = np.array([0, 0, 1, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8])
    m = classification_metrics(y, s, 0.5)
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["brier"] == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.6, 0.35, 0.8])))
    with pytest.raises(ValueError, match="both classes"):
        classification_metrics(np.zeros(3), np.ones(3) / 2, 0.5)


def test_drift_is_found_on_shifted_data_only(tmp_path):
    reference = _examples(days=3, rows=1000)
    same = _examples(days=1, rows=2000, start=dt.date(2026, 4, 1))
    shifted = _examples(days=1, rows=2000, scenario="covariate_drift", start=dt.date(2026, 4, 1))
    columns = CONTRACT.feature_columns
    calm = measure_drift(reference, same, columns, drifted_share_threshold=0.3)
    drift = measure_drift(
        reference, shifted, columns, drifted_share_threshold=0.3, html_path=tmp_path / "d.html"
    )
    assert not calm.dataset_drift and calm.drifted_share < 0.3
    assert drift.drifted_share > calm.drifted_share
    assert {"credit_score", "income"} <= set(drift.drifted_column_names)
    assert (tmp_path / "d.html").stat().st_size > 10_000
    assert calm.columns == len(columns)


def test_audit_log_appends(tmp_path):
    append_audit(tmp_path, "m", "1", "registered", run_id="r1")
    append_audit(tmp_path, "m", "2", "registered", run_id="r2")
    append_audit(tmp_path, "m", "1", "staged", alias="staging")
    events = read_audit(tmp_path, "m", "1")
    assert [e["event"] for e in events] == ["registered", "staged"]
    assert len(read_audit(tmp_path, "m")) == 3


def test_audit_chain_detects_an_edited_a_removed_and_a_reordered_entry(tmp_path):
    for version, event in (("1", "registered"), ("1", "staged"), ("1", "promoted")):
        append_audit(tmp_path, "m", version, event, approver="ana")
    assert verify_audit(tmp_path, "m") == []
    path = tmp_path / "m.jsonl"
    lines = path.read_text().splitlines()
    edited = lines.copy()
    edited[1] = edited[1].replace('"staged"', '"rejected"')
    path.write_text("\n".join(edited) + "\n")
    assert [p.split(": ", 1)[1] for p in verify_audit(tmp_path, "m")] == [
        "hash does not match the entry (it was edited)"
    ]
    path.write_text("\n".join([lines[0], lines[2]]) + "\n")
    assert "an entry was removed" in verify_audit(tmp_path, "m")[0]
    path.write_text("\n".join([lines[1], lines[0], lines[2]]) + "\n")
    assert len(verify_audit(tmp_path, "m")) == 3  # each out of place
    # Appending after a repair chains on again.
    path.write_text("\n".join(lines) + "\n")
    append_audit(tmp_path, "m", "2", "registered")
    assert verify_audit(tmp_path, "m") == []


_SPIN_PROBE = """
import os, sys
import sklearn, pandas, polars, pyarrow, mlflow  # what a run process holds before it trains
import ml_assets.definitions
from ml_assets.training.model import import_lightgbm

def gomp_loaded():  # LightGBM's libgomp; scikit-learn loads a copy of its own, which it ignores
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "libgomp" in line}
    return any("scikit_learn.libs" not in path for path in paths)

before = gomp_loaded()
import_lightgbm()
print(before, gomp_loaded(), os.environ.get("GOMP_SPINCOUNT"))
"""


@pytest.mark.parametrize("given, expected", [(None, "10000"), ("123", "123")])
def test_lightgbm_loads_with_a_short_spin_count_unless_the_environment_sets_one(given, expected):
    """libgomp reads GOMP_SPINCOUNT once, when LightGBM's import loads it: the default must be
    in place by then, in a process started by anyone (here: not by make), and a value the
    environment sets wins."""
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    if given is not None:
        env["GOMP_SPINCOUNT"] = given
    probe = subprocess.run(
        [sys.executable, "-c", _SPIN_PROBE], env=env, capture_output=True, text=True, check=True
    )
    # Not loaded before (the setting would come too late), loaded after, and the count it read.
    assert probe.stdout.split() == ["False", "True", expected]
