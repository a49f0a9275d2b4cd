"""Tables as markdown pipe tables, for the UI's metadata and the reports written to disk.

Written here rather than through pandas' `to_markdown` (tabulate): tabulate works out a type for
every cell, which took 2 to 6 ms for a 20-row table on this project's machine, and every gate
writes one for each run, a new batch's seven gates included (0.1 s budget), and more for each
failing batch. This takes 0.3 to 0.5 ms. Every value prints as Python prints it, so nothing is
cut (tabulate's default format printed 1234567.0 as 1.23457e+06); a missing value prints as a
dash; a column of numbers only is aligned right.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl

MISSING = "–"  # what a missing value (None, NaN, NaT, pd.NA) reads as


def _is_number(value: object) -> bool:
    import numbers

    import numpy as np

    return isinstance(value, numbers.Number) and not isinstance(value, bool | np.bool_)


def _is_missing(value: object) -> bool:
    import numpy as np
    import pandas as pd

    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float | np.floating) and value != value  # NaN


def _pandas_columns(frame: pd.DataFrame) -> tuple[list[str], list[list], list[bool | None]]:
    """Names, values by column (None where missing) and which columns hold numbers by type
    (None: decided by their values)."""
    import numpy as np
    import pandas as pd

    values = frame.astype(object).to_numpy()
    missing = frame.isna().to_numpy()
    columns, numeric = [], []
    for j, dtype in enumerate(frame.dtypes):
        # numpy prints its float32 shortest (0.1, not 0.100000001); the rest as Python objects:
        # timestamps as 2026-01-01 00:00:00, nullable integers as integers.
        float32 = dtype == np.float32
        column = list(frame.iloc[:, j].to_numpy()) if float32 else values[:, j].tolist()
        columns.append([None if m else v for v, m in zip(column, missing[:, j], strict=True)])
        if pd.api.types.is_object_dtype(dtype):
            numeric.append(None)
        else:
            numeric.append(
                pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
            )
    return [str(name) for name in frame.columns], columns, numeric


def _polars_columns(frame: pl.DataFrame) -> tuple[list[str], list[list], list[bool | None]]:
    import polars as pl

    columns = [
        list(frame[name].to_numpy()) if frame.schema[name] == pl.Float32 else frame[name].to_list()
        for name in frame.columns
    ]
    numeric = [
        True if dtype.is_numeric() else None if dtype == pl.Object else False
        for dtype in frame.schema.values()
    ]
    return frame.columns, columns, numeric


def table(
    rows: pd.DataFrame | pl.DataFrame | Sequence[Mapping[str, object]],
    max_rows: int | None = None,
    *,
    total: int | None = None,
) -> str:
    """`rows` (a pandas or polars frame, or one mapping per row) as a markdown table: the
    first `max_rows` rows, and a line saying how many more were left out. `total` is the number
    of rows the table stands for when `rows` holds only its first ones (default: all of `rows`).
    An empty table reads "(none)"."""
    import pandas as pd

    if not isinstance(rows, pd.DataFrame) and not hasattr(rows, "to_pandas"):
        rows = list(rows)  # one mapping per row
    if len(rows) == 0:
        return "(none)"
    if isinstance(rows, pd.DataFrame):
        names, columns, numeric = _pandas_columns(rows if max_rows is None else rows.head(max_rows))
    elif hasattr(rows, "to_pandas"):  # a polars frame
        names, columns, numeric = _polars_columns(rows if max_rows is None else rows.head(max_rows))
    else:  # one mapping per row; a key a row lacks is a missing value there, as in pandas
        keys = list(dict.fromkeys(key for row in rows for key in row))
        shown = rows if max_rows is None else rows[:max_rows]
        names = [str(key) for key in keys]
        columns = [[row.get(key) for row in shown] for key in keys]
        numeric = [None] * len(keys)
    if not names or not columns[0]:
        return "(none)"
    cells, right = [], []
    for column, number in zip(columns, numeric, strict=True):
        texts, present = [], []
        for value in column:
            if _is_missing(value):
                texts.append(MISSING)
            else:
                present.append(value)
                texts.append(str(value).replace("|", "\\|").replace("\n", " "))
        cells.append(texts)
        right.append(bool(present) and all(map(_is_number, present)) if number is None else number)
    header = [name.replace("|", "\\|") for name in names]
    widths = [
        max(len(name), 3, *(len(c) for c in texts))
        for name, texts in zip(header, cells, strict=True)
    ]

    def line(texts: Sequence[str]) -> str:
        padded = (
            text.rjust(width) if aligned else text.ljust(width)
            for text, width, aligned in zip(texts, widths, right, strict=True)
        )
        return "| " + " | ".join(padded) + " |"

    rule = "|".join(
        ("-" * (width + 1) + ":") if aligned else (":" + "-" * (width + 1))
        for width, aligned in zip(widths, right, strict=True)
    )
    body = [line(texts) for texts in zip(*cells, strict=True)]
    text = "\n".join([line(header), f"|{rule}|", *body])
    shown_rows = len(columns[0])
    total = len(rows) if total is None else total
    if total > shown_rows:
        text += f"\n\n… and {total - shown_rows} more row(s), not shown"
    return text
