"""markdown_table: the check metadata's tables, as a person reads them in the UI."""

import numpy as np
import pandas as pd
import pytest

from ml_assets.metadata import markdown_table

FRAMES = {
    "ints": pd.DataFrame({"a": [1, 2, 1234567], "b": [10**12, 5, 6]}),
    "floats": pd.DataFrame({"a": [0.1, 1e-9, 1234567.0], "b": [1.0, 2.0, 3.5]}),
    "mixed": pd.DataFrame(
        {"d": ["x", "y", "z"], "p": [True, False, True], "n": [1, 2, 3], "v": [0.5, 0.25, 1e20]}
    ),
    "numpy dtypes": pd.DataFrame(
        {
            "i8": np.array([1, 2, 3], dtype="int8"),
            "u": np.array([1, 2, 3], dtype="uint64"),
            "f4": np.array([0.1, 0.2, 0.3], dtype="float32"),
        }
    ),
    "datetimes only": pd.DataFrame({"t": pd.to_datetime(["2026-01-01", "2026-01-02"])}),
    "datetime and NaT": pd.DataFrame({"t": pd.to_datetime(["2026-01-01", None])}),
    "booleans only": pd.DataFrame({"a": [True, False]}),
    "nullable ints": pd.DataFrame({"i": pd.array([1, None, 3], dtype="Int64")}),
    "categories": pd.DataFrame({"c": pd.Categorical(["a", "b", "a"]), "n": [1.5, 2, 3]}),
    "float and NaN": pd.DataFrame({"a": [1.0, np.nan]}),
    "text and None": pd.DataFrame({"a": ["x", None]}),
}


@pytest.mark.parametrize("name", FRAMES)
def test_a_table_reads_as_tabulate_prints_its_python_values(name):
    frame = FRAMES[name]
    # The known answer: every value as a Python object, a missing one as a dash.
    expected = frame.astype(object).where(frame.notna(), "–").to_markdown(index=False)
    assert markdown_table(frame).value == expected


def test_a_missing_value_reads_as_a_dash_and_booleans_and_dates_as_themselves():
    text = markdown_table(
        [
            {"day": "2026-02-20", "passed": True, "value": 0.8198, "threshold": None},
            {"day": "2026-02-21", "passed": False, "value": float("nan"), "threshold": 0.98},
        ]
    ).value
    assert text.splitlines() == [
        "| day        | passed   | value   | threshold   |",
        "|:-----------|:---------|:--------|:------------|",
        "| 2026-02-20 | True     | 0.8198  | –           |",
        "| 2026-02-21 | False    | –       | 0.98        |",
    ]
    dates = markdown_table(pd.DataFrame({"t": pd.to_datetime(["2026-01-01"])})).value
    assert "2026-01-01 00:00:00" in dates


def test_rows_past_the_limit_are_counted_not_shown():
    text = markdown_table([{"n": i} for i in range(25)], max_rows=20).value
    assert text.count("\n|") == 21  # the rule and 20 rows after the header
    assert text.endswith("… and 5 more row(s), not shown")
    assert markdown_table([]).value == "(none)"


def test_a_table_of_first_rows_counts_the_rows_it_stands_for():
    text = markdown_table([{"n": i} for i in range(3)], max_rows=2, total=40).value
    assert text.count("\n|") == 3 and text.endswith("… and 38 more row(s), not shown")
    assert "more row" not in markdown_table([{"n": 1}], total=1).value
