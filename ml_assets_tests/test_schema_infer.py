"""`python -m ml_assets.cli.schema infer`: contract proposals from a trusted window of batches."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ml_assets.cli.schema import main
from ml_assets.data.batches import list_batch_files, read_batch
from ml_assets.data.contract import DataContract, NumericColumn
from ml_assets.data.inference import (
    HEADER_MARK,
    Window,
    diff_contracts,
    nice_bounds,
    parse_window,
    propose_contract,
    select_days,
)
from ml_assets.data.rules import validate_batch
from ml_assets.demo import simulate
from ml_assets.settings import DEFAULT_CONFIG, parse_settings
from ml_assets_tests.conftest import START, Project, make_project

DAYS = 10
ROWS = 200
PATH_KEYS = ("features_dir", "labels_dir", "demo", "behaviour_cases")


@pytest.fixture
def stable(tmp_path) -> Project:
    """Ten stable demo days (2026-01-01..2026-01-10) of 200 rows in a temporary project."""
    project = make_project(tmp_path / "project")
    project.write_days(START, DAYS, rows=ROWS)
    return project


def _batches(project: Project, days: list[str] | None = None) -> dict[str, pd.DataFrame]:
    files = list_batch_files(project.settings.dataset.features_dir)
    return {day: read_batch(path) for day, path in files.items() if days is None or day in days}


def _run(project: Project, *args: str) -> int:
    return main(["infer", "--config", str(project.config_path), *args])


def _proposal_path(project: Project, window: str) -> Path:
    return project.root / "data" / "schema_proposals" / f"credit_default_demo-{window}.yaml"


def _header(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.startswith("#")]


# --- pure helpers --------------------------------------------------------------------------------


def test_parse_window_forms_and_day_selection():
    days = [f"2026-01-{d:02d}" for d in (1, 2, 3, 5, 8)]
    assert parse_window("2026-01-02..2026-01-05") == Window(
        dt.date(2026, 1, 2), dt.date(2026, 1, 5)
    )
    assert parse_window("2026-01-03") == Window(dt.date(2026, 1, 3), dt.date(2026, 1, 3))
    assert parse_window(" last:2 ") == Window(last=2)
    assert str(parse_window("last:7")) == "last:7"
    assert select_days(days, parse_window("2026-01-02..2026-01-05")) == [
        "2026-01-02",
        "2026-01-03",
        "2026-01-05",
    ]
    assert select_days(list(reversed(days)), parse_window("last:2")) == ["2026-01-05", "2026-01-08"]
    assert select_days(days, parse_window("last:99")) == days
    assert select_days(days, parse_window("2026-02-01..2026-02-09")) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-01-10..2026-01-01", "starts after it ends"),
        ("2026-02-30..2026-03-01", "impossible date"),
        ("last:0", "N >= 1"),
        ("yesterday", "YYYY-MM-DD..YYYY-MM-DD"),
        ("2026-01-01:2026-01-05", "last:N"),
    ],
)
def test_parse_window_rejects_bad_formats(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_window(text)


def test_nice_bounds_round_outward_and_respect_zero():
    assert nice_bounds(36, 60, 0.1, integral=True) == (33, 63)
    assert nice_bounds(0.01, 1.1, 0.1) == (0, 1.3)
    assert nice_bounds(300, 850, 0.1, integral=True) == (240, 910)
    assert nice_bounds(-5, 5, 0.1) == (-6, 6)
    assert nice_bounds(7, 7, 0.1, integral=True) == (6, 8)
    assert nice_bounds(0.123, 0.456, 0.0) == (0.123, 0.456)
    assert nice_bounds(6000, 400_000, 0.5, integral=True) == (0, 600_000)


def _contract(**changes) -> DataContract:
    base = {
        "name": "d",
        "id_column": "id",
        "timestamp_column": "ts",
        "target_column": "y",
        "numeric_columns": {
            "a": NumericColumn(min=0, max=10),
            "b": NumericColumn(min=0, max=10),
            "c": NumericColumn(min=0, max=10),
            "gone": NumericColumn(),
        },
        "categorical_columns": {"k": ["x", "y"], "flip": ["p"]},
        "slice_columns": ["k"],
    }
    return DataContract(**{**base, **changes})


def test_diff_contracts_reports_every_kind_of_change():
    current = _contract()
    proposed = _contract(
        numeric_columns={
            "a": NumericColumn(min=-1, max=12),
            "b": NumericColumn(min=2, max=8, nullable=True),
            "c": NumericColumn(min=1, max=11),
            "flip": NumericColumn(min=0, max=1),
            "new": NumericColumn(min=0, max=1),
        },
        categorical_columns={"k": ["y", "z"]},
        label_values=[0, 1, 2],
    )
    diff = diff_contracts(current, proposed)
    assert diff.added == ["new"]
    assert diff.removed == ["gone"]
    assert diff.kind_changed == {"flip": "categorical -> numeric"}
    assert diff.widened == {"a": "[0, 10] -> [-1, 12]"}
    assert diff.narrowed == {"b": "[0, 10] -> [2, 8]"}
    assert diff.shifted == {"c": "[0, 10] -> [1, 11]"}
    assert diff.nullability == {"b": "false -> true"}
    assert diff.categories_added == {"k": ["z"]}
    assert diff.categories_removed == {"k": ["x"]}
    assert diff.roles == {"label_values": "[0, 1] -> [0, 1, 2]"}
    lines = diff.lines()
    assert "columns added: new" in lines
    assert "columns removed: gone" in lines
    assert "range widened: a [0, 10] -> [-1, 12]" in lines
    assert "categories added: k +[z]" in lines
    assert diff_contracts(current, current).lines() == ["no change"]
    assert diff_contracts(current, current).empty


def test_profile_rules_on_a_hand_made_frame():
    """Id by name and uniqueness, one timestamp, categorical up to 50 values, text beyond it."""
    n = 60
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i:03d}" for i in range(n)],
            "created": pd.date_range("2026-01-01", periods=n, freq="h"),
            "updated": [f"2026-01-0{1 + i % 9} 10:00:00" for i in range(n)],
            "amount": [float(i) if i % 10 else None for i in range(n)],
            "colour": ["red", "blue", "green"] * (n // 3),
            "comment": [f"free text {i}" for i in range(n)],
            "y": [i % 2 for i in range(n)],
        }
    )
    current = DataContract(
        name="d",
        id_column="application_id",
        timestamp_column="created",
        target_column="y",
        numeric_columns={"amount": NumericColumn(min=0, max=100)},
        categorical_columns={"colour": ["red", "blue"], "gone": ["a"]},
        slice_columns=["colour", "gone"],
    )
    proposal = propose_contract({"2026-01-01": frame}, current, margin=0.1)
    contract = proposal.contract
    assert contract.id_column == "customer_id"
    assert contract.timestamp_column == "created"
    assert contract.numeric_columns == {"amount": NumericColumn(min=0, max=65, nullable=True)}
    assert contract.categorical_columns == {"colour": ["blue", "green", "red"]}
    assert contract.label_values == [0, 1]
    assert contract.slice_columns == ["colour"]
    assert set(proposal.unrepresented) == {"updated", "comment"}
    assert "60 distinct text values" in proposal.unrepresented["comment"]
    assert any("'customer_id' is proposed instead" in w for w in proposal.warnings)
    assert any("slice_columns: gone dropped" in w for w in proposal.warnings)


# --- inference on demo data ----------------------------------------------------------------------


def test_stable_window_proposes_every_declared_column_with_ranges_containing_the_data(stable):
    current = stable.settings.dataset
    batches = _batches(stable)
    labels = pd.concat(
        read_batch(path)["defaulted"] for path in list_batch_files(current.labels_dir).values()
    )
    proposal = propose_contract(batches, current, labels=labels, margin=0.1)
    contract = proposal.contract
    frame = pd.concat(batches.values(), ignore_index=True)

    assert list(contract.numeric_columns) == list(current.numeric_columns)
    assert list(contract.categorical_columns) == list(current.categorical_columns)
    for key in ("id_column", "timestamp_column", "target_column", "positive_label"):
        assert getattr(contract, key) == getattr(current, key)
    assert contract.label_values == [0, 1]
    assert contract.slice_columns == ["age_band", "region", "channel"]
    assert contract.sensitive_columns == ["sex"]
    assert proposal.unrepresented == {}
    for name, spec in contract.numeric_columns.items():
        observed = frame[name].dropna()
        assert spec.min <= observed.min() and observed.max() <= spec.max, name
        assert spec.min >= 0, name  # every demo value is non-negative
        widening = 0.1 * (observed.max() - observed.min())
        assert observed.max() + widening <= spec.max <= observed.max() + 2 * widening + 1, name
        assert spec.nullable == bool(frame[name].isna().any()), name
    assert contract.numeric_columns["employment_years"].nullable is True
    assert contract.numeric_columns["income"].nullable is False
    assert contract.numeric_columns["term_months"] == NumericColumn(min=33, max=63)
    for name, values in contract.categorical_columns.items():
        assert values == sorted(frame[name].unique()), name
    assert contract.categorical_columns["home_ownership"] == ["MORTGAGE", "OWN", "RENT"]


def test_cli_proposal_round_trips_and_is_pasteable(stable, capsys):
    assert _run(stable, "--window", "2026-01-01..2026-01-10") == 0
    path = _proposal_path(stable, "2026-01-01..2026-01-10")
    out = capsys.readouterr().out
    assert f"wrote schema proposal {path}" in out
    assert "range narrowed: income [0, 5000000] -> [0," in out

    loaded = yaml.safe_load(path.read_text())
    assert list(loaded) == ["dataset", "gates"]
    # The proposed gate keys merge into the configured block and load.
    raw = yaml.safe_load(stable.config_path.read_text())
    for key, value in loaded["gates"].items():
        if isinstance(value, dict):
            raw["gates"][key].update(value)
        else:
            raw["gates"][key] = value
    merged = parse_settings(raw, stable.config_path).gates
    assert merged.decision_threshold == "max_f1" and merged.slices.min_rows >= 50
    block = loaded["dataset"]
    configured = yaml.safe_load(stable.config_path.read_text())["dataset"]
    assert list(block) == list(configured)  # same keys in the same order as the config
    assert {k: block[k] for k in PATH_KEYS} == {k: configured[k] for k in PATH_KEYS}

    contract = DataContract.model_validate({k: v for k, v in block.items() if k not in PATH_KEYS})
    assert set(contract.feature_columns) == set(stable.settings.dataset.feature_columns)
    assert contract.categorical_columns["age_band"] == ["18-25", "26-35", "36-50", "51-65", "65+"]
    for day, frame in _batches(stable).items():
        report = validate_batch(frame, contract, day=day, max_failing_row_share=0.0, sample_rows=5)
        assert report.passed, (day, report.reason)
        assert report.failing_rows == 0

    # Pasted over the `dataset:` section, the config still loads and names the same contract.
    raw = yaml.safe_load(stable.config_path.read_text())
    raw["dataset"] = block
    pasted = parse_settings(raw, stable.config_path)
    assert pasted.dataset.numeric_columns == contract.numeric_columns


def test_header_says_where_the_proposal_came_from(stable):
    assert _run(stable, "--window", "2026-01-01..2026-01-10", "--margin", "0.2") == 0
    header = _header(_proposal_path(stable, "2026-01-01..2026-01-10"))
    assert header[0] == f"{HEADER_MARK} for dataset 'credit_default_demo'"
    text = "\n".join(header)
    assert "A PROPOSAL FOR REVIEW: it is never applied automatically" in text
    assert "# window: 2026-01-01..2026-01-10\n" in text
    features = stable.settings.dataset.features_dir
    assert f"# files: 10 (2026-01-01.parquet .. 2026-01-10.parquet) in {features}" in text
    assert f"# rows: {DAYS * ROWS:,}" in text
    assert re.search(r"^# generated: \d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$", text, re.M)
    assert "--margin 0.2" in text
    assert "every one of the 10 batches of the window passes it with no failing row" in text
    assert "#   range narrowed: term_months [6, 120] -> [31, 65]" in text


def test_last_n_window_uses_the_newest_batches(stable):
    assert _run(stable, "--window", "last:3") == 0
    path = _proposal_path(stable, "2026-01-08..2026-01-10")
    text = "\n".join(_header(path))
    assert "# window: last:3 = 2026-01-08..2026-01-10" in text
    assert "# files: 3 (2026-01-08.parquet .. 2026-01-10.parquet)" in text
    assert f"# rows: {3 * ROWS:,}" in text
    block = yaml.safe_load(path.read_text())["dataset"]
    newest = pd.concat(_batches(stable, ["2026-01-08", "2026-01-09", "2026-01-10"]).values())
    income = block["numeric_columns"]["income"]
    assert income["min"] <= newest["income"].min() and newest["income"].max() <= income["max"]

    assert _run(stable, "--window", "last:50") == 0
    text = "\n".join(_header(_proposal_path(stable, "2026-01-01..2026-01-10")))
    assert "window last:50 asked for 50 batches; the folder has 10" in text


def test_schema_corruption_day_proposes_the_renamed_column(tmp_path, capsys):
    project = make_project(tmp_path / "project")
    project.write_days(START, 8, rows=ROWS)
    project.write_days(START + dt.timedelta(days=8), 2, scenario="schema_corruption", rows=ROWS)

    assert _run(project, "--window", "2026-01-09..2026-01-10") == 0
    out = capsys.readouterr().out
    assert "columns added: fico_score" in out
    assert "columns removed: credit_score" in out
    assert "columns removed (present but cannot be declared, see warnings): income" in out

    path = _proposal_path(project, "2026-01-09..2026-01-10")
    header = "\n".join(_header(path))
    assert "#   columns added: fico_score" in header
    assert "#   columns removed: credit_score" in header
    assert "income: left out of the proposal, 3" in header  # ~300 distinct "$52,300" strings
    block = yaml.safe_load(path.read_text())["dataset"]
    assert "credit_score" not in block["numeric_columns"]
    fico = block["numeric_columns"]["fico_score"]
    observed = pd.concat(_batches(project, ["2026-01-09", "2026-01-10"]).values())["fico_score"]
    assert fico["min"] <= observed.min() and observed.max() <= fico["max"]
    assert 300 <= fico["min"] < observed.min() and fico["max"] > observed.max()


def test_mixed_window_warns_about_columns_missing_from_some_batches(tmp_path):
    project = make_project(tmp_path / "project")
    project.write_days(START, 2, rows=ROWS)
    project.write_days(START + dt.timedelta(days=2), 1, scenario="schema_corruption", rows=ROWS)
    proposal = propose_contract(_batches(project), project.settings.dataset, margin=0.1)
    assert {"credit_score", "fico_score"} <= set(proposal.contract.numeric_columns)
    assert (
        "fico_score: absent from 2 of 3 batches (2026-01-01, 2026-01-02); batches without it "
        "fail the proposed schema" in proposal.warnings
    )
    assert any(
        w.startswith(f"income: {ROWS} of {3 * ROWS} values are not numbers")
        for w in proposal.warnings
    )


def test_labels_in_the_batch_and_csv_files(tmp_path):
    project = make_project(tmp_path / "project", dataset={"labels_dir": None})
    features_dir = project.settings.dataset.features_dir
    simulate.write_demo(
        features_dir, None, start=START, days=3, rows_per_day=ROWS, seed=7, fmt="csv"
    )
    assert _run(project, "--window", "2026-01-01..2026-01-03") == 0
    path = _proposal_path(project, "2026-01-01..2026-01-03")
    block = yaml.safe_load(path.read_text())["dataset"]
    assert block["labels_dir"] is None
    assert block["label_values"] == [0, 1]
    assert block["timestamp_column"] == "application_ts"  # text timestamps in csv
    assert "defaulted" not in block["numeric_columns"]
    contract = DataContract.model_validate({k: v for k, v in block.items() if k not in PATH_KEYS})
    for day, frame in _batches(project).items():
        report = validate_batch(
            frame,
            contract,
            day=day,
            max_failing_row_share=0.0,
            sample_rows=5,
            include_target=True,
        )
        assert report.passed, (day, report.reason)
    assert "# labels: the target column of the batches" in _header(path)


# --- safety and errors ---------------------------------------------------------------------------


def test_configs_are_never_modified(stable, capsys):
    config_before = stable.config_path.read_bytes()
    default_before = DEFAULT_CONFIG.read_bytes()
    stamp_before = stable.config_path.stat().st_mtime_ns

    assert _run(stable, "--window", "2026-01-01..2026-01-10") == 0
    assert _run(stable, "--window", "last:2", "--out", str(stable.config_path)) == 1
    assert "refusing to write the proposal over the config" in capsys.readouterr().err
    other = stable.root / "notes.yaml"
    other.write_text("keep: me\n")
    assert _run(stable, "--window", "last:2", "--out", str(other)) == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    assert other.read_text() == "keep: me\n"

    assert stable.config_path.read_bytes() == config_before
    assert stable.config_path.stat().st_mtime_ns == stamp_before
    assert DEFAULT_CONFIG.read_bytes() == default_before
    written = sorted(p.name for p in (stable.root / "data" / "schema_proposals").iterdir())
    assert written == ["credit_default_demo-2026-01-01..2026-01-10.yaml"]


def test_empty_window_names_the_folder_and_window(stable, capsys):
    assert _run(stable, "--window", "2026-03-01..2026-03-05") == 1
    err = capsys.readouterr().err
    features = stable.settings.dataset.features_dir
    assert (
        f"error: no batch in window 2026-03-01..2026-03-05 in {features} "
        "(the folder has 10 batches, 2026-01-01..2026-01-10)" in err
    )
    assert not (stable.root / "data" / "schema_proposals").exists()

    empty = make_project(stable.root.parent / "empty")
    assert _run(empty, "--window", "last:5") == 1
    err = capsys.readouterr().err
    assert f"in {empty.settings.dataset.features_dir} (the folder does not exist)" in err


def test_bad_window_format_exits_2_naming_the_format(stable, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _run(stable, "--window", "2026-01-01/2026-01-10")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --window: window '2026-01-01/2026-01-10' is not YYYY-MM-DD..YYYY-MM-DD" in err
    with pytest.raises(SystemExit) as exit_info:
        _run(stable, "--window", "last:3", "--margin", "-0.5")
    assert exit_info.value.code == 2
    assert "must be a non-negative number" in capsys.readouterr().err
