"""Features: labelled examples over the training window, split, and the drift reference."""

import json

import dagster as dg

from ml_assets.data.assets import raw_batches, raw_labels
from ml_assets.data.batches import join_labels, locate_batches, read_labels
from ml_assets.data.gates import BATCH_GATES
from ml_assets.data.ledger import plan_window
from ml_assets.features.examples import SPLIT_COLUMN, assign_split
from ml_assets.metadata import observability
from ml_assets.resources import PipelineResource


@dg.asset(
    group_name="features",
    deps=[raw_batches, raw_labels],
    code_version="1",
    kinds={"parquet", "pandas"},
    tags={"stage": "features"},
)
def training_dataset(
    context: dg.AssetExecutionContext, pipeline: PipelineResource
) -> dg.MaterializeResult:
    """Labelled applications from the newest batches that passed every data gate, split by id."""
    import time

    import pandas as pd

    started = time.perf_counter()

    from ml_assets.data.reading import read_as_judged

    settings = pipeline.settings
    dataset, training = settings.dataset, settings.training
    batches = locate_batches(dataset.features_dir, dataset.labels_dir)
    window = plan_window(pipeline.ledger_dir, batches, training.window_days, BATCH_GATES)
    if len(window.days) < training.min_window_days:
        raise dg.Failure(
            f"only {len(window.days)} batch(es) passed the data gates; training.min_window_days "
            f"is {training.min_window_days}",
            metadata={"excluded": dg.MetadataValue.json(window.excluded)},
        )
    frames = [
        join_labels(
            read_as_judged(batches[day].features, dataset),
            read_labels(
                batches[day],
                dataset.id_column,
                dataset.target_column,
                dataset.labels_dir is not None,
            ),
            dataset,
            day,
        )
        for day in window.days
    ]
    examples = pd.concat(frames, ignore_index=True)
    examples[SPLIT_COLUMN] = assign_split(
        examples[dataset.id_column],
        seed=training.seed,
        validation=training.split.validation,
        test=training.split.test,
    )
    pipeline.features_dir.mkdir(parents=True, exist_ok=True)
    examples.to_parquet(pipeline.training_dataset_path, index=False)
    manifest = {
        "data_version": window.data_version,
        "days": window.days,
        "fingerprints": window.fingerprints,
        "excluded": window.excluded,
        "warned": window.warned,
    }
    pipeline.training_window_path.write_text(json.dumps(manifest, indent=1))
    splits = examples[SPLIT_COLUMN].value_counts()
    positive = examples[dataset.target_column] == dataset.positive_label
    return dg.MaterializeResult(
        metadata={
            "data_version": window.data_version,
            "rows": len(examples),
            "train_rows": int(splits.get("train", 0)),
            "validation_rows": int(splits.get("validation", 0)),
            "test_rows": int(splits.get("test", 0)),
            "positive_rate": float(positive.mean()),
            "window_start": window.days[0],
            "window_end": window.days[-1],
            "batches": len(window.days),
            "excluded_batches": dg.MetadataValue.json(window.excluded),
            "warned_batches": dg.MetadataValue.json(window.warned),
            "path": dg.MetadataValue.path(str(pipeline.training_dataset_path)),
            **observability(
                started,
                rows=len(examples),
                paths=[pipeline.training_dataset_path, pipeline.training_window_path],
            ),
        },
        data_version=dg.DataVersion(window.data_version),
    )


@dg.asset(
    group_name="features",
    deps=[training_dataset],
    code_version="1",
    kinds={"json", "pandas"},
    tags={"stage": "features"},
)
def reference_profile(
    context: dg.AssetExecutionContext, pipeline: PipelineResource
) -> dg.MaterializeResult:
    """Per-column profile and a seeded sample of the training split: what new batches meet."""
    import time

    import pandas as pd

    started = time.perf_counter()

    from ml_assets.data.expectations import build_profile

    settings = pipeline.settings
    examples = pd.read_parquet(pipeline.training_dataset_path)
    train = examples[examples[SPLIT_COLUMN] == "train"]
    rows = min(settings.drift.reference_sample_rows, len(train))
    sample = train.sample(n=rows, random_state=settings.training.seed)
    sample.to_parquet(pipeline.reference_sample_path, index=False)
    profile = build_profile(train, settings.dataset)
    profile.save(pipeline.reference_profile_path)
    return dg.MaterializeResult(
        metadata={
            "rows": rows,
            "profile_rows": profile.rows,
            "positive_rate": profile.positive_rate,
            "window_start": str(examples["batch_day"].min()),
            "window_end": str(examples["batch_day"].max()),
            "path": dg.MetadataValue.path(str(pipeline.reference_sample_path)),
            **observability(
                started,
                rows=len(train),
                paths=[pipeline.reference_sample_path, pipeline.reference_profile_path],
            ),
        }
    )
