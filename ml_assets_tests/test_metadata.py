"""markdown.table and markdown_table: the tables of the check metadata and the reports, as a
person reads them."""

import numpy as np
import pandas as pd
import polars as pl
import pytest

from ml_assets import markdown
from ml_assets.metadata import markdown_table


def test_a_table_reads_as_python_prints_its_values_and_numbers_align_right():
    numbers = pd.DataFrame(
        {
            "i8": np.array([1, 2, 30], dtype="int8"),
            "u": np.array([1, 2, 10**12], dtype="uint64"),
            "f4": np.array([0.1, 0.2, 0.3], dtype="float32"),
            "f": [1234567.0, 1e-9, np.nan],
            "n": pd.array([1, None, 3], dtype="Int64"),
        }
    )
    # Known answer: nothing rounded or cut (1234567.0, float32's 0.1), a missing value of any
    # kind as a dash.
    assert markdown.table(numbers).splitlines() == [
        "|  i8 |             u |  f4 |         f |   n |",
        "|----:|--------------:|----:|----------:|----:|",
        "|   1 |             1 | 0.1 | 1234567.0 |   1 |",
        "|   2 |             2 | 0.2 |     1e-09 |   – |",
        "|  30 | 1000000000000 | 0.3 |         – |   3 |",
    ]
    others = pd.DataFrame(
        {
            "t": pd.to_datetime(["2026-01-01", None]),
            "c": pd.Categorical(["a", "b|c"]),
            "p": [True, False],
            "s": ["two\nlines", None],
        }
    )
    # A pipe escaped and a line break flattened: the table stays one table.
    assert markdown.table(others).splitlines() == [
        "| t                   | c    | p     | s         |",
        "|:--------------------|:-----|:------|:----------|",
        "| 2026-01-01 00:00:00 | a    | True  | two lines |",
        "| –                   | b\\|c | False | –         |",
    ]


@pytest.mark.parametrize(
    "column", [[True, False], np.array([True, False]), ["1", "2"], [1, "x"], [None, None]]
)
def test_booleans_text_and_mixed_columns_align_left(column):
    rule = markdown.table(pd.DataFrame({"a": column})).splitlines()[1]
    assert rule.startswith("|:")


def test_the_metadata_table_is_the_markdown_table_and_empty_reads_none():
    rows = [
        {"day": "2026-02-20", "passed": True, "value": 0.8198, "threshold": None},
        {"day": "2026-02-21", "passed": False, "value": float("nan"), "threshold": 0.98},
    ]
    text = markdown_table(rows).value
    assert text == markdown.table(rows)
    assert text.splitlines() == [
        "| day        | passed |  value | threshold |",
        "|:-----------|:-------|-------:|----------:|",
        "| 2026-02-20 | True   | 0.8198 |         – |",
        "| 2026-02-21 | False  |      – |      0.98 |",
    ]
    assert markdown_table(pd.DataFrame()).value == "(none)"


def test_rows_past_the_limit_are_counted_not_shown():
    text = markdown_table([{"n": i} for i in range(25)], max_rows=20).value
    assert text.count("\n|") == 21  # the rule and 20 rows after the header
    assert text.endswith("… and 5 more row(s), not shown")
    assert markdown_table([]).value == "(none)"


def test_a_table_of_first_rows_counts_the_rows_it_stands_for():
    text = markdown_table([{"n": i} for i in range(3)], max_rows=2, total=40).value
    assert text.count("\n|") == 3 and text.endswith("… and 38 more row(s), not shown")
    assert "more row" not in markdown_table([{"n": 1}], total=1).value


def test_a_polars_frame_and_mappings_read_the_same_way():
    frame = pl.DataFrame(
        {
            "f4": pl.Series([0.1, None, float("nan")], dtype=pl.Float32),
            "t": [None, "a", "b|c"],
            "i": [1, None, 3],
        }
    )
    assert markdown.table(frame, 2).splitlines() == [
        "|  f4 | t   |   i |",
        "|----:|:----|----:|",
        "| 0.1 | –   |   1 |",
        "|   – | a   |   – |",
        "",
        "… and 1 more row(s), not shown",
    ]
    # A key a row lacks is missing there, as in a DataFrame of the rows.
    assert markdown.table([{"a": 1}, {"b": 2.5}]).splitlines() == [
        "|   a |   b |",
        "|----:|----:|",
        "|   1 |   – |",
        "|   – | 2.5 |",
    ]
