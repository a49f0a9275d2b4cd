"""Tables as markdown pipe tables, for the UI's metadata and the reports written to disk.

Written here rather than through pandas' `to_markdown` (tabulate): tabulate works out a type for
every cell, which took 2 to 5 ms for a 20-row table on this project's machine, and every gate
writes one for each run, a new batch's seven gates included (0.1 s budget), and more for each
failing batch. This takes about 0.1 ms. Every value prints as Python prints it, so nothing is
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


def _column_cells(column: pd.Series) -> tuple[list[str], bool]:
    """The column's cells as text, and whether every value present is a number."""
    import numpy as np

    missing = column.isna().to_numpy()
    if column.dtype == np.float32:  # numpy prints its own float32 shortest: 0.1, not 0.100000001
        values = list(column.to_numpy())
    else:  # Python objects: timestamps as 2026-01-01 00:00:00, nullable integers as integers
        values = column.astype(object).tolist()
    cells, numbers = [], True
    for value, absent in zip(values, missing, strict=True):
        if absent:
            cells.append(MISSING)
            continue
        numbers = numbers and _is_number(value)
        cells.append(str(value).replace("|", "\\|").replace("\n", " "))
    return cells, numbers and not missing.all()


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

    if hasattr(rows, "to_pandas"):  # a polars frame: only the rows shown are converted
        total = len(rows) if total is None else total
        rows = rows.head(max_rows).to_pandas() if max_rows is not None else rows.to_pandas()
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if frame.empty:
        return "(none)"
    shown = frame if max_rows is None else frame.head(max_rows)
    header = [str(name).replace("|", "\\|") for name in shown.columns]
    columns = [_column_cells(shown.iloc[:, j]) for j in range(shown.shape[1])]
    widths = [
        max(len(name), 3, *(len(c) for c in cells))
        for name, (cells, _) in zip(header, columns, strict=True)
    ]

    def line(cells: Sequence[str]) -> str:
        padded = (
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, (_, right) in zip(cells, widths, columns, strict=True)
        )
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join(
            ("-" * (width + 1) + ":") if right else (":" + "-" * (width + 1))
            for width, (_, right) in zip(widths, columns, strict=True)
        )
        + "|"
    )
    body = [line(row) for row in zip(*(cells for cells, _ in columns), strict=True)]
    text = "\n".join([line(header), rule, *body])
    total = len(frame) if total is None else total
    if total > len(shown):
        text += f"\n\n… and {total - len(shown)} more row(s), not shown"
    return text
