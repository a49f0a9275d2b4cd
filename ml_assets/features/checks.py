"""Window gates on the training dataset: splits are disjoint, every class is represented in
every split, and no single feature leaks the label over the whole window.

The gates, their asset and descriptions are the table features/gates.WINDOW_GATES."""

from collections.abc import Callable

import dagster as dg

from ml_assets.data.batches import cached, file_state
from ml_assets.data.gates import GateSpec
from ml_assets.features.examples import SPLIT_COLUMN
from ml_assets.features.gates import WINDOW_GATES
from ml_assets.features.integrity import labels_per_class, read_examples, split_integrity
from ml_assets.metadata import markdown_table
from ml_assets.resources import PipelineResource

# A window judge decides one window gate on the training dataset file.
WindowJudge = Callable[[PipelineResource], dg.AssetCheckResult]


def _training_examples(pipeline: PipelineResource):
    """The training dataset file (a polars frame), read once for the three window gates."""
    contract = pipeline.settings.dataset
    path = pipeline.training_dataset_path
    columns = [
        contract.id_column,
        *contract.feature_columns,
        contract.target_column,
        SPLIT_COLUMN,
    ]
    return cached(("examples", file_state(path), *columns), lambda: read_examples(path, columns))


def _window_result(passed: bool, description: str, **metadata) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={"decision": "pass" if passed else "block", **metadata},
    )


def judge_splits(pipeline: PipelineResource) -> dg.AssetCheckResult:
    """No id in two splits. Identical feature rows across splits are legitimate in data of a
    few coarse features, so they are reported, not blocked; the rows of a re-delivered batch
    are kept out of the window by the raw_batches_not_redelivered gate."""
    integrity = split_integrity(_training_examples(pipeline), pipeline.settings.dataset)
    shared, dupes = integrity.ids_in_several_splits, integrity.duplicate_rows_across_splits
    return _window_result(
        not shared,
        f"{len(shared)} id(s) in several splits; {dupes} row(s) repeat a feature row of "
        "another split (reported, not blocking)",
        value=len(shared),
        threshold=0,
        ids_in_several_splits=len(shared),
        ids_sample=", ".join(shared[:10])
        + (f" … and {len(shared) - 10} more" if len(shared) > 10 else "")
        or "none",
        duplicate_rows_across_splits=dupes,
        duplicate_rows_sample=markdown_table(integrity.duplicate_sample),
    )


def judge_labels_per_class(pipeline: PipelineResource) -> dg.AssetCheckResult:
    """Label counts per split and class against the floor."""
    settings = pipeline.settings
    counts = labels_per_class(_training_examples(pipeline), settings.dataset, SPLIT_COLUMN)
    floor = settings.validation.min_labels_per_class
    lowest = min((n for per in counts.values() for n in per.values()), default=0)
    short = {
        f"{split}/{label}": n
        for split, per in counts.items()
        for label, n in per.items()
        if n < floor
    }
    return _window_result(
        not short and len(counts) == 3,
        f"fewest labels of a class in a split: {lowest} (floor {floor})",
        value=lowest,
        threshold=floor,
        counts=dg.MetadataValue.json(counts),
        short=dg.MetadataValue.json(short),
    )


def judge_window_leakage(pipeline: PipelineResource) -> dg.AssetCheckResult:
    """Single-feature AUCs over the window (a seeded sample), by the batch gate's rule."""
    import polars as pl

    from ml_assets.data.rules import leakage_verdict, single_feature_aucs

    settings = pipeline.settings
    bound = settings.validation.max_single_feature_auc
    contract = settings.dataset
    # Only the features and the label are scored: ids are not carried into the sample.
    examples = _training_examples(pipeline).select(
        *contract.feature_columns, contract.target_column
    )
    if len(examples) > settings.validation.leakage_sample_rows:
        examples = examples.sample(n=settings.validation.leakage_sample_rows, seed=0)
    scored = examples.with_columns(
        pl.lit(0).alias("__window"),
        (pl.col(contract.target_column) == contract.positive_label)
        .fill_null(False)
        .alias("__positive"),
    )
    aucs, names = single_feature_aucs(scored, contract, "__window", "__positive")
    row = aucs.row(0, named=True) if len(aucs) else {"P": 0, "N": 0}
    values = {n: row[n] for n in names if row.get(n) is not None}
    passed, top, table, reason = leakage_verdict(values, int(row["P"]), int(row["N"]), bound)
    return _window_result(
        passed,
        reason,
        value=top,
        threshold=bound,
        single_feature_aucs=markdown_table(table),
    )


def window_gate(spec: GateSpec, judge: WindowJudge) -> dg.AssetChecksDefinition:
    """A blocking check on `spec.asset`, named and described by `spec`, decided by `judge`."""

    @dg.asset_check(asset=spec.asset, name=spec.name, blocking=True, description=spec.description)
    def _gate(pipeline: PipelineResource) -> dg.AssetCheckResult:
        return judge(pipeline)

    return _gate


# Every gate of the table has exactly one judge (a test holds both sides to it).
WINDOW_JUDGES: dict[str, WindowJudge] = {
    "training_dataset_splits_are_disjoint": judge_splits,
    "training_dataset_has_enough_labels_per_class": judge_labels_per_class,
    "training_dataset_has_no_leaking_feature": judge_window_leakage,
}
WINDOW_CHECKS = [window_gate(gate, WINDOW_JUDGES[gate.name]) for gate in WINDOW_GATES]
