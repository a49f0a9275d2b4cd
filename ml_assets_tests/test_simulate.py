"""The demo-data generator: determinism, the data contract, the label model and the scenarios."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from ml_assets.demo import simulate
from ml_assets.demo.simulate import SCENARIOS, generate_day, main, scenario_window, write_demo
from ml_assets.settings import DEFAULT_CONFIG, PROJECT_ROOT, load_settings

DAY = dt.date(2026, 2, 10)
START = dt.date(2026, 1, 1)


@pytest.fixture(scope="module")
def contract():
    return load_settings(DEFAULT_CONFIG).dataset


def _days(n: int, rows: int, seed: int = 7, scenario: str = "stable", start: dt.date = START):
    pairs = [generate_day(start + dt.timedelta(days=i), rows, seed, scenario) for i in range(n)]
    features = pd.concat([f for f, _ in pairs], ignore_index=True)
    labels = pd.concat([lab for _, lab in pairs], ignore_index=True)
    return features, labels


def test_scenarios_are_the_documented_ones():
    assert SCENARIOS == (
        "stable",
        "covariate_drift",
        "concept_drift",
        "schema_corruption",
        "value_corruption",
        "label_noise",
        "leakage",
    )


def test_same_arguments_give_identical_frames_and_other_seed_differs():
    f1, l1 = generate_day(DAY, 300, seed=11)
    f2, l2 = generate_day(DAY, 300, seed=11)
    pd.testing.assert_frame_equal(f1, f2)
    pd.testing.assert_frame_equal(l1, l2)
    f3, l3 = generate_day(DAY, 300, seed=12)
    assert (f1["income"].to_numpy() != f3["income"].to_numpy()).mean() > 0.9
    assert (f1["credit_score"].to_numpy() != f3["credit_score"].to_numpy()).mean() > 0.8
    assert not l1["defaulted"].equals(l3["defaulted"])
    # Ids name the day, not the seed; the draws differ.
    assert f1["application_id"].tolist() == f3["application_id"].tolist()


def test_write_demo_is_byte_identical_and_a_day_regenerates_alone(tmp_path):
    kwargs = dict(start=START, days=3, rows_per_day=200, seed=5, scenario="label_noise")
    first = write_demo(tmp_path / "a" / "f", tmp_path / "a" / "l", **kwargs)
    second = write_demo(tmp_path / "b" / "f", tmp_path / "b" / "l", **kwargs)
    assert [p.name for p in first] == [
        "2026-01-01.parquet",
        "2026-01-02.parquet",
        "2026-01-03.parquet",
    ]
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes()
        la, lb = tmp_path / "a" / "l" / a.name, tmp_path / "b" / "l" / b.name
        assert la.read_bytes() == lb.read_bytes()
    # The middle day, generated on its own, equals the file written in the span.
    features, labels = generate_day(dt.date(2026, 1, 2), 200, 5, "label_noise")
    pd.testing.assert_frame_equal(pd.read_parquet(first[1]), features)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a" / "l" / first[1].name), labels)


def test_stable_data_satisfies_the_contract(tmp_path, contract):
    paths = write_demo(
        tmp_path / "f", tmp_path / "l", start=START, days=4, rows_per_day=1500, seed=7
    )
    frames = [pd.read_parquet(p) for p in paths]
    labels = [pd.read_parquet(tmp_path / "l" / p.name) for p in paths]
    expected = [
        contract.id_column,
        contract.timestamp_column,
        *contract.numeric_columns,
        *contract.categorical_columns,
    ]
    for path, frame, label in zip(paths, frames, labels, strict=True):
        assert sorted(frame.columns) == sorted(expected)
        assert len(frame) == 1500
        assert frame[contract.timestamp_column].dtype == np.dtype("datetime64[ns]")
        day = pd.Timestamp(path.stem)
        ts = frame[contract.timestamp_column]
        assert ts.min() >= day and ts.max() < day + pd.Timedelta(days=1)
        assert list(label.columns) == [contract.id_column, contract.target_column]
        assert label[contract.target_column].dtype == np.dtype("int64")
        assert set(label[contract.target_column].unique()) <= set(contract.label_values)
        assert label[contract.id_column].tolist() == frame[contract.id_column].tolist()

    data = pd.concat(frames, ignore_index=True)
    ids = data[contract.id_column]
    assert ids.is_unique
    assert all(isinstance(v, str) for v in ids)
    assert ids.iloc[0] == "20260101-000001"
    for name in ("credit_score", "term_months", "open_accounts", "delinquencies_2y"):
        assert data[name].dtype == np.dtype("int64"), name
    assert set(data["term_months"].unique()) == {36, 60}
    for name, spec in contract.numeric_columns.items():
        column = data[name]
        assert column.dtype.kind in "if", name
        values = column.dropna()
        assert values.min() >= spec.min, name
        assert values.max() <= spec.max, name
        if not spec.nullable:
            assert column.notna().all(), name
    assert contract.numeric_columns["employment_years"].nullable
    null_share = data["employment_years"].isna().mean()
    assert 0.01 <= null_share <= 0.03
    for name, allowed in contract.categorical_columns.items():
        column = data[name]
        assert column.notna().all(), name
        assert all(isinstance(v, str) for v in column.unique()), name
        assert set(column.unique()) <= set(allowed), name
        # Every allowed value occurs in a few thousand rows.
        assert set(column.unique()) == set(allowed), name
    assert data["utilization"].max() <= 1.2


def test_base_default_rate_is_between_8_and_20_percent():
    _, labels = _days(10, 2000)
    rate = labels["defaulted"].mean()
    assert 0.08 <= rate <= 0.20
    assert 0.10 <= rate <= 0.15  # tuned near 12%


def test_label_signal_goes_the_documented_way():
    features, labels = _days(10, 2000)
    y = labels["defaulted"].to_numpy()
    # Credit score is the strongest single signal and lowers risk.
    assert roc_auc_score(y, -features["credit_score"]) > 0.7
    assert roc_auc_score(y, features["debt_to_income"]) > 0.55
    by_purpose = labels["defaulted"].groupby(features["purpose"]).mean()
    assert by_purpose["small_business"] > by_purpose["credit_card"] + 0.05
    by_home = labels["defaulted"].groupby(features["home_ownership"]).mean()
    assert by_home["RENT"] > by_home["OWN"] and by_home["RENT"] > by_home["MORTGAGE"]


def test_sex_does_not_enter_the_label_model():
    features, labels = _days(30, 2000, seed=3)
    by_sex = labels["defaulted"].groupby(features["sex"]).mean()
    assert set(by_sex.index) == {"female", "male"}
    assert abs(by_sex["female"] - by_sex["male"]) < 0.02
    # Directly: the logit of a batch does not move when every applicant's sex flips.
    rng = np.random.default_rng(0)
    rows = 500
    coded = simulate._features(
        rows,
        rng.standard_normal((rows, simulate._N_NORMAL)),
        rng.random((rows, simulate._N_UNIFORM)),
        drift=False,
    )
    flipped = {**coded, "sex": 1 - coded["sex"]}
    np.testing.assert_array_equal(simulate._label_logit(coded), simulate._label_logit(flipped))


def test_scenario_window_defaults_to_the_last_seven_days():
    assert scenario_window(START, 30) == (dt.date(2026, 1, 24), dt.date(2026, 1, 30))
    assert scenario_window(START, 3) == (START, dt.date(2026, 1, 3))
    assert scenario_window(START, 30, scenario_end=dt.date(2026, 1, 10)) == (
        dt.date(2026, 1, 4),
        dt.date(2026, 1, 10),
    )
    with pytest.raises(ValueError, match="after scenario end"):
        scenario_window(START, 30, dt.date(2026, 1, 20), dt.date(2026, 1, 10))


def test_scenarios_apply_only_inside_their_date_range(tmp_path):
    paths = write_demo(
        tmp_path / "f",
        tmp_path / "l",
        start=START,
        days=5,
        rows_per_day=100,
        seed=7,
        scenario="schema_corruption",
        scenario_start=dt.date(2026, 1, 2),
        scenario_end=dt.date(2026, 1, 3),
    )
    corrupted = [("fico_score" in pd.read_parquet(p).columns) for p in paths]
    assert corrupted == [False, True, True, False, False]
    stable_day, _ = generate_day(START, 100, 7)
    pd.testing.assert_frame_equal(pd.read_parquet(paths[0]), stable_day)

    default = write_demo(
        tmp_path / "g",
        tmp_path / "m",
        start=START,
        days=10,
        rows_per_day=50,
        seed=7,
        scenario="schema_corruption",
    )
    renamed = [("fico_score" in pd.read_parquet(p).columns) for p in default]
    assert renamed == [False] * 3 + [True] * 7


def test_schema_corruption_renames_and_retypes(contract):
    stable, stable_labels = generate_day(DAY, 400, 7)
    broken, labels = generate_day(DAY, 400, 7, "schema_corruption")
    assert "credit_score" not in broken.columns
    assert "fico_score" in broken.columns
    np.testing.assert_array_equal(broken["fico_score"], stable["credit_score"])
    assert broken["income"].dtype == object
    assert all(isinstance(v, str) and v.startswith("$") for v in broken["income"])
    parsed = broken["income"].str.replace("[$,]", "", regex=True).astype(float)
    np.testing.assert_allclose(parsed, stable["income"])
    assert any("," in v for v in broken["income"])
    pd.testing.assert_frame_equal(labels, stable_labels)
    assert set(broken.columns) != {
        contract.id_column,
        contract.timestamp_column,
        *contract.feature_columns,
    }


def test_value_corruption_adds_null_burst_and_unit_change():
    stable, stable_labels = _days(3, 1000)
    broken, labels = _days(3, 1000, scenario="value_corruption")
    null_share = broken["income"].isna().mean()
    assert 0.25 <= null_share <= 0.35
    assert stable["income"].notna().all()
    kept = broken["income"].notna()
    np.testing.assert_array_equal(broken.loc[kept, "income"], stable.loc[kept, "income"])
    assert (broken["loan_amount"] < 500).mean() > 0.99
    assert (stable["loan_amount"] >= 500).all()
    np.testing.assert_allclose(broken["loan_amount"] * 1000, stable["loan_amount"], rtol=1e-6)
    pd.testing.assert_frame_equal(labels, stable_labels)


def test_label_noise_flips_labels_but_keeps_features():
    stable, stable_labels = _days(3, 2000)
    noisy, labels = _days(3, 2000, scenario="label_noise")
    pd.testing.assert_frame_equal(noisy, stable)
    flipped = (labels["defaulted"] != stable_labels["defaulted"]).mean()
    assert 0.22 <= flipped <= 0.28
    assert set(labels["defaulted"].unique()) == {0, 1}


def test_leakage_makes_delinquencies_predict_the_label(contract):
    stable, stable_labels = _days(2, 2000)
    leaky, labels = _days(2, 2000, scenario="leakage")
    pd.testing.assert_frame_equal(labels, stable_labels)
    y = labels["defaulted"]
    assert roc_auc_score(y, leaky["delinquencies_2y"]) > 0.95
    assert roc_auc_score(stable_labels["defaulted"], stable["delinquencies_2y"]) < 0.8
    spec = contract.numeric_columns["delinquencies_2y"]
    assert leaky["delinquencies_2y"].between(spec.min, spec.max).all()
    assert leaky["delinquencies_2y"].dtype == np.dtype("int64")
    others = [c for c in stable.columns if c != "delinquencies_2y"]
    pd.testing.assert_frame_equal(leaky[others], stable[others])


def test_covariate_drift_shifts_features_not_the_label_model():
    stable, stable_labels = _days(5, 2000)
    drifted, labels = _days(5, 2000, scenario="covariate_drift")
    drop = stable["credit_score"].mean() - drifted["credit_score"].mean()
    assert 30 <= drop <= 55
    ratio = drifted["income"].median() / stable["income"].median()
    assert 0.6 <= ratio <= 0.8

    def share(frame: pd.DataFrame, column: str, value: str) -> float:
        return (frame[column] == value).mean()

    assert share(drifted, "channel", "broker") > share(stable, "channel", "broker") + 0.1
    assert share(drifted, "purpose", "small_business") > share(stable, "purpose", "small_business")
    # Riskier applicants under the same label model default more often.
    assert labels["defaulted"].mean() > stable_labels["defaulted"].mean() + 0.03


def test_concept_drift_moves_labels_not_features():
    stable, stable_labels = _days(5, 2000)
    drifted, labels = _days(5, 2000, scenario="concept_drift")
    pd.testing.assert_frame_equal(drifted, stable)
    for column in ("income", "credit_score", "debt_to_income", "loan_amount"):
        assert drifted[column].mean() == pytest.approx(stable[column].mean(), rel=0.01)
    assert labels["defaulted"].mean() > stable_labels["defaulted"].mean() + 0.03
    broker = (stable["channel"] == "broker").to_numpy()
    old_gap = stable_labels["defaulted"][broker].mean() - stable_labels["defaulted"][~broker].mean()
    new_gap = labels["defaulted"][broker].mean() - labels["defaulted"][~broker].mean()
    assert new_gap > old_gap + 0.08


def test_csv_format_writes_readable_csv_files(tmp_path, contract):
    paths = write_demo(
        tmp_path / "f", tmp_path / "l", start=START, days=2, rows_per_day=300, seed=7, fmt="csv"
    )
    assert [p.name for p in paths] == ["2026-01-01.csv", "2026-01-02.csv"]
    assert sorted(p.name for p in (tmp_path / "l").iterdir()) == [p.name for p in paths]
    back = pd.read_csv(paths[1])
    expected, expected_labels = generate_day(dt.date(2026, 1, 2), 300, 7)
    assert list(back.columns) == list(expected.columns)
    assert back["application_id"].tolist() == expected["application_id"].tolist()
    ts = pd.to_datetime(back["application_ts"])
    assert ts.tolist() == expected["application_ts"].tolist()
    np.testing.assert_allclose(back["income"], expected["income"])
    np.testing.assert_array_equal(back["credit_score"], expected["credit_score"])
    assert back["employment_years"].isna().sum() == expected["employment_years"].isna().sum()
    labels = pd.read_csv(tmp_path / "l" / paths[1].name)
    assert labels["defaulted"].tolist() == expected_labels["defaulted"].tolist()
    assert set(back["sex"]) <= set(contract.categorical_columns["sex"])


def test_switching_format_replaces_the_other_file(tmp_path):
    kwargs = dict(start=START, days=1, rows_per_day=20, seed=7)
    write_demo(tmp_path / "f", tmp_path / "l", fmt="csv", **kwargs)
    write_demo(tmp_path / "f", tmp_path / "l", fmt="parquet", **kwargs)
    assert [p.name for p in (tmp_path / "f").iterdir()] == ["2026-01-01.parquet"]
    assert [p.name for p in (tmp_path / "l").iterdir()] == ["2026-01-01.parquet"]


def test_without_labels_dir_the_target_goes_into_the_features(tmp_path):
    (path,) = write_demo(tmp_path / "f", None, start=START, days=1, rows_per_day=50, seed=7)
    frame = pd.read_parquet(path)
    _, labels = generate_day(START, 50, 7)
    assert frame["defaulted"].tolist() == labels["defaulted"].tolist()


def test_invalid_arguments_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown scenario"):
        generate_day(DAY, 10, 7, "chaos")
    with pytest.raises(ValueError, match="unknown format"):
        write_demo(tmp_path, tmp_path, start=START, days=1, rows_per_day=5, seed=1, fmt="xlsx")
    with pytest.raises(ValueError, match="rows"):
        generate_day(DAY, 0, 7)


def test_cli_writes_files(tmp_path, capsys):
    code = main(
        [
            "--features-dir",
            str(tmp_path / "f"),
            "--labels-dir",
            str(tmp_path / "l"),
            "--start",
            "2026-03-01",
            "--days",
            "4",
            "--rows-per-day",
            "25",
            "--seed",
            "3",
            "--scenario",
            "value_corruption",
            "--scenario-start",
            "2026-03-04",
            "--format",
            "csv",
        ]
    )
    assert code == 0
    names = sorted(p.name for p in (tmp_path / "f").iterdir())
    assert names == [f"2026-03-0{d}.csv" for d in range(1, 5)]
    assert sorted(p.name for p in (tmp_path / "l").iterdir()) == names
    out = capsys.readouterr().out.strip()
    assert out.count("\n") == 0
    assert "wrote 4 csv" in out and "value_corruption on 2026-03-04..2026-03-04" in out
    assert pd.read_csv(tmp_path / "f" / "2026-03-03.csv")["loan_amount"].min() >= 500
    assert pd.read_csv(tmp_path / "f" / "2026-03-04.csv")["loan_amount"].max() < 500


def test_cli_defaults_to_the_configured_folders(tmp_path, monkeypatch, capsys):
    text = DEFAULT_CONFIG.read_text()
    text = text.replace("features_dir: data/raw/features", f"features_dir: {tmp_path / 'feat'}")
    text = text.replace("labels_dir: data/raw/labels", f"labels_dir: {tmp_path / 'lab'}")
    cases = "ml_assets/demo/behaviour/credit_default.yaml"
    text = text.replace(
        f"behaviour_cases: {cases}", f"behaviour_cases: {DEFAULT_CONFIG.parent / cases}"
    )
    config = tmp_path / "pipeline.yaml"
    config.write_text(text)
    monkeypatch.setenv("ML_ASSETS_CONFIG", str(config))
    assert main(["--days", "2", "--rows-per-day", "10"]) == 0
    assert sorted(p.name for p in (tmp_path / "feat").iterdir()) == [
        "2026-01-01.parquet",
        "2026-01-02.parquet",
    ]
    assert len(list((tmp_path / "lab").iterdir())) == 2
    assert str(tmp_path / "feat") in capsys.readouterr().out


def test_cli_rejects_unknown_scenario(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--features-dir", str(tmp_path), "--labels-dir", str(tmp_path), "--scenario", "x"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice" in err
    for name in SCENARIOS:
        assert name in err
    assert list(tmp_path.iterdir()) == []


def test_module_runs_as_a_script(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ml_assets.demo.simulate",
            "--features-dir",
            str(tmp_path / "f"),
            "--labels-dir",
            str(tmp_path / "l"),
            "--days",
            "1",
            "--rows-per-day",
            "5",
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "wrote 1 parquet" in result.stdout
    assert len(pd.read_parquet(tmp_path / "f" / "2026-01-01.parquet")) == 5
