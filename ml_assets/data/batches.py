"""Daily batch files: discovery, reading and fingerprints.

A batch is one file per day named `YYYY-MM-DD.parquet` or `YYYY-MM-DD.csv`. Labels are either a
column of the batch or files of the same names in a labels folder, keyed by the id column.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ml_assets.data.contract import DataContract

# The column that records which batch (day) a labelled example came from.
BATCH_COLUMN = "batch_day"
BATCH_FILE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.(parquet|csv)$")


class BatchFileError(ValueError):
    """A batch or label file is missing, ambiguous or unreadable; the message names the file."""


def list_batch_files(folder: Path) -> dict[str, Path]:
    """Map each batch date (YYYY-MM-DD) to its file in `folder`, sorted by date.

    Files that do not follow the naming contract are ignored; two files for one date are an error.
    """
    if not folder.is_dir():
        return {}
    found: dict[str, Path] = {}
    for path in folder.iterdir():
        match = BATCH_FILE.match(path.name)
        if not match or not path.is_file():
            continue
        day = match.group(1)
        try:
            dt.date.fromisoformat(day)
        except ValueError:
            continue
        if day in found:
            raise BatchFileError(
                f"two files for batch {day} in {folder}: {found[day].name}, {path.name}"
            )
        found[day] = path
    return dict(sorted(found.items()))


def read_batch(path: Path) -> pd.DataFrame:
    """Read one batch file as delivered (no coercion: validation judges the raw types)."""
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        if path.suffix == ".csv":
            return pd.read_csv(path)
    except FileNotFoundError:
        raise BatchFileError(f"batch file {path} does not exist") from None
    except Exception as error:  # pyarrow and the csv parser raise many types; name the file
        raise BatchFileError(f"cannot read batch file {path}: {error}") from error
    raise BatchFileError(f"batch file {path} is neither .parquet nor .csv")


def file_sha256(path: Path) -> str:
    """Content hash of a file: the data version of one batch."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class BatchFiles:
    """The files of one batch date and their content hashes."""

    day: str
    features: Path
    labels: Path | None
    features_sha256: str
    labels_sha256: str | None

    @property
    def fingerprint(self) -> str:
        return f"{self.features_sha256}:{self.labels_sha256 or '-'}"


def locate_batches(features_dir: Path, labels_dir: Path | None) -> dict[str, BatchFiles]:
    """Every batch date present, with its feature file, its label file (if any) and hashes."""
    labels = list_batch_files(labels_dir) if labels_dir is not None else {}
    located = {}
    for day, path in list_batch_files(features_dir).items():
        label_path = labels.get(day)
        located[day] = BatchFiles(
            day=day,
            features=path,
            labels=label_path,
            features_sha256=file_sha256(path),
            labels_sha256=file_sha256(label_path) if label_path else None,
        )
    return located


def read_labels(
    batch: BatchFiles, id_column: str, target_column: str, separate: bool
) -> pd.DataFrame:
    """The (id, target) pairs of a batch: from its label file, or from the batch itself."""
    if separate:
        if batch.labels is None:
            return pd.DataFrame(
                {id_column: pd.Series(dtype=str), target_column: pd.Series(dtype="int64")}
            )
        source = read_batch(batch.labels)
        where = batch.labels
    else:
        source = read_batch(batch.features)
        where = batch.features
    missing = [c for c in (id_column, target_column) if c not in source.columns]
    if missing:
        raise BatchFileError(f"label source {where} lacks column(s) {missing}")
    return source[[id_column, target_column]]


@dataclass(frozen=True, eq=False)
class BatchWindow:
    """Batches of one schema stacked in day order, so a gate judges them all in one pass.

    Day `days[i]` holds the rows `bounds[i]:bounds[i + 1]` of `frame` (which has a fresh
    RangeIndex); `index` holds each row's index label in its own batch, so evidence names rows
    as the batch alone would. A window of one day is the one-batch case of the same code.
    Frames are shared between gates: treat them as read-only.
    """

    days: tuple[str, ...]
    frame: pd.DataFrame
    bounds: np.ndarray
    index: pd.Index

    @classmethod
    def single(cls, day: str, frame: pd.DataFrame) -> BatchWindow:
        return cls(
            (day,),
            frame.set_axis(pd.RangeIndex(len(frame)), axis=0, copy=False),
            np.array([0, len(frame)]),
            frame.index,
        )

    def day_of(self, positions: np.ndarray) -> np.ndarray:
        """The position in `days` of the day each row position belongs to."""
        return np.searchsorted(self.bounds, positions, side="right") - 1

    def rows(self, positions: np.ndarray) -> pd.DataFrame:
        """Rows at `positions`, labelled with their index in their own batch."""
        positions = np.asarray(positions, dtype=np.int64)
        return self.frame.take(positions).set_axis(self.index.take(positions), axis=0)

    def part(self, i: int) -> pd.DataFrame:
        """Day `i` as delivered."""
        return self.rows(np.arange(self.bounds[i], self.bounds[i + 1]))

    def empty(self) -> pd.DataFrame:
        return self.frame.iloc[:0]


def _signature(frame: pd.DataFrame) -> tuple:
    return tuple((str(name), str(dtype)) for name, dtype in frame.dtypes.items())


def stack_batches(frames: Mapping[str, pd.DataFrame]) -> list[BatchWindow]:
    """Group batches of identical columns and dtypes (in day order) into windows."""
    groups: dict[tuple, list[str]] = {}
    for day, frame in frames.items():
        groups.setdefault(_signature(frame), []).append(day)
    windows = []
    for days in groups.values():
        if len(days) == 1:
            windows.append(BatchWindow.single(days[0], frames[days[0]]))
            continue
        parts = [frames[d] for d in days]
        lengths = np.array([len(p) for p in parts])
        windows.append(
            BatchWindow(
                tuple(days),
                pd.concat(parts, ignore_index=True),
                np.concatenate([[0], np.cumsum(lengths)]),
                parts[0].index.append([p.index for p in parts[1:]]),
            )
        )
    return windows


# The batches of the current run, shared by the gates that judge it (they run in one process
# one after another). Keyed by file contents, so a changed file is read again.
_CACHE: OrderedDict[tuple, object] = OrderedDict()
_CACHE_ENTRIES = 8


def cached(key: tuple, build: Callable[[], object]) -> object:
    """`build()`, remembered under `key` (a few most recent entries)."""
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    value = build()
    _CACHE[key] = value
    while len(_CACHE) > _CACHE_ENTRIES:
        _CACHE.popitem(last=False)
    return value


def clear_cache() -> None:
    _CACHE.clear()


def file_state(path: Path) -> tuple:
    """A file's identity for the per-run cache: path, modification time and size."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return (str(path), None)
    return (str(path), stat.st_mtime_ns, stat.st_size)


def contents_key(batches: Mapping[str, BatchFiles]) -> tuple:
    """What the batches hold, as a cache key: each day, its file and its content hashes."""
    return tuple((b.day, str(b.features), b.fingerprint) for b in batches.values())


def batch_windows(
    batches: Mapping[str, BatchFiles],
    read: Callable[[BatchFiles], pd.DataFrame],
    kind: tuple,
) -> list[BatchWindow]:
    """The batches read by `read` and stacked into windows, cached per content and `kind`.

    `kind` names what `read` returns (e.g. ("features", "full")): equal kinds must read equally.
    """
    key = ("windows", kind, contents_key(batches))
    return cached(key, lambda: stack_batches(read_batches(batches, read, kind)))


def read_batches(
    batches: Mapping[str, BatchFiles],
    read: Callable[[BatchFiles], pd.DataFrame] | None = None,
    kind: tuple = ("features", "full"),
) -> dict[str, pd.DataFrame]:
    """Each batch read by `read` (default: its feature file), cached per content and `kind`.

    The gates of one run share these frames: treat them as read-only.
    """
    read = read or (lambda batch: read_batch(batch.features))
    key = ("frames", kind, contents_key(batches))
    return cached(key, lambda: {day: read(batch) for day, batch in batches.items()})


def data_version(fingerprints: Mapping[str, str]) -> str:
    """A short hash naming the exact batch files (dates and contents) a dataset is built from."""
    payload = json.dumps(sorted(fingerprints.items())).encode()
    return hashlib.sha256(payload).hexdigest()[:16]


def join_labels(
    batch: pd.DataFrame, labels: pd.DataFrame, contract: DataContract, day: str
) -> pd.DataFrame:
    """Batch rows with their label (inner join on the id); the batch date is kept as a column."""
    rows = batch.drop(columns=[contract.target_column], errors="ignore")
    joined = rows.merge(labels, on=contract.id_column, how="inner", validate="one_to_one")
    joined[BATCH_COLUMN] = day
    return joined
