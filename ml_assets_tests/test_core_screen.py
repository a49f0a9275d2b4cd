"""The screen against the reference judges: it may only clear what the reference passes.

Every test here runs both on the same files: the one-pass screen (core.screen) and the
reference judges (pandas and pandera) the gates fall back to. A batch the screen clears must
pass the reference with the same figures; a batch the reference fails must never be cleared;
and on clean data the screen must clear everything, or it would save no time.
"""

import datetime as dt

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from ml_assets.data.batches import clear_cache, join_labels, locate_batches, read_batch
from ml_assets.data.checks import REFERENCE_JUDGES
from ml_assets.data.expectations import build_profile
from ml_assets.data.leakage import single_feature_aucs
from ml_assets.data.screen import (
    ScreenSettings,
    bin_codes,
    binned_auc_bounds,
    category_aucs,
    labels_per_class,
    screen_batches,
    splits_clear,
    window_auc_ceiling,
)
from ml_assets.demo import simulate
from ml_assets.features.examples import SPLIT_COLUMN, assign_split
from ml_assets.features.integrity import split_integrity
from ml_assets.settings import load_settings
from ml_assets_tests.conftest import START, make_project

CONTRACT = load_settings().dataset
GATES = list(REFERENCE_JUDGES)
SCENARIO_START = START + dt.timedelta(days=6)


def _project(tmp_path, scenario="stable", days=9, rows=1500, **validation):
    project = make_project(tmp_path / "p", validation=validation)
    s = project.settings
    project.write_days(START, days, scenario, rows, scenario_start=SCENARIO_START)
    # The reference profile of the first days, as the training window would write it.
    first = locate_batches(s.dataset.features_dir, s.dataset.labels_dir)
    frames = [
        join_labels(read_batch(b.features), read_batch(b.labels), s.dataset, b.day)
        for b in list(first.values())[:5]
    ]
    project.pipeline.features_dir.mkdir(parents=True, exist_ok=True)
    build_profile(pd.concat(frames, ignore_index=True), s.dataset).save(
        project.pipeline.features_dir / "reference_profile.json"
    )
    return project


def _screen_and_reference(project):
    """(screened reports per gate, reference reports per gate) on every batch of the project."""
    from ml_assets.data.checks import _policy, _profile

    clear_cache()
    pipeline = project.pipeline
    s = pipeline.settings
    batches = locate_batches(s.dataset.features_dir, s.dataset.labels_dir)
    screened = screen_batches(
        batches,
        ScreenSettings(
            contract=s.dataset,
            policy=_policy(pipeline),
            profile=_profile(pipeline),
            max_failing_row_share=s.validation.max_failing_row_share,
            min_join_rate=s.validation.min_label_join_rate,
            max_single_feature_auc=s.validation.max_single_feature_auc,
            labels_in_batch=s.dataset.labels_dir is None,
        ),
    )
    reference = {gate: REFERENCE_JUDGES[gate](batches, pipeline) for gate in GATES}
    return batches, screened, reference


def _assert_cleared_days_pass_the_reference(screened, reference):
    for gate in GATES:
        for day, cleared in screened.cleared(gate).items():
            judged = reference[gate][day]
            assert judged.passed, f"{gate} cleared {day}, which the reference fails"
            assert (cleared.rows, cleared.failing_rows, cleared.threshold) == (
                judged.rows,
                judged.failing_rows,
                judged.threshold,
            ), gate
            if gate == "raw_labels_not_leaked_into_features":
                assert cleared.value >= judged.value - 1e-9  # a ceiling of the exact AUC
            else:
                assert cleared.value == pytest.approx(judged.value), gate
                assert cleared.reason == judged.reason, gate


@pytest.mark.parametrize(
    "scenario",
    [
        "stable",
        "schema_corruption",
        "value_corruption",
        "label_noise",
        "leakage",
        "covariate_drift",
    ],
)
def test_the_screen_clears_only_what_the_reference_passes(tmp_path, scenario):
    project = _project(tmp_path, scenario, **{"severity": {}})
    batches, screened, reference = _screen_and_reference(project)
    _assert_cleared_days_pass_the_reference(screened, reference)
    failed = {(g, d) for g in GATES for d, r in reference[g].items() if not r.passed}
    if scenario == "stable":
        assert not failed
        for gate in GATES:  # clean data: the screen alone decides, nothing falls back
            assert set(screened.cleared(gate)) == set(batches), gate
    else:
        assert failed, f"the reference should fail some {scenario} batch"
        for gate, day in failed:
            assert day not in screened.cleared(gate)
    clean_days = {d for d in batches if d < SCENARIO_START.isoformat()}
    for gate in GATES:  # the clean days before the scenario are still cleared
        assert clean_days <= set(screened.cleared(gate)), gate


def _rewrite(project, day, change, labels=False):
    s = project.settings
    folder = s.dataset.labels_dir if labels else s.dataset.features_dir
    path = folder / f"{day}.parquet"
    frame = change(pd.read_parquet(path))
    frame.to_parquet(path, index=False)


DAY = (START + dt.timedelta(days=7)).isoformat()


def _null_income(f):
    f.loc[3, "income"] = np.nan
    return f


def _duplicate_id(f):
    f.loc[5, "application_id"] = f.loc[6, "application_id"]
    return f


def _unknown_category(f):
    f.loc[2, "region"] = "atlantis"
    return f


def _future_stamp(f):
    f.loc[1, "application_ts"] = pd.Timestamp("2027-01-01")
    return f


def _missing_stamp(f):
    f.loc[4, "application_ts"] = pd.NaT
    return f


def _extra_column(f):
    return f.assign(note="x")


def _category_dtype(f):
    return f.assign(region=f["region"].astype("category"))


@pytest.mark.parametrize(
    ("change", "gates"),
    [
        (_null_income, {"raw_batches_match_schema"}),
        (
            _duplicate_id,
            {
                "raw_batches_match_schema",
                "raw_labels_join_raw_batches",
                "raw_labels_not_leaked_into_features",
            },
        ),
        (_unknown_category, {"raw_batches_match_schema"}),
        (_future_stamp, {"raw_batches_timestamps_not_in_future"}),
        (_missing_stamp, {"raw_batches_match_schema", "raw_batches_timestamps_not_in_future"}),
        (_extra_column, set(GATES)),
        (_category_dtype, set(GATES)),
    ],
)
def test_a_changed_batch_is_left_to_the_reference(tmp_path, change, gates):
    project = _project(tmp_path)
    _rewrite(project, DAY, change)
    _, screened, reference = _screen_and_reference(project)
    _assert_cleared_days_pass_the_reference(screened, reference)
    for gate in gates:
        assert DAY not in screened.cleared(gate), gate
    for gate in set(GATES) - gates:
        assert DAY in screened.cleared(gate), gate
    assert (START.isoformat()) in screened.cleared("raw_batches_match_schema")


def _shuffled(f):
    return f.sample(frac=1.0, random_state=1)


def _missing_labels(f):
    return f.iloc[10:]


def _duplicate_label(f):
    return pd.concat([f, f.head(1)], ignore_index=True)


def _bad_label(f):
    f.loc[0, "defaulted"] = 7
    return f


@pytest.mark.parametrize(
    ("change", "cleared", "leak_cleared"),
    [
        (_shuffled, True, True),  # labels in another order join by id, day by day
        (_missing_labels, False, True),  # leakage is measured on the labelled rows
        (_duplicate_label, False, False),
        (_bad_label, False, False),
    ],
)
def test_labels_out_of_order_or_incomplete(tmp_path, change, cleared, leak_cleared):
    project = _project(tmp_path)
    _rewrite(project, DAY, change, labels=True)
    _, screened, reference = _screen_and_reference(project)
    _assert_cleared_days_pass_the_reference(screened, reference)
    assert (DAY in screened.cleared("raw_labels_join_raw_batches")) is cleared
    assert (DAY in screened.cleared("raw_labels_not_leaked_into_features")) is leak_cleared
    assert DAY in screened.cleared("raw_batches_match_schema")


def _rewrite_arrow(project, day, column, change):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = project.settings.dataset.features_dir / f"{day}.parquet"
    table = pq.read_table(path)
    i = table.schema.get_field_index(column)
    pq.write_table(table.set_column(i, column, change(table.column(i), pa)), path)


def _nat_sentinel(project):
    # The int64 minimum: arrow reads a date in 1677, pandas reads NaT.
    def change(column, pa):
        values = column.cast(pa.int64()).to_pylist()
        values[0] = -(2**63)
        return pa.array(values, pa.int64()).cast(pa.timestamp("ns"))

    _rewrite_arrow(project, DAY, "application_ts", change)


def _far_future(project):
    # Beyond pandas' nanosecond range.
    def change(column, pa):
        values = column.cast(pa.timestamp("us")).to_pylist()
        values[0] = dt.datetime(2500, 1, 1)
        return pa.array(values, pa.timestamp("us"))

    _rewrite_arrow(project, DAY, "application_ts", change)


def _stored_index(project):
    path = project.settings.dataset.features_dir / f"{DAY}.parquet"
    pd.read_parquet(path).set_index("application_id").to_parquet(path)


def _nullable_extension(project):
    _rewrite(
        project,
        DAY,
        lambda f: f.assign(employment_years=f["employment_years"].round().astype("Int64")),
    )


@pytest.mark.parametrize(
    ("change", "reference_fails"),
    [
        (_nat_sentinel, True),
        (_far_future, True),
        (_stored_index, True),
        (_nullable_extension, False),  # pandas reads Int64 with <NA>; the reference copes
    ],
)
def test_files_pandas_reads_differently_are_left_to_the_reference(
    tmp_path, change, reference_fails
):
    """Found by review: each of these was cleared (or crashed the screen, or the reference)."""
    project = _project(tmp_path)
    change(project)
    _, screened, reference = _screen_and_reference(project)
    _assert_cleared_days_pass_the_reference(screened, reference)
    assert DAY not in screened.cleared("raw_batches_match_schema")
    assert any(not reference[g][DAY].passed for g in GATES) is reference_fails


def test_degenerate_columns_do_not_break_the_screen(tmp_path):
    """A constant fractional feature and labels that join nothing once crashed the bounds."""
    project = _project(tmp_path)
    s = project.settings
    for day in ((START + dt.timedelta(days=i)).isoformat() for i in range(9)):
        _rewrite(project, day, lambda f: f.assign(debt_to_income=0.35))
        _rewrite(
            project, day, lambda f: f.assign(application_id=f["application_id"] + "x"), labels=True
        )
    batches, screened, reference = _screen_and_reference(project)
    _assert_cleared_days_pass_the_reference(screened, reference)
    assert not screened.cleared("raw_labels_join_raw_batches")
    assert not screened.cleared("raw_labels_not_leaked_into_features")
    assert len(screened.cleared("raw_batches_match_schema")) == len(batches)
    assert s.dataset.labels_dir is not None


def test_csv_batches_and_labels_in_the_batch_are_handled(tmp_path):
    project = _project(tmp_path)
    s = project.settings
    frame = pd.read_parquet(s.dataset.features_dir / f"{DAY}.parquet")
    (s.dataset.features_dir / f"{DAY}.parquet").unlink()
    frame.to_csv(s.dataset.features_dir / f"{DAY}.csv", index=False)
    _, screened, reference = _screen_and_reference(project)
    _assert_cleared_days_pass_the_reference(screened, reference)
    for gate in GATES:
        assert DAY not in screened.cleared(gate)  # CSV types are the reference's to read


def test_labels_in_the_batch(tmp_path):
    project = make_project(tmp_path / "p")
    raw = project.config_path.read_text().replace("labels_dir: raw/labels", "labels_dir: null")
    project.config_path.write_text(raw)
    s = project.settings
    assert s.dataset.labels_dir is None
    s.dataset.features_dir.mkdir(parents=True)
    for i in range(4):
        day = START + dt.timedelta(days=i)
        features, labels = simulate.generate_day(day, 800, seed=7)
        frame = features.merge(labels, on="application_id")
        if i == 3:
            frame.loc[0, "defaulted"] = 3
        frame.to_parquet(s.dataset.features_dir / f"{day.isoformat()}.parquet", index=False)
    _, screened, reference = _screen_and_reference(project)
    _assert_cleared_days_pass_the_reference(screened, reference)
    last = (START + dt.timedelta(days=3)).isoformat()
    assert not reference["raw_batches_match_schema"][last].passed
    assert last not in screened.cleared("raw_batches_match_schema")
    assert START.isoformat() in screened.cleared("raw_labels_join_raw_batches")


# --- the arithmetic --------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(-3, 3), min_size=4, max_size=80),
    st.lists(st.booleans(), min_size=4, max_size=80),
    st.integers(2, 8),
)
def test_binned_auc_brackets_the_exact_auc(values, labels, n_bins):
    n = min(len(values), len(labels))
    x = np.array(values[:n], dtype=float) + np.linspace(0, 0.5, n)  # some ties, mostly not
    y = np.array(labels[:n], dtype=float)
    if y.min() == y.max():
        return
    exact = roc_auc_score(y, x)
    codes, bins, single = bin_codes(x, n_bins)
    low, high = binned_auc_bounds(codes, np.zeros(n, dtype=np.int64), y, 1, bins, exact_bins=single)
    assert low[0] - 1e-12 <= exact <= high[0] + 1e-12


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 30), min_size=4, max_size=120),
    st.lists(st.booleans(), min_size=4, max_size=120),
)
def test_integer_scores_get_their_exact_auc(values, labels):
    n = min(len(values), len(labels))
    x, y = np.array(values[:n], dtype=float), np.array(labels[:n], dtype=float)
    if y.min() == y.max():
        return
    codes, bins, single = bin_codes(x, 2048)
    assert single
    low, high = binned_auc_bounds(codes, np.zeros(n, dtype=np.int64), y, 1, bins, exact_bins=True)
    assert low[0] == pytest.approx(roc_auc_score(y, x)) == high[0]


def test_category_auc_equals_the_reference_per_group():
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "g": np.repeat([0, 1], 500),
            "region": rng.choice(["a", "b", "c", "d"], 1000),
            "defaulted": (rng.random(1000) < 0.3).astype(int),
        }
    )
    frame.loc[frame["region"] == "d", "defaulted"] = 1  # a category that ranks perfectly
    codes = pd.factorize(frame["region"], sort=True)[0]
    aucs = category_aucs(codes, frame["g"].to_numpy(), frame["defaulted"].to_numpy(float), 2, 4)
    for g in (0, 1):
        part = frame[frame["g"] == g]
        y, rate = part["defaulted"], part.groupby("region")["defaulted"].transform("mean")
        assert aucs[g] == pytest.approx(roc_auc_score(y, rate))


def _examples(rows=3000):
    features, labels = simulate.generate_day(START, rows, seed=7)
    examples = join_labels(features, labels, CONTRACT, "d")
    examples[SPLIT_COLUMN] = assign_split(
        examples["application_id"], seed=1, validation=0.2, test=0.2
    )
    return examples


def test_splits_clear_agrees_with_the_reference():
    examples = _examples()
    assert splits_clear(pl.from_pandas(examples), CONTRACT, SPLIT_COLUMN)
    reference = split_integrity(examples, CONTRACT)
    assert not reference.ids_in_several_splits and reference.duplicate_rows_across_splits == 0
    twin = examples.iloc[[0]].assign(
        application_id="other", split="test" if examples.iloc[0]["split"] != "test" else "train"
    )
    moved = examples.iloc[[1]].assign(
        split="test" if examples.iloc[1]["split"] != "test" else "train"
    )
    for broken in (pd.concat([examples, twin]), pd.concat([examples, moved])):
        assert not splits_clear(pl.from_pandas(broken), CONTRACT, SPLIT_COLUMN)
        found = split_integrity(broken, CONTRACT)
        assert found.ids_in_several_splits or found.duplicate_rows_across_splits


def test_labels_per_class_counts():
    examples = _examples()
    counts = labels_per_class(pl.from_pandas(examples), CONTRACT, SPLIT_COLUMN)
    expected = examples.groupby([SPLIT_COLUMN, "defaulted"]).size()
    assert counts == {
        split: {str(label): int(expected.get((split, label), 0)) for label in (0, 1)}
        for split in ("test", "train", "validation")
    }


def test_window_ceiling_bounds_every_exact_auc_and_sees_a_leak():
    examples = _examples()
    exact = single_feature_aucs(examples, CONTRACT)
    top, table = window_auc_ceiling(pl.from_pandas(examples), CONTRACT)
    bounds = dict(zip(table["feature"], table["single_feature_auc_at_most"], strict=True))
    for name, auc in exact.items():
        if name in bounds:
            assert bounds[name] >= auc - 1e-9
    assert top >= max(exact.values()) - 1e-9
    leaky = examples.assign(
        utilization=examples["defaulted"] + 0.01 * np.arange(len(examples)) / len(examples)
    )
    top, _ = window_auc_ceiling(pl.from_pandas(leaky), CONTRACT)
    assert top > 0.98
