"""Pure core: the operational harness measures real models in a child process."""

import datetime as dt
import math
import re

import pytest

from ml_assets.data.batches import join_labels
from ml_assets.demo import simulate
from ml_assets.evaluation.evidence import Operational
from ml_assets.evaluation.operational import MB, measure_scoring
from ml_assets.features.examples import assign_split
from ml_assets.settings import load_settings
from ml_assets.training.model import save_model, train_model

CONTRACT = load_settings().dataset
DAY = dt.date(2026, 1, 1)
# Smaller than the defaults, to keep the tests quick; the figures' orders are the same.
MEASURE = {"single_row_requests": 60, "batch_rows": 4000, "rounds": 3, "warmup": 5}


@pytest.fixture(scope="module")
def examples():
    features, labels = simulate.generate_day(DAY, 2000, seed=7)
    data = join_labels(features, labels, CONTRACT, DAY.isoformat())
    data["split"] = assign_split(data[CONTRACT.id_column], seed=1, validation=0.2, test=0.2)
    return data


def _train_and_save(examples, path, *, rounds, **params):
    booster = train_model(
        examples[examples.split == "train"],
        examples[examples.split == "validation"],
        CONTRACT,
        params={"objective": "binary", "num_threads": 1, **params},
        num_boost_round=rounds,
        early_stopping_rounds=0,
        seed=3,
    )
    save_model(booster, path)
    return path


@pytest.fixture(scope="module")
def models(examples, tmp_path_factory):
    folder = tmp_path_factory.mktemp("operational")
    small = _train_and_save(examples, folder / "small.txt", rounds=20, num_leaves=7)
    large = _train_and_save(
        examples,
        folder / "large.txt",
        rounds=1500,
        num_leaves=63,
        min_data_in_leaf=5,
        learning_rate=0.3,
    )
    return {"small": small, "large": large}


@pytest.fixture(scope="module")
def profiles(models, examples):
    rows = examples[examples.split == "test"]
    return {
        "small": measure_scoring(models["small"], rows, CONTRACT, **MEASURE),
        # The large model as candidate, the small one as its champion, measured interleaved.
        "large": measure_scoring(
            models["large"], rows, CONTRACT, champion_path=models["small"], **MEASURE
        ),
    }


@pytest.mark.parametrize("name", ["small", "large"])
def test_profile_figures_are_real(profiles, models, name):
    profile = profiles[name]
    assert isinstance(profile, Operational)
    figures = profile.model_dump(exclude={"champion"})
    assert set(figures) == {
        "p50_ms",
        "p99_ms",
        "rows_per_second",
        "wall_p50_ms",
        "model_mb",
        "peak_rss_mb",
        "baseline_rss_mb",
        "single_row_requests",
        "batch_rows",
        "rounds",
    }
    for key, value in figures.items():
        assert math.isfinite(value) and value > 0, (key, value)
    assert profile.p99_ms >= profile.p50_ms
    assert profile.peak_rss_mb >= profile.baseline_rss_mb
    assert profile.model_mb == models[name].stat().st_size / MB
    assert profile.single_row_requests == MEASURE["single_row_requests"]
    assert profile.batch_rows == MEASURE["batch_rows"]
    assert profile.rounds == MEASURE["rounds"]
    # The demo model's single-row request costs well under a millisecond of CPU.
    if name == "small":
        assert profile.p50_ms < 1.0, profile
        assert profile.champion is None


def test_larger_model_is_bigger_and_slower(profiles, models):
    small, large = profiles["small"], profiles["large"]
    assert large.model_mb > 10 * small.model_mb
    assert large.rows_per_second < small.rows_per_second
    # The champion measured beside the large candidate is the small model: its own size, and
    # the same order of cost as when measured alone.
    champion = large.champion
    assert champion is not None
    assert champion.model_mb == models["small"].stat().st_size / MB
    assert champion.rows_per_second > 3 * large.rows_per_second


def test_missing_model_file_is_named(tmp_path, examples, models):
    missing = tmp_path / "no_such_model.txt"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        measure_scoring(missing, examples.head(5), CONTRACT)
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        measure_scoring(models["small"], examples.head(5), CONTRACT, champion_path=missing)


def test_child_failure_raises_with_its_stderr(models, examples):
    rows = examples.head(5).drop(columns=["credit_score"])
    with pytest.raises(RuntimeError, match="credit_score"):
        measure_scoring(models["small"], rows, CONTRACT, **MEASURE)
