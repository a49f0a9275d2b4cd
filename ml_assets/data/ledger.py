"""The gate ledger and the quarantine: what each data gate decided for each batch file.

Blocking checks only block inside one Dagster run. Across runs, training reads this ledger and
takes a batch only when every data gate passed on the exact file content present now (fail
closed: no verdict, a failed verdict or a changed file all exclude the batch). A failed batch is
copied to the quarantine with its failure cases and a report; nothing is deleted.

On disk: one file per gate, `<ledger>/<check>.json`, holding the latest verdict of every batch
day, rewritten atomically (under a lock) once per gate run. Creating a file is the expensive
step on a journalling file system (about 0.3 ms, far more when the disk is busy), and a file per
verdict made a gate run over 50 batches create 50. The older layout, a file per verdict
(`<ledger>/<check>/<day>.json`), is still read, and folded into the gate's file the next time
that gate records a verdict.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ml_assets import markdown
from ml_assets.data.batches import BatchFiles, data_version
from ml_assets.data.validation import GateReport
from ml_assets.locking import exclusive

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl

    from ml_assets.data.redelivery import Sketch


@dataclass(frozen=True)
class Verdict:
    check: str
    day: str
    passed: bool
    severity: str
    fingerprint: str
    policy: str
    reason: str
    run_id: str
    evaluated_at: str

    @property
    def blocks(self) -> bool:
        """A failed ERROR verdict keeps the batch out of training; a failed WARN only flags it."""
        return not self.passed and self.severity == "ERROR"


def verdict_path(ledger_dir: Path, check: str, day: str) -> Path:
    """Where the older layout kept one verdict (read, and folded into `ledger_path`'s file)."""
    return ledger_dir / check / f"{day}.json"


def ledger_path(ledger_dir: Path, check: str) -> Path:
    """The file of `check`'s latest verdict per batch day."""
    return ledger_dir / f"{check}.json"


def make_verdict(
    check: str,
    report: GateReport,
    batch: BatchFiles,
    *,
    run_id: str,
    severity: str,
    policy: str,
) -> Verdict:
    """The verdict of `check` on `batch`, stamped now."""
    return Verdict(
        check=check,
        day=batch.day,
        passed=report.passed,
        severity=severity,
        fingerprint=batch.fingerprint,
        policy=policy,
        reason=report.reason,
        run_id=run_id,
        evaluated_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )


def record_verdict(
    ledger_dir: Path,
    check: str,
    report: GateReport,
    batch: BatchFiles,
    *,
    run_id: str,
    severity: str,
    policy: str,
) -> Verdict:
    """Write the latest verdict of `check` on `batch` (the history lives in Dagster)."""
    verdict = make_verdict(check, report, batch, run_id=run_id, severity=severity, policy=policy)
    record_verdicts(ledger_dir, check, [verdict])
    return verdict


def record_verdicts(ledger_dir: Path, check: str, verdicts: list[Verdict]) -> None:
    """Write the latest verdicts of `check` (one per day) in one atomic rewrite of its file.

    Runs of other partitions may record verdicts of the same gate at the same time: the
    read-update-replace is done under an exclusive lock on a sibling lock file, so no run's
    verdicts overwrite another's.
    """
    if not verdicts:
        return
    ledger_dir.mkdir(parents=True, exist_ok=True)
    path = ledger_path(ledger_dir, check)
    with exclusive(ledger_dir / f".{check}.lock"):
        legacy = _legacy_files(ledger_dir, check)
        latest = {**read_verdicts(ledger_dir, check, legacy), **{v.day: v for v in verdicts}}
        latest = dict(sorted(latest.items()))
        # A fresh token heads the file: readers tell a rewritten file by it (see read_verdicts).
        # One verdict per line, each by json's C encoder (indent= takes the pure-Python one,
        # which made a rewrite cost more than the verdicts it adds).
        token = uuid.uuid4().hex
        # A verdict kept from the last rewrite keeps its line: only the new ones are encoded.
        kept = _LINES.get(str(path), {})
        lines_of = {
            day: kept[day][1] if day in kept and kept[day][0] is v else _line(day, v)
            for day, v in latest.items()
        }
        lines = ",\n".join(lines_of.values())
        body = f'{{"written": "{token}", "verdicts": {{\n{lines}\n}}}}\n'
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(body)
        tmp.replace(path)
        _FILES[str(path)] = (token, latest)
        _LINES[str(path)] = {day: (latest[day], line) for day, line in lines_of.items()}
        # Their verdicts are in the gate's file now (the newer ones win): the migration is done.
        for old in legacy:
            old.unlink()
        if legacy and not any((ledger_dir / check).iterdir()):  # anything else stays
            (ledger_dir / check).rmdir()


def _legacy_files(ledger_dir: Path, check: str) -> list[Path]:
    folder = ledger_dir / check
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


# Each gate file's verdicts, parsed once per process and rewrite: path -> (token, verdicts).
_FILES: dict[str, tuple[str, dict[str, Verdict]]] = {}
# The line each verdict of a gate file was written as, by this process: path -> day ->
# (verdict, line). A line is reused only for the very verdict object it encodes.
_LINES: dict[str, dict[str, tuple[Verdict, str]]] = {}


def _line(day: str, verdict: Verdict) -> str:
    return f"{json.dumps(day)}: {json.dumps(verdict.__dict__)}"


_TOKEN_HEAD = 64  # bytes: '{"written": "<32 hex digits>"' (46) and some


def read_verdicts(
    ledger_dir: Path, check: str, legacy: list[Path] | None = None
) -> Mapping[str, Verdict]:
    """Every latest verdict of `check` by day: its file's, over any of the older layout's
    (a day in both was judged again after the older file: the gate file's verdict is newer)."""
    found = {}
    for old in _legacy_files(ledger_dir, check) if legacy is None else legacy:
        verdict = Verdict(**json.loads(old.read_text()))
        found[verdict.day] = verdict
    path = ledger_path(ledger_dir, check)
    try:
        with path.open("rb") as handle:
            head = handle.read(_TOKEN_HEAD)
            known = _FILES.get(str(path))
            # The same token, the same file: each rewrite heads its file with a new one.
            if known is not None and known[0].encode() in head:
                current = known[1]
            else:
                data = json.loads(head + handle.read())
                current = {day: Verdict(**v) for day, v in data["verdicts"].items()}
                _FILES[str(path)] = (data["written"], current)
    except FileNotFoundError:
        return found
    # Shared with later reads (read only): a lookup per batch must not copy every verdict.
    return found | current if found else current


def save_sketches(sketches_dir: Path, sketches: Mapping[str, Sketch]) -> None:
    """Keep each judged batch's row sketch, for the re-delivery rule of later runs."""
    sketches_dir.mkdir(parents=True, exist_ok=True)
    for day, sketch in sketches.items():
        path = sketches_dir / f"{day}.json"
        text = json.dumps(sketch.as_json())
        # A batch judged again (same content) has the same sketch: creating a file costs far
        # more than reading one, so an identical kept sketch is left as it is.
        if path.exists() and path.read_text() == text:
            continue
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)


def load_sketches(sketches_dir: Path, days: Iterable[str]) -> tuple[Sketch, ...]:
    """The kept sketches of `days` (the batches whose files are still delivered)."""
    from ml_assets.data.redelivery import Sketch

    if not sketches_dir.is_dir():
        return ()
    found = []
    for day in days:
        try:
            text = (sketches_dir / f"{day}.json").read_text()
        except FileNotFoundError:  # a batch not judged yet has no sketch
            continue
        found.append(Sketch.from_json(json.loads(text)))
    return tuple(found)


def read_verdict(ledger_dir: Path, check: str, day: str) -> Verdict | None:
    return read_verdicts(ledger_dir, check).get(day)


@dataclass(frozen=True)
class BatchStatus:
    """Whether a batch may be trained on, why not, and which WARN checks flagged it."""

    day: str
    eligible: bool
    reason: str
    warnings: tuple[str, ...] = ()


def batch_status(ledger_dir: Path, batch: BatchFiles, checks: tuple[str, ...]) -> BatchStatus:
    """Eligible when every gate judged the file content present now and no ERROR gate failed."""
    warnings = []
    for check in checks:
        verdict = read_verdict(ledger_dir, check, batch.day)
        if verdict is None:
            return BatchStatus(batch.day, False, f"not validated by {check}")
        if verdict.fingerprint != batch.fingerprint:
            return BatchStatus(batch.day, False, f"file changed since {check} ran")
        if verdict.blocks:
            return BatchStatus(batch.day, False, f"failed {check}: {verdict.reason}")
        if not verdict.passed:
            warnings.append(f"{check}: {verdict.reason}")
    return BatchStatus(batch.day, True, "passed every blocking data gate", tuple(warnings))


def needs_validation(
    ledger_dir: Path, batch: BatchFiles, checks: tuple[str, ...], policy: str
) -> bool:
    """True unless this file content, under this policy, already failed an ERROR gate or has a
    verdict from every gate. A blocking failure skips the gates after it, so it settles the batch;
    a changed file or a changed contract or policy is judged again.
    """
    current = [read_verdict(ledger_dir, check, batch.day) for check in checks]
    current = [
        v for v in current if v and v.fingerprint == batch.fingerprint and v.policy == policy
    ]
    if any(v.blocks for v in current):
        return False
    return len(current) < len(checks)


# What an object column may hold for polars (through arrow) to type it as one column.
_ONE_TYPE = {"string", "empty", "integer", "floating", "boolean", "datetime", "date"}


def write_csv(frame: pd.DataFrame | pl.DataFrame, path: Path) -> None:
    """`frame` as CSV, without its index, by polars' writer: the 26,000 schema failure cases
    of a corrupted 20,000-row batch in 4 ms, where pandas' `to_csv` takes 21 ms (10 ms against
    23 ms with their labels as plain text rather than categories), the same bytes. A polars
    frame (the schema gate's cases) is written as it is.

    Missing values are empty fields, an empty text is `""`, timestamps are ISO 8601 and
    booleans `true`/`false`. A column polars cannot hold as one type (pandera's failure cases
    of a mistyped column mix numbers and text) is written as its values' text.
    """
    import pandas as pd
    import polars as pl
    import pyarrow as pa

    if isinstance(frame, pl.DataFrame):
        frame.write_csv(path)
        return
    objects = [name for name, column in frame.items() if column.dtype == object]
    mixed = [
        name
        for name in objects
        if pd.api.types.infer_dtype(frame[name], skipna=True) not in _ONE_TYPE
    ]
    try:
        # Through arrow's own conversion: a third of polars.from_pandas' time on a few-row frame.
        table = pa.Table.from_pandas(_as_text(frame, mixed), preserve_index=False)
    except OverflowError:  # integers beyond 64 bits: every object column as text
        table = pa.Table.from_pandas(_as_text(frame, objects), preserve_index=False)
    pl.from_arrow(table).write_csv(path)


def _as_text(frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """`frame` with the columns `names` as their values' text (a missing value stays missing)."""
    if not names:
        return frame
    frame = frame.copy(deep=False)
    for name in names:
        frame[name] = frame[name].astype(str).where(frame[name].notna(), None)
    return frame


def quarantine_batch(
    quarantine_dir: Path, check: str, batch: BatchFiles, report: GateReport, run_id: str
) -> Path:
    """Copy a failed batch, its failure cases and a short report to quarantine/<day>/<hash>/."""
    target = quarantine_dir / batch.day / batch.features_sha256[:12]
    target.mkdir(parents=True, exist_ok=True)
    # The folder is named by the file's content: a whole copy already there (another gate of the
    # run quarantined the batch first) is this file. The labels are copied each time: a day's
    # labels may be delivered again while its batch file stays the same.
    kept = target / batch.features.name
    if not (kept.exists() and kept.stat().st_size == batch.features.stat().st_size):
        shutil.copy2(batch.features, kept)
    if batch.labels is not None:
        (target / "labels").mkdir(exist_ok=True)
        shutil.copy2(batch.labels, target / "labels" / batch.labels.name)
    write_csv(report.failure_cases, target / f"{check}_failure_cases.csv")
    lines = [
        f"# Quarantined batch {batch.day}",
        "",
        f"- source file: `{batch.features}` (sha256 `{batch.features_sha256}`)",
        f"- failed gate: `{check}`: {report.reason}",
        f"- value {report.value:.4f}, threshold {report.threshold}",
        f"- rows {report.rows}, failing {report.failing_rows}",
        f"- Dagster run: `{run_id}`",
        "",
        "The batch is excluded from every training window until a corrected file passes the",
        "gates (re-materialise its partition). This folder is kept as evidence.",
        "",
        "## Sample of failure cases",
        "",
        markdown.table(report.failure_cases, 20),
    ]
    (target / f"{check}_report.md").write_text("\n".join(lines) + "\n")
    return target


@dataclass(frozen=True)
class TrainingWindow:
    """The batches a training run takes, those it leaves out and why, and their data version."""

    days: list[str]
    excluded: dict[str, str]
    fingerprints: dict[str, str]
    warned: dict[str, list[str]]

    @property
    def data_version(self) -> str:
        return data_version(self.fingerprints)


def plan_window(
    ledger_dir: Path, batches: dict[str, BatchFiles], window_days: int, checks: tuple[str, ...]
) -> TrainingWindow:
    """The newest `window_days` batches that passed every blocking data gate on their content."""
    statuses = [batch_status(ledger_dir, b, checks) for b in batches.values()]
    eligible = sorted(s.day for s in statuses if s.eligible)
    days = eligible[-window_days:]
    oldest = days[0] if days else None
    excluded = {
        s.day: s.reason for s in statuses if not s.eligible and (oldest is None or s.day >= oldest)
    }
    return TrainingWindow(
        days=days,
        excluded=excluded,
        fingerprints={d: batches[d].fingerprint for d in days},
        warned={
            s.day: list(s.warnings) for s in statuses if s.eligible and s.warnings and s.day in days
        },
    )


def contiguous_ranges(ordered_keys: list[str], wanted: set[str]) -> list[tuple[str, str]]:
    """Group `wanted` keys into runs of neighbours in `ordered_keys`: (first, last) per run.

    A single Dagster run can cover a partition range; this keeps each range free of keys that
    need no work.
    """
    ranges: list[tuple[str, str]] = []
    start = prev = None
    for key in ordered_keys:
        if key in wanted:
            start = start or key
            prev = key
        elif start is not None:
            ranges.append((start, prev))
            start = prev = None
    if start is not None:
        ranges.append((start, prev))
    return ranges
