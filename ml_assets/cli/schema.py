"""Propose a data contract from a trusted window of batches: `python -m ml_assets.cli.schema infer`.

    python -m ml_assets.cli.schema infer --window 2026-01-01..2026-01-30 [--config pipeline.yaml]
        [--out PATH] [--margin 0.1]

The batches of the window (an inclusive date range, or `last:N` for the newest N batches) are
profiled into a proposed contract: numeric columns get observed ranges widened by `margin` times
the observed span and rounded outward, text columns with few values become categorical, and the
configured roles (id, timestamp, target, positive label, slices, sensitive columns) are kept
where their columns exist. The proposal is written as YAML in the shape of the `dataset:` section
of pipeline.yaml, with a header saying where it came from and how it differs from the current
contract. It is a proposal for a human reviewer: nothing here ever writes pipeline.yaml or any
other config.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from warnings import catch_warnings, simplefilter

import pandas as pd
import yaml

from ml_assets.data.batches import BatchFileError, file_sha256, list_batch_files, read_batch
from ml_assets.data.contract import DataContract
from ml_assets.data.inference import (
    HEADER_MARK,
    Window,
    comment,
    dataset_block,
    diff_contracts,
    parse_window,
    propose_contract,
    render_dataset_yaml,
    select_days,
)
from ml_assets.evaluation.policy import propose_gates
from ml_assets.settings import DEFAULT_CONFIG, Settings, SettingsError, config_path, load_settings


def _window_arg(text: str) -> Window:
    try:
        return parse_window(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _margin_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative number, got {text!r}")
    return value


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ml_assets.cli.schema",
        description="Propose a data contract from trusted batches (never applied automatically).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    infer = commands.add_parser(
        "infer",
        help="profile a window of batches into a proposed `dataset:` section",
        description=(
            "Profile the batches of a trusted window into a proposed `dataset:` section, written "
            "as YAML for review. pipeline.yaml is never modified."
        ),
    )
    infer.add_argument(
        "--window",
        type=_window_arg,
        required=True,
        help="YYYY-MM-DD..YYYY-MM-DD (inclusive), YYYY-MM-DD, or last:N (the newest N batches)",
    )
    infer.add_argument("--config", type=Path, help="default: $ML_ASSETS_CONFIG or pipeline.yaml")
    infer.add_argument(
        "--out",
        type=Path,
        help="default: <storage.data_dir>/schema_proposals/<dataset name>-<window>.yaml",
    )
    infer.add_argument(
        "--margin",
        type=_margin_arg,
        default=0.1,
        help="widen numeric ranges by this share of the observed range on each side (0.1)",
    )
    return parser


class _Refused(RuntimeError):
    """The command cannot proceed; the message says why (printed on stderr)."""


def _raw_paths(settings: Settings) -> dict[str, Any]:
    """features_dir, labels_dir, demo and behaviour_cases as written in the config (relative
    paths stay relative)."""
    try:
        raw = yaml.safe_load(settings.source.read_text()) or {}
    except (OSError, yaml.YAMLError):
        raw = {}
    dataset = raw.get("dataset") if isinstance(raw, dict) else None
    dataset = dataset if isinstance(dataset, dict) else {}
    labels = settings.dataset.labels_dir
    return {
        "features_dir": str(dataset.get("features_dir", settings.dataset.features_dir)),
        "labels_dir": (
            None
            if labels is None
            else str(dataset.get("labels_dir") or settings.dataset.labels_dir)
        ),
        "demo": bool(dataset.get("demo", settings.dataset.demo)),
        "behaviour_cases": dataset.get("behaviour_cases"),
    }


def _check_target(out: Path, settings: Settings) -> None:
    """Refuse to write over a config or over any file that is not an earlier proposal."""
    resolved = out.resolve()
    configs = {settings.source.resolve(), DEFAULT_CONFIG.resolve(), config_path()}
    if resolved in configs:
        raise _Refused(f"refusing to write the proposal over the config {resolved}")
    if resolved.exists():
        if not resolved.is_file():
            raise _Refused(f"refusing to write the proposal to {resolved}: not a file")
        with resolved.open(encoding="utf-8", errors="replace") as handle:
            first = handle.readline()
        if not first.startswith(HEADER_MARK):
            raise _Refused(
                f"refusing to overwrite {resolved}: it is not a schema proposal written by "
                "this tool; choose another --out"
            )


def _load_window(
    settings: Settings, window: Window
) -> tuple[list[str], dict[str, Path], list[str]]:
    """(days, feature files of the window, notes); refuses an empty window naming the folder."""
    folder = settings.dataset.features_dir
    available = list_batch_files(folder)
    days = select_days(list(available), window)
    if not days:
        if not folder.is_dir():
            found = "the folder does not exist"
        elif available:
            found = f"the folder has {len(available)} batches, {min(available)}..{max(available)}"
        else:
            found = "the folder has no YYYY-MM-DD.parquet or YYYY-MM-DD.csv file"
        raise _Refused(f"no batch in window {window} in {folder} ({found})")
    notes = []
    if window.last is not None and len(days) < window.last:
        notes.append(f"window {window} asked for {window.last} batches; the folder has {len(days)}")
    if window.start is not None and window.end is not None:
        span = (window.end - window.start).days + 1
        if len(days) < span:
            notes.append(f"{span - len(days)} day(s) of {window} have no batch file")
    return days, {day: available[day] for day in days}, notes


def _read_labels(settings: Settings, days: Sequence[str]) -> tuple[pd.Series | None, int, int]:
    """Target values of the window's label files: (values or None, files read, rows)."""
    dataset = settings.dataset
    if dataset.labels_dir is None:
        return None, 0, 0
    files = list_batch_files(dataset.labels_dir)
    parts = []
    for day in days:
        if day not in files:
            continue
        frame = read_batch(files[day])
        if dataset.target_column not in frame.columns:
            raise BatchFileError(f"label file {files[day]} lacks column {dataset.target_column!r}")
        parts.append(frame[dataset.target_column])
    if not parts:
        return None, 0, 0
    values = pd.concat(parts, ignore_index=True)
    return values, len(parts), len(values)


def _self_check(
    batches: Mapping[str, pd.DataFrame], contract: DataContract, include_target: bool
) -> list[tuple[str, str]]:
    """Validate each batch against the proposal; (day, reason) of those with any failing row."""
    from ml_assets.data.rules import validate_batch

    failed = []
    for day, frame in batches.items():
        with catch_warnings():  # pandera's own pandas deprecation noise
            simplefilter("ignore", FutureWarning)
            report = validate_batch(
                frame,
                contract,
                day=day,
                max_failing_row_share=0.0,
                sample_rows=1,
                include_target=include_target,
            )
        if not report.passed:
            failed.append((day, report.reason))
    return failed


def infer(
    settings: Settings,
    window: Window,
    *,
    margin: float = 0.1,
    out: Path | None = None,
    now: dt.datetime | None = None,
) -> tuple[Path, list[str]]:
    """Profile the window, write the proposal, return (its path, the diff summary lines)."""
    dataset = settings.dataset
    days, files, notes = _load_window(settings, window)
    resolved = f"{days[0]}..{days[-1]}"
    out = out or settings.storage.data_dir / "schema_proposals" / f"{dataset.name}-{resolved}.yaml"
    _check_target(out, settings)
    batches = {day: read_batch(path) for day, path in files.items()}
    labels, label_files, label_rows = _read_labels(settings, days)
    proposal = propose_contract(batches, dataset, labels=labels, margin=margin)
    contract = proposal.contract
    failed = _self_check(batches, contract, include_target=dataset.labels_dir is None)
    diff = diff_contracts(dataset, contract)
    summary = diff.lines(proposal.unrepresented)

    rows = sum(len(frame) for frame in batches.values())
    digest = hashlib.sha256()
    for day in days:
        digest.update(f"{files[day].name}:{file_sha256(files[day])}\n".encode())
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    window_text = str(window) if str(window) == resolved else f"{window} = {resolved}"
    if dataset.labels_dir is None:
        labels_line = "labels: the target column of the batches"
    else:
        labels_line = (
            f"labels: {dataset.labels_dir} ({label_files} files, {label_rows:,} rows; used only "
            "for label_values)"
        )
    checked = (
        f"every one of the {len(days)} batches of the window passes it with no failing row"
        if not failed
        else f"{len(days) - len(failed)} of {len(days)} batches of the window pass it"
    )
    header = [
        f"{HEADER_MARK[2:]} for dataset {dataset.name!r}",
        "A PROPOSAL FOR REVIEW: it is never applied automatically and no config was modified.",
        "To adopt it, review every value, then paste the `dataset:` block below over the one",
        f"in {settings.source}.",
        "",
        f"generated: {stamp}",
        f"command: python -m ml_assets.cli.schema infer --window {window} --margin {margin:g}",
        f"window: {window_text}",
        f"files: {len(days)} ({files[days[0]].name} .. {files[days[-1]].name}) in "
        f"{dataset.features_dir}",
        f"rows: {rows:,}",
        labels_line,
        f"content sha256 of the window: {digest.hexdigest()[:16]}",
        f"self-check (validate_batch against the proposal): {checked}",
        "",
        "Changes against the current contract:",
        *(f"  {line}" for line in summary),
    ]
    warnings = notes + proposal.warnings + [f"{day} fails: {reason}" for day, reason in failed]
    if warnings:
        header += ["", "Warnings:", *(f"  - {line}" for line in warnings)]
    block = dataset_block(contract, **_raw_paths(settings))
    targets = labels
    if targets is None:  # labels in the batches themselves
        parts = [f[contract.target_column] for f in batches.values() if contract.target_column in f]
        targets = pd.concat(parts, ignore_index=True) if parts else None
    rate = (
        float((targets == contract.positive_label).mean())
        if targets is not None and len(targets)
        else None
    )
    gates = propose_gates(
        rows / len(days), rate, settings.training.window_days, settings.training.split.test
    )
    gate_header = [
        "",
        "The gate keys that depend on the data's size and base rate, for a "
        f"{settings.training.window_days}-day window of about {rows / len(days):,.0f} rows a day"
        + (f" and a positive rate of {rate:.1%}" if rate is not None else "")
        + ": merge them into your `gates:` block (evaluation/policy.propose_gates says how).",
    ]
    text = (
        comment(header)
        + "\n"
        + render_dataset_yaml(block)
        + comment(gate_header)
        + yaml.safe_dump({"gates": gates}, sort_keys=False)
    )

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(out)
    return out, summary + [f"warning: {line}" for line in warnings]


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
        path, summary = infer(settings, args.window, margin=args.margin, out=args.out)
    except (_Refused, SettingsError, BatchFileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote schema proposal {path} (for review; no config was modified)")
    print("changes against the current contract:")
    for line in summary:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
