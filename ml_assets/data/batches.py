"""Daily batch files: discovery, reading and fingerprints.

A batch is one file per day named `YYYY-MM-DD.parquet` or `YYYY-MM-DD.csv`. Labels are either a
column of the batch or files of the same names in a labels folder, keyed by the id column.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ml_assets.data.contract import DataContract

if TYPE_CHECKING:
    import pandas as pd

# The column that records which batch (day) a labelled example came from.
BATCH_COLUMN = "batch_day"
BATCH_FILE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.(parquet|csv)$")


class BatchFileError(ValueError):
    """A batch or label file is missing, ambiguous or unreadable; the message names the file."""


def batch_day(path: Path | str) -> str | None:
    """The date a file (a path, or a file name) is the batch of (YYYY-MM-DD.parquet or .csv),
    else None."""
    match = BATCH_FILE.match(path if isinstance(path, str) else path.name)
    if not match:
        return None
    try:
        dt.date.fromisoformat(match.group(1))
    except ValueError:
        return None
    return match.group(1)


def list_batch_files(folder: Path) -> dict[str, Path]:
    """Map each batch date (YYYY-MM-DD) to its file in `folder`, sorted by date.

    Files that do not follow the naming contract are left out (`unrecognised_files` lists
    them); two files for one date are an error.
    """
    if not folder.is_dir():
        return {}
    found: dict[str, Path] = {}
    # scandir: the directory listing tells a file from a folder without a stat per entry
    # (every new batch's gates list the folder, whose history grows by a file a day).
    with os.scandir(folder) as entries:
        for entry in entries:
            day = batch_day(entry.name)
            if day is None or not entry.is_file():
                continue
            if day in found:
                raise BatchFileError(
                    f"two files for batch {day} in {folder}: {found[day].name}, {entry.name}"
                )
            found[day] = Path(folder) / entry.name
    return dict(sorted(found.items()))


def unrecognised_files(folder: Path | None) -> list[Path]:
    """Files in `folder` that no batch is read from: their names are not YYYY-MM-DD.parquet or
    .csv (hidden files such as .gitkeep aside), sorted."""
    if folder is None or not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and batch_day(p) is None
    )


def read_batch(path: Path) -> pd.DataFrame:
    """Read one batch file as delivered (no coercion: validation judges the raw types)."""
    import pandas as pd

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


def _batch_files(day: str, features: Path, labels: Path | None) -> BatchFiles:
    return BatchFiles(
        day=day,
        features=features,
        labels=labels,
        features_sha256=file_sha256(features),
        labels_sha256=file_sha256(labels) if labels else None,
    )


def locate_batches(features_dir: Path, labels_dir: Path | None) -> dict[str, BatchFiles]:
    """Every batch date present, with its feature file, its label file (if any) and hashes."""
    labels = list_batch_files(labels_dir) if labels_dir is not None else {}
    return {
        day: _batch_files(day, path, labels.get(day))
        for day, path in list_batch_files(features_dir).items()
    }


def locate_batch(features_dir: Path, labels_dir: Path | None, day: str) -> BatchFiles:
    """One batch date's files and hashes; only that batch's files are read (a step that
    handles one batch costs the same whatever the history holds)."""
    features = list_batch_files(features_dir).get(day)
    if features is None:
        raise BatchFileError(f"no batch file for {day} in {features_dir}")
    labels = list_batch_files(labels_dir).get(day) if labels_dir is not None else None
    return _batch_files(day, features, labels)


def read_labels(
    batch: BatchFiles, id_column: str, target_column: str, separate: bool
) -> pd.DataFrame:
    """The (id, target) pairs of a batch: from its label file, or from the batch itself."""
    import pandas as pd

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
