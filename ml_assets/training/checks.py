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
    """Test rows sent as JSON records to the registered MLflow model score as in batch scoring."""
    import tempfile
    import warnings

    import numpy as np
    import pandas as pd

    from ml_assets.training.model import load_model, predict_scores
    from ml_assets.training.registry import load_served_model
    from ml_assets.training.serving import (
        ContractViolation,
        RecordEncoder,
        feature_differences,
        model_matrix,
        to_records,
    )

    settings = pipeline.settings
    dataset = settings.dataset
    candidate = json.loads(pipeline.candidate_path.read_text())
    examples = pd.read_parquet(pipeline.training_dataset_path)
    test = examples[examples[SPLIT_COLUMN] == "test"]
    sample = test.sample(n=min(settings.validation.parity_sample_rows, len(test)), random_state=0)
    records = to_records(sample)
    # Rows the served model refuses (they break the contract; a batch gate may let a share of
    # them through) are counted, not compared.
    checker = RecordEncoder(dataset)
    accepted = []
    for record in records:
        try:
            checker.row(record)
            accepted.append(True)
        except (KeyError, ContractViolation):
            accepted.append(False)
    keep = np.array(accepted, dtype=bool)
    sample, records = sample[keep], [r for r, k in zip(records, accepted, strict=True) if k]
    encoder = RecordEncoder(dataset, check=False)
    differences = feature_differences(
        model_matrix(build_features(sample, dataset)), encoder.matrix(records), encoder.columns
    )
    booster = load_model(Path(candidate["local_path"]))
    with tempfile.TemporaryDirectory() as tmp:
        served = load_served_model(
            settings.mlflow_tracking_uri, candidate["model"], candidate["version"], Path(tmp)
        )
        # The model's features only: a client's extra fields are ignored, with a warning each.
        frame = pd.DataFrame(records, columns=dataset.model_features)
        with warnings.catch_warnings():  # MLflow's advice to add type hints, per call
            warnings.filterwarnings("ignore", message=".*type hints.*", category=UserWarning)
            scores = np.asarray(served.predict(frame)) if records else np.empty(0)
    gap = np.abs(predict_scores(booster, sample, dataset) - scores)
    largest = float(gap.max(initial=0.0))
    passed = differences.empty and largest == 0.0 and len(records) > 0
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{len(records)} rows through mlflow.pyfunc: {len(differences)} feature cell(s) "
            f"differ, largest score difference {largest:.3g}"
            + (f"; {int((~keep).sum())} row(s) refused by the contract" if (~keep).any() else "")
        ),
        metadata={
            "model_version": candidate["version"],
            "model_uri": f"models:/{candidate['model']}/{candidate['version']}",
            "rows": len(records),
            "rows_refused_by_contract": int((~keep).sum()),
            "value": len(differences),
            "threshold": 0,
            "max_score_difference": largest,
            "decision": "pass" if passed else "block",
            "failing_rows_sample": markdown_table(differences),
        },
    )
