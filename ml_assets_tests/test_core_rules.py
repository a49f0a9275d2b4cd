"""Pure core: the run's batches read once (data/reading) and judged by the six rules
(data/rules), on files a newcomer delivers: CSV, labels inside the batch, a seeded sample."""

import datetime as dt

import pandas as pd
import polars as pl
import pytest

from ml_assets.data.batches import locate_batches
from ml_assets.data.reading import read_as_judged, read_run, sampled_rows
from ml_assets.data.rules import RULES, validate_batch
from ml_assets.data.validation import as_pandas
from ml_assets.demo import simulate
from ml_assets.settings import load_settings
from ml_assets_tests.conftest import rule_settings

CONTRACT = load_settings().dataset
START = dt.date(2026, 3, 1)


def _settings(labels_in_batch: bool):
    return rule_settings(CONTRACT, labels_in_batch=labels_in_batch)


def _judge(batches, labels_in_batch, sample=None):
    run = read_run(batches, CONTRACT, labels_in_batch=labels_in_batch, sample=sample)
    settings = _settings(labels_in_batch)
    return run, {name: rule(run, settings) for name, rule in RULES.items()}


def test_csv_batches_with_labels_inside_are_judged_like_parquet(tmp_path):
    features = tmp_path / "features"
    simulate.write_demo(features, None, start=START, days=3, rows_per_day=300, seed=5, fmt="csv")
    day = (START + dt.timedelta(days=1)).isoformat()
    path = features / f"{day}.csv"
    broken = pd.read_csv(path)
    broken.loc[4, CONTRACT.id_column] = broken.loc[9, CONTRACT.id_column]  # an id twice
    broken.loc[7, CONTRACT.timestamp_column] = f"{START + dt.timedelta(days=5)} 10:00:00"
    broken.to_csv(path, index=False)
    run, judged = _judge(locate_batches(features, None), labels_in_batch=True)
    assert len(run.stacks) == 1 and run.stacks[0].rows.tolist() == [300, 300, 300]
    failed = {name for name, reports in judged.items() if not reports[day].passed}
    assert failed == {
        "raw_batches_match_schema",
        "raw_batches_timestamps_not_in_future",
        "raw_labels_join_raw_batches",
    }
    schema = judged["raw_batches_match_schema"][day]
    assert schema.failing_rows == 2 and set(as_pandas(schema.failure_cases)["index"]) == {4, 9}
    late = judged["raw_batches_timestamps_not_in_future"][day]
    assert list(late.failure_cases.index) == [7]  # named by its row in the file
    join = judged["raw_labels_join_raw_batches"][day]
    assert (join.failure_cases["problem"] == "duplicate labelled id").sum() == 2
    for other in (START.isoformat(), (START + dt.timedelta(days=2)).isoformat()):
        assert all(reports[other].passed for reports in judged.values())
    # Training and monitoring read a batch as the gates judged it: a CSV's timestamps are
    # timestamps and its numbers floats, not the text and integers pandas' reader leaves.
    good = read_as_judged(features / f"{START.isoformat()}.csv", CONTRACT)
    assert str(good[CONTRACT.timestamp_column].dtype) == "datetime64[ns]"
    assert {str(good[c].dtype) for c in CONTRACT.numeric_columns} == {"float64"}
    assert (
        pd.read_csv(features / f"{START.isoformat()}.csv")[CONTRACT.timestamp_column].dtype
        == object
    )


def test_a_sample_keeps_whole_ids_and_names_rows_by_their_file_position(tmp_path):
    features, labels = tmp_path / "f", tmp_path / "l"
    simulate.write_demo(features, labels, start=START, days=2, rows_per_day=1000, seed=5)
    day = START.isoformat()
    path = features / f"{day}.parquet"
    frame = pd.read_parquet(path)
    kept = sampled_rows(1000, 0.1, 3)
    frame.loc[kept[0], "loan_amount"] = -1.0  # a row the sample judges
    frame.to_parquet(path, index=False)
    run, judged = _judge(locate_batches(features, labels), False, sample=(0.1, 3))
    assert run.stacks[0].rows.tolist() == [100, 100] and len(run.ids) == 2000
    schema = judged["raw_batches_match_schema"][day]
    assert not schema.passed and schema.rows == 100
    assert list(schema.failing_rows_sample.index) == [kept[0]]
    assert judged["raw_labels_join_raw_batches"][day].rows == 1000  # every id must join
    # The same draw as pandas' sample of the same fraction and seed.
    assert sorted(frame.sample(frac=0.1, random_state=3).index) == kept.tolist()


def test_a_stacks_day_is_exactly_its_rows_whole_or_sampled(tmp_path):
    """Stack.day(k), the slice the rules read a day's rows through, holds exactly the rows of
    DAY k: days of different sizes, read whole and at sample depth."""
    from ml_assets.data.reading import DAY

    features, labels = tmp_path / "f", tmp_path / "l"
    for offset, rows in enumerate((30, 70, 50)):
        simulate.write_demo(
            features,
            labels,
            start=START + dt.timedelta(days=offset),
            days=1,
            rows_per_day=rows,
            seed=5,
        )
    batches = locate_batches(features, labels)
    for sample in (None, (0.5, 3)):
        run = read_run(batches, CONTRACT, labels_in_batch=False, sample=sample)
        (stack,) = run.stacks
        assert stack.rows.tolist() == ([30, 70, 50] if sample is None else [15, 35, 25])
        for k in range(3):
            assert stack.day(k).equals(stack.frame.filter(pl.col(DAY) == k))


def test_an_unreadable_file_is_named_and_left_out_of_the_run(tmp_path):
    features, labels = tmp_path / "f", tmp_path / "l"
    simulate.write_demo(features, labels, start=START, days=3, rows_per_day=50, seed=5)
    broken = features / f"{START.isoformat()}.parquet"
    broken.write_bytes(b"not,a,parquet\n1,2,3\n")
    run = read_run(locate_batches(features, labels), CONTRACT, labels_in_batch=False)
    assert list(run.unreadable) == [START.isoformat()]
    assert str(broken) in run.unreadable[START.isoformat()]
    assert START.isoformat() not in run.days and len(run.days) == 2
    assert sum(len(s.frame) for s in run.stacks) == 100 and len(run.labels) == 100


def _edited(kind: str) -> pd.DataFrame | pl.DataFrame:
    features, _ = simulate.generate_day(dt.date(2026, 1, 1), 3000, seed=1)
    if kind == "renamed":
        return features.rename(columns={"income": "income_v2"})
    if kind == "text":
        features["income"] = features["income"].astype(str)
        features.loc[:1999, "income"] = "n/a"
        return pl.from_pandas(features)
    if kind == "duplicate ids":
        features.loc[:999, "application_id"] = features.loc[1000:1999, "application_id"].to_numpy()
    if kind == "out of range":
        features.loc[:10, "credit_score"] = 9999
    if kind == "nulls and categories":
        features.loc[:10, "region"] = "atlantis"
        features.loc[20:25, "income"] = None
    return features


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("renamed", "column income missing; found income_v2"),
        ("text", "income: 2,000 of 3,000 values are text, expected numbers (e.g. 'n/a')"),
        (
            "duplicate ids",
            "2,000 of 3,000 rows fail the schema: 1,000 ids appear more than once (2,000 rows, "
            "e.g. '20260101-001001')",
        ),
        (
            "out of range",
            "11 of 3,000 rows fail the schema: credit_score: 11 values above the maximum 850 "
            "(e.g. 9999.0)",
        ),
        (
            "nulls and categories",
            "17 of 3,000 rows fail the schema: income: 6 missing values; the contract does not "
            "allow nulls; region: 11 values outside the contract's categories ('atlantis')",
        ),
    ],
)
def test_schema_failures_are_said_in_peoples_words(kind, reason):
    """A retyped column is a type problem, not range failures (#10 F)."""
    report = validate_batch(
        _edited(kind), CONTRACT, day="2026-01-01", max_failing_row_share=0.0, sample_rows=5
    )
    assert not report.passed
    assert report.reason == reason


def test_each_contract_is_judged_by_its_own_schema():
    """The schema is built once per contract (data/validation.batch_schema): an equal contract
    gets the same object, and a contract with another bound is judged by that bound, before and
    after the first one."""
    from ml_assets.data.contract import NumericColumn
    from ml_assets.data.validation import batch_schema

    assert batch_schema(CONTRACT) is batch_schema(CONTRACT.model_copy())
    features = _edited("as generated")
    features["credit_score"] = features["credit_score"].clip(upper=800.0)
    features.loc[:9, "credit_score"] = 820.0  # within 850, above 800: ten rows
    bound = {**CONTRACT.numeric_columns, "credit_score": NumericColumn(min=300, max=800)}
    tighter = CONTRACT.model_copy(update={"numeric_columns": bound})
    assert batch_schema(tighter) is not batch_schema(CONTRACT)
    verdicts = [
        validate_batch(
            features, contract, day="2026-01-01", max_failing_row_share=0.0, sample_rows=5
        )
        for contract in (CONTRACT, tighter, CONTRACT)
    ]
    assert [v.passed for v in verdicts] == [True, False, True]
    assert verdicts[1].reason == (
        "10 of 3,000 rows fail the schema: credit_score: 10 values above the maximum 800 "
        "(e.g. 820.0)"
    )


@pytest.mark.parametrize(
    "values",
    [
        pl.Series(["RENT", "BAD", None, "OWN", "rent", " RENT", "MORTGAGEX", "", "x" * 30]),
        pl.Series(["RENT", "BAD"], dtype=pl.Categorical),
        pl.Series([1, 2, None]),
        pl.Series([True, False]),
        pl.Series([None, None]),
        pl.Series([], dtype=pl.String),
    ],
    ids=["text", "categorical", "integers", "booleans", "nulls", "empty"],
)
def test_category_check_fails_exactly_as_pandera_isin(values):
    """The schema's category check (value comparisons on text) has pandera's Check.isin's
    name, failure cases and, on a column of another type, its error."""
    import pandera.errors as pa_errors
    import pandera.polars as pa

    from ml_assets.data.validation import _isin

    frame = pl.DataFrame({"x": values})
    # A few values (compared one by one) and many (looked up in a set, as pandera does).
    for allowed in (["RENT", "MORTGAGE", "OWN"], ["RENT", "OWN", *(f"c{i}" for i in range(30))]):
        found = []
        for check in (pa.Check.isin(allowed), _isin(allowed)):
            schema = pa.DataFrameSchema({"x": pa.Column(pl.String, checks=check, nullable=False)})
            try:
                schema.validate(frame, lazy=True)
                found.append(None)
            except pa_errors.SchemaErrors as errors:
                found.append([_set_sorted(case) for case in errors.failure_cases.to_dicts()])
        assert found[0] == found[1]


def _set_sorted(case: dict) -> dict:
    """A failure case whose error quotes the allowed set with its values sorted: a set's order
    follows string hashing, which differs between processes and between copies of the set."""
    import re

    def sorted_values(match: re.Match) -> str:
        return "[[" + ", ".join(sorted(match.group(1).split(", "))) + "]]"

    text = case["failure_case"]
    if isinstance(text, str) and "is_in(" in text:
        case = {**case, "failure_case": re.sub(r"\[\[(.*?)\]\]", sorted_values, text)}
    return case


def test_each_stacked_row_is_numbered_by_its_row_in_its_own_file(tmp_path):
    """Files of different lengths read in one stack: every row keeps its place in its own
    file (the name evidence gives it), features and labels alike."""
    features, labels = tmp_path / "features", tmp_path / "labels"
    for k, rows in enumerate((7, 3, 12)):
        simulate.write_demo(
            features, labels, start=START + dt.timedelta(days=k), days=1, rows_per_day=rows, seed=k
        )
    run = read_run(locate_batches(features, labels), CONTRACT, labels_in_batch=False)
    (stack,) = run.stacks
    expected = [*range(7), *range(3), *range(12)]
    assert stack.frame["__row"].to_list() == expected
    assert stack.frame["__day"].to_list() == [0] * 7 + [1] * 3 + [2] * 12
    assert run.labels["__row"].to_list() == expected
