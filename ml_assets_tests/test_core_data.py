"""Pure core: batch files, schema gate, label joinability, ledger, splits."""

import datetime as dt
import json

import numpy as np
import pandas as pd
import polars as pl
import pytest

from ml_assets.data.batches import BatchFileError, data_version, list_batch_files, locate_batches
from ml_assets.data.ledger import (
    batch_status,
    contiguous_ranges,
    ledger_path,
    needs_validation,
    plan_window,
    quarantine_batch,
    read_verdict,
    read_verdicts,
    record_verdict,
    verdict_path,
    write_csv,
)
from ml_assets.data.rules import judge_frames, validate_batch
from ml_assets.data.validation import as_pandas
from ml_assets.demo import simulate
from ml_assets.features.examples import assign_split, build_features
from ml_assets.settings import load_settings
from ml_assets_tests.conftest import rule_settings

DAY = dt.date(2026, 2, 1)
GATES = ("schema", "label_join")
CONTRACT = load_settings().dataset


def _day(scenario="stable", rows=400):
    return simulate.generate_day(DAY, rows, seed=3, scenario=scenario)


def _schema(frame):
    return validate_batch(
        frame, CONTRACT, day="2026-02-01", max_failing_row_share=0.0, sample_rows=5
    )


def test_stable_batch_passes_the_schema():
    report = _schema(_day()[0])
    assert report.passed, report.reason
    assert report.failing_rows == 0 and report.rows == 400


def test_renamed_and_retyped_columns_fail_structurally():
    report = _schema(_day("schema_corruption")[0])
    assert not report.passed
    assert report.failing_rows == report.rows
    # In people's words: the rename and the retyped column, not pandera's check names.
    assert report.reason == (
        "column credit_score missing; found fico_score; "
        "income: 400 of 400 values are text, expected numbers (e.g. '$44,600')"
    )
    cases = as_pandas(report.failure_cases)
    failing_columns = set(cases["column"].dropna())
    assert {"income"} <= failing_columns
    assert (
        "fico_score" in set(cases["failure_case"].astype(str)) or "credit_score" in failing_columns
    )


def test_value_corruption_counts_failing_rows_and_samples_them():
    report = _schema(_day("value_corruption")[0])
    assert not report.passed
    assert 0 < report.failing_rows <= report.rows
    assert len(report.failing_rows_sample) == 5
    assert {"income", "loan_amount"} <= set(as_pandas(report.failure_cases)["column"])


def test_tolerated_share_of_failing_rows_passes():
    frame = _day()[0]
    frame.loc[frame.index[:4], "credit_score"] = 9999
    strict = _schema(frame)
    lenient = validate_batch(
        frame, CONTRACT, day="2026-02-01", max_failing_row_share=0.05, sample_rows=5
    )
    assert not strict.passed and strict.failing_rows == 4
    assert lenient.passed and lenient.value == pytest.approx(0.01)


def test_duplicate_ids_fail():
    frame = _day()[0]
    frame.loc[1, CONTRACT.id_column] = frame.loc[0, CONTRACT.id_column]
    report = _schema(frame)
    assert not report.passed
    assert "application_id" in set(as_pandas(report.failure_cases)["column"])


def _join(features, labels, min_join_rate=0.99, day="2026-02-01"):
    settings = rule_settings(CONTRACT, min_join_rate=min_join_rate, sample_rows=5)
    judged = judge_frames({day: features}, {day: labels}, settings)
    return judged["raw_labels_join_raw_batches"][day]


def test_label_join_both_ways():
    features, labels = _day()
    ok = _join(features, labels)
    assert ok.passed and ok.value == 1.0
    missing = _join(features, labels.iloc[50:])
    assert not missing.passed
    assert missing.value == pytest.approx(1 - 50 / 400)
    assert (missing.failure_cases["problem"] == "batch row without label").sum() == 50
    shuffled = _join(features, labels.sample(frac=1.0, random_state=1))
    assert shuffled.passed and shuffled.value == 1.0  # order does not matter, ids do
    bad_value = labels.copy()
    bad_value.loc[0, CONTRACT.target_column] = 7
    rejected = _join(features, bad_value, min_join_rate=0.5)
    assert not rejected.passed
    assert list(rejected.failure_cases["id"]) == [labels[CONTRACT.id_column].iloc[0]]
    twice = pd.concat([labels, labels.iloc[[3]]], ignore_index=True)
    repeated = _join(features, twice)
    assert (
        not repeated.passed
        and (repeated.failure_cases["problem"] == "duplicate labelled id").sum() == 2
    )


def test_label_join_without_id_column_fails_with_reason():
    features, labels = _day()
    report = _join(features.rename(columns={"application_id": "app"}), labels, 0.9)
    assert not report.passed
    assert "no id column" in report.reason


def test_batch_files_follow_the_naming_contract(tmp_path):
    (tmp_path / "2026-01-02.parquet").write_bytes(b"x")
    (tmp_path / "notes.csv").write_text("a")
    (tmp_path / "2026-13-40.csv").write_text("a")
    assert list(list_batch_files(tmp_path)) == ["2026-01-02"]
    (tmp_path / "2026-01-02.csv").write_text("a")
    with pytest.raises(BatchFileError, match="two files for batch 2026-01-02"):
        list_batch_files(tmp_path)


def test_ledger_fails_closed(tmp_path):
    features_dir, labels_dir, ledger = tmp_path / "f", tmp_path / "l", tmp_path / "ledger"
    simulate.write_demo(features_dir, labels_dir, start=DAY, days=2, rows_per_day=100, seed=1)
    batches = locate_batches(features_dir, labels_dir)
    first, second = batches.values()
    assert not batch_status(ledger, first, GATES).eligible  # never validated
    frame = pd.read_parquet(first.features)
    passing = _schema(frame)
    record_verdict(ledger, "schema", passing, first, run_id="run-1", severity="ERROR", policy="p1")
    assert "label_join" in batch_status(ledger, first, GATES).reason
    join = _join(frame, pd.read_parquet(first.labels), day=first.day)
    record_verdict(ledger, "label_join", join, first, run_id="run-1", severity="ERROR", policy="p1")
    assert batch_status(ledger, first, GATES).eligible
    assert not needs_validation(ledger, first, GATES, "p1")
    # A failed verdict excludes the batch and the quarantine keeps the file and its evidence.
    failing = _schema(_day("schema_corruption")[0])
    record_verdict(ledger, "schema", failing, second, run_id="run-2", severity="ERROR", policy="p1")
    folder = quarantine_batch(tmp_path / "q", "schema", second, failing, "run-2")
    assert (folder / second.features.name).read_bytes() == second.features.read_bytes()
    written = pd.read_csv(folder / "schema_failure_cases.csv", keep_default_na=False)
    assert list(written.columns) == list(failing.failure_cases.columns)
    assert len(written) == len(failing.failure_cases) > 0
    assert "missing; found" in (folder / "schema_report.md").read_text()
    assert second.features.exists()
    # A second gate failing the batch adds its evidence beside the first gate's; the batch file
    # is kept once, and a copy cut short is made whole again.
    kept = folder / second.features.name
    kept.write_bytes(kept.read_bytes()[:100])
    again = quarantine_batch(tmp_path / "q", "label_join", second, failing, "run-2")
    assert again == folder and kept.read_bytes() == second.features.read_bytes()
    assert {p.name for p in folder.glob("*_report.md")} == {
        "schema_report.md",
        "label_join_report.md",
    }
    status = batch_status(ledger, second, GATES)
    assert not status.eligible and status.reason.startswith("failed schema")
    # Changing the file after validation withdraws the batch until it is judged again.
    frame.head(50).to_parquet(first.features)
    changed = locate_batches(features_dir, labels_dir)[first.day]
    assert batch_status(ledger, changed, GATES).reason.startswith("file changed")
    assert needs_validation(ledger, changed, GATES, "p1")
    window = plan_window(ledger, locate_batches(features_dir, labels_dir), 5, GATES)
    assert window.days == []
    assert set(window.excluded) == {first.day, second.day}


def test_ledger_reads_and_migrates_the_older_layout(tmp_path):
    """A ledger of one file per verdict (the older layout) is read as it is and folded into the
    gate's file the next time the gate records a verdict; the newer verdict wins."""
    features_dir, labels_dir, ledger = tmp_path / "f", tmp_path / "l", tmp_path / "ledger"
    simulate.write_demo(features_dir, labels_dir, start=DAY, days=2, rows_per_day=100, seed=1)
    first, second = locate_batches(features_dir, labels_dir).values()
    passing = _schema(pd.read_parquet(first.features))
    for batch in (first, second):  # written as the older code wrote them
        verdict = record_verdict(
            tmp_path / "scratch",
            "schema",
            passing,
            batch,
            run_id="old",
            severity="ERROR",
            policy="p1",
        )
        path = verdict_path(ledger, "schema", batch.day)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(verdict.__dict__, indent=1))
    assert not ledger_path(ledger, "schema").exists()
    assert read_verdict(ledger, "schema", second.day) == verdict
    assert set(read_verdicts(ledger, "schema")) == {first.day, second.day}
    record_verdict(ledger, "schema", passing, second, run_id="new", severity="ERROR", policy="p1")
    assert not (ledger / "schema").exists()  # migrated into the gate's file
    assert read_verdict(ledger, "schema", first.day).run_id == "old"
    assert read_verdict(ledger, "schema", second.day).run_id == "new"
    assert batch_status(ledger, first, ("schema",)).eligible


def test_ledger_rewrite_writes_every_verdict_as_a_fresh_encoding(tmp_path):
    """A rewrite reuses the line of each verdict it kept from its last rewrite: the file is the
    one a process encoding every verdict again writes (the token aside)."""
    from ml_assets.data import ledger as ledger_module

    features_dir, labels_dir, ledger = tmp_path / "f", tmp_path / "l", tmp_path / "ledger"
    simulate.write_demo(features_dir, labels_dir, start=DAY, days=3, rows_per_day=100, seed=1)
    batches = list(locate_batches(features_dir, labels_dir).values())
    passing = _schema(pd.read_parquet(batches[0].features))
    for run, chosen in (("run-1", batches), ("run-2", batches[1:2]), ("run-3", batches[2:])):
        for batch in chosen:
            record_verdict(
                ledger, "schema", passing, batch, run_id=run, severity="ERROR", policy="p"
            )
    text = ledger_path(ledger, "schema").read_text()
    verdicts = json.loads(text)["verdicts"]
    fresh = ",\n".join(
        ledger_module._line(day, ledger_module.Verdict(**v)) for day, v in verdicts.items()
    )
    assert text.split("\n", 1)[1] == fresh + "\n}}\n"
    assert [v["run_id"] for v in verdicts.values()] == ["run-1", "run-2", "run-3"]


def test_contiguous_ranges():
    keys = ["a", "b", "c", "d", "e", "f"]
    assert contiguous_ranges(keys, {"b", "c", "e"}) == [("b", "c"), ("e", "e")]
    assert contiguous_ranges(keys, set()) == []
    assert contiguous_ranges(keys, set(keys)) == [("a", "f")]


def test_split_is_deterministic_disjoint_and_proportional():
    ids = pd.Series([f"id-{i}" for i in range(20000)])
    split = assign_split(ids, seed=42, validation=0.15, test=0.2)
    again = assign_split(ids.sample(frac=1, random_state=0), seed=42, validation=0.15, test=0.2)
    by_id = dict(zip(ids, split, strict=True))
    assert all(
        by_id[i] == s for i, s in zip(ids.sample(frac=1, random_state=0), again, strict=True)
    )
    shares = pd.Series(split).value_counts(normalize=True)
    assert shares["test"] == pytest.approx(0.2, abs=0.01)
    assert shares["validation"] == pytest.approx(0.15, abs=0.01)
    other_seed = assign_split(ids, seed=43, validation=0.15, test=0.2)
    assert (other_seed != split).mean() > 0.3


def test_features_drop_sensitive_columns_and_fix_categories():
    frame = _day()[0]
    x = build_features(frame, CONTRACT)
    assert "sex" not in x.columns
    assert list(x["region"].cat.categories) == CONTRACT.categorical_columns["region"]
    assert x["credit_score"].dtype == np.float64
    # One row alone gets the same category codes as inside the whole batch.
    single = build_features(frame.iloc[[7]], CONTRACT)
    assert single["purpose"].cat.codes.iloc[0] == x["purpose"].cat.codes.iloc[7]
    with pytest.raises(KeyError, match="credit_score"):
        build_features(frame.drop(columns=["credit_score"]), CONTRACT)


def test_data_version_names_exact_content():
    a = data_version({"2026-01-01": "h1", "2026-01-02": "h2"})
    assert a == data_version({"2026-01-02": "h2", "2026-01-01": "h1"})
    assert a != data_version({"2026-01-01": "h1", "2026-01-02": "h3"})


def test_window_schema_pass_gives_each_day_its_own_report():
    """One pandera pass over stacked batches judges each day exactly as judging it alone."""
    from ml_assets.data.reading import run_of
    from ml_assets.data.rules import judge_schema

    scenarios = ["stable", "value_corruption", "stable", "schema_corruption", "stable", "stable"]
    frames = {}
    for i, scenario in enumerate(scenarios):
        day = DAY + dt.timedelta(days=i)
        frames[day.isoformat()] = simulate.generate_day(day, 200, seed=3, scenario=scenario)[0]
    days = list(frames)
    frames[days[2]].loc[5, "application_id"] = frames[days[2]].loc[7, "application_id"]
    frames[days[4]].loc[3, "application_id"] = frames[days[0]].loc[3, "application_id"]
    frames[days[4]].loc[8, "region"] = "mars"
    polars = {day: pl.from_pandas(frame) for day, frame in frames.items()}
    run = run_of(polars, {}, CONTRACT)
    assert sorted(len(s.days) for s in run.stacks) == [1, 5]  # the renamed column stands alone
    settings = rule_settings(CONTRACT, sample_rows=5)
    judged = judge_schema(run, settings)
    # An id repeated across two days is no failure: ids are unique within their batch.
    assert [judged[d].passed for d in days] == [True, False, False, False, False, True]
    assert judged[days[4]].failing_rows == 1 and judged[days[2]].failing_rows == 2
    for day, frame in frames.items():
        alone = validate_batch(frame, CONTRACT, day=day, max_failing_row_share=0.0, sample_rows=5)
        together = judged[day]
        for name in ("passed", "rows", "failing_rows", "value", "reason"):
            assert getattr(together, name) == getattr(alone, name), (day, name)
        pd.testing.assert_frame_equal(
            as_pandas(together.failure_cases), as_pandas(alone.failure_cases)
        )
        pd.testing.assert_frame_equal(together.failing_rows_sample, alone.failing_rows_sample)


def test_failure_cases_are_written_as_csv_whatever_their_columns_hold(tmp_path):
    cases = pd.DataFrame(
        {
            "column": ["fico_score", "income", "city"],
            # pandera's cases of a mistyped column mix numbers and text: written as text
            "failure_case": [1.5, "abc", None],
            "index": pd.array([3, None, 7], dtype="Int64"),
            "passed": [True, False, None],
            "note": ['say "hi"', "a,b", ""],
            "when": pd.to_datetime(["2026-02-01 10:30", None, "2026-02-02 00:00"]),
        },
        index=[10, 11, 12],  # not written: rows are named by the index column
    )
    write_csv(cases, tmp_path / "cases.csv")
    assert (tmp_path / "cases.csv").read_text().splitlines() == [
        "column,failure_case,index,passed,note,when",
        'fico_score,1.5,3,true,"say ""hi""",2026-02-01T10:30:00.000000000',
        'income,abc,,false,"a,b",',
        'city,,7,,"",2026-02-02T00:00:00.000000000',
    ]
    assert cases["failure_case"].tolist() == [1.5, "abc", None]  # the caller's frame unchanged
    # Integers beyond 64 bits (a failing value of an id column, say) are written as text.
    huge = pd.DataFrame({"column": ["id", "id"], "failure_case": [2**64, 7]})
    write_csv(huge, tmp_path / "huge.csv")
    assert (tmp_path / "huge.csv").read_text().splitlines() == [
        "column,failure_case",
        "id,18446744073709551616",
        "id,7",
    ]
