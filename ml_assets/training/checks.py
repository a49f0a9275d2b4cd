"""Training checks: the candidate scores the same through the serving path as in batch scoring."""

import json
from pathlib import Path

import dagster as dg

from ml_assets.features.examples import SPLIT_COLUMN, build_features
from ml_assets.metadata import markdown_table
from ml_assets.resources import PipelineResource
from ml_assets.training.assets import candidate_model


@dg.asset_check(asset=candidate_model, blocking=True)
def candidate_model_matches_serving_path(pipeline: PipelineResource) -> dg.AssetCheckResult:
    """Test rows sent as JSON records get the same features and scores as in batch scoring."""
    import numpy as np
    import pandas as pd

    from ml_assets.training.model import load_model, predict_scores
    from ml_assets.training.serving import (
        RecordEncoder,
        feature_differences,
        model_matrix,
        score_records,
        to_records,
    )

    settings = pipeline.settings
    dataset = settings.dataset
    candidate = json.loads(pipeline.candidate_path.read_text())
    examples = pd.read_parquet(pipeline.training_dataset_path)
    test = examples[examples[SPLIT_COLUMN] == "test"]
    sample = test.sample(n=min(settings.validation.parity_sample_rows, len(test)), random_state=0)
    records = to_records(sample)
    encoder = RecordEncoder(dataset)
    differences = feature_differences(
        model_matrix(build_features(sample, dataset)), encoder.matrix(records), encoder.columns
    )
    booster = load_model(Path(candidate["local_path"]))
    gap = np.abs(
        predict_scores(booster, sample, dataset) - score_records(booster, records, dataset)
    )
    passed = differences.empty and float(gap.max(initial=0.0)) == 0.0
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{len(sample)} rows: {len(differences)} feature cell(s) differ, "
            f"largest score difference {float(gap.max(initial=0.0)):.3g}"
        ),
        metadata={
            "model_version": candidate["version"],
            "rows": len(sample),
            "value": len(differences),
            "threshold": 0,
            "max_score_difference": float(gap.max(initial=0.0)),
            "decision": "pass" if passed else "block",
            "failing_rows_sample": markdown_table(differences),
        },
    )
