"""Training early-stops on whatever metric pipeline.yaml names, not only auc."""

import dagster as dg
import yaml

from ml_assets.features.assets import reference_profile, training_dataset
from ml_assets.training.assets import candidate_model
from ml_assets_tests.conftest import ASSETS, CHECKS, START, ingest, make_project


def test_a_metric_other_than_auc_trains_and_is_logged(tmp_path, instance):
    project = make_project(tmp_path / "p")
    raw = yaml.safe_load(project.config_path.read_text())
    raw["training"]["lightgbm"]["metric"] = "binary_logloss"
    project.config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    days = project.write_days(START, 8)
    assert ingest(project, instance, days).success

    result = dg.materialize(
        [*ASSETS, *CHECKS],
        selection=[training_dataset, reference_profile, candidate_model],
        instance=instance,
        resources=project.resources,
        raise_on_error=False,
    )

    (model,) = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key.path[-1] == "candidate_model"
    ]
    assert "valid_auc" not in model.metadata
    assert 0 < model.metadata["valid_binary_logloss"].value < 1
    run = project.pipeline.mlflow_client().get_run(model.metadata["mlflow_run_id"].value)
    logged = run.data.metrics["valid_binary_logloss"]
    assert round(logged, 6) == model.metadata["valid_binary_logloss"].value  # rounded for the UI
