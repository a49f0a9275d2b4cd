"""Training: a LightGBM candidate, tracked in MLflow and registered as a new model version."""

import json
import shutil
import tempfile
from pathlib import Path

import dagster as dg

from ml_assets.features.assets import training_dataset
from ml_assets.features.examples import SPLIT_COLUMN
from ml_assets.metadata import observability
from ml_assets.resources import PipelineResource
from ml_assets.settings import PROJECT_ROOT
from ml_assets.training.lineage import flagged_batches_tag, git_commit
from ml_assets.training.registry import (
    MODEL_FILE,
    append_audit,
    log_scoring_model,
    mlflow_run_url,
    register_version,
)


@dg.asset(
    group_name="training",
    deps=[training_dataset],
    required_resource_keys={"mlflow", "pipeline"},
    code_version="1",
    kinds={"lightgbm", "mlflow"},
    tags={"stage": "training"},
)
def candidate_model(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """LightGBM model trained on the window's train split, registered in MLflow as a new version."""
    import time

    import pandas as pd

    from ml_assets.training.model import save_model, train_on_splits, validation_scores

    # dagster-mlflow is a function-style resource, so both resources come by key, not by argument.
    pipeline: PipelineResource = context.resources.pipeline
    started = time.perf_counter()
    settings = pipeline.settings
    dataset, training = settings.dataset, settings.training
    examples = pd.read_parquet(pipeline.training_dataset_path)
    window = json.loads(pipeline.training_window_path.read_text())
    booster = train_on_splits(examples, dataset, training)
    train_rows = int((examples[SPLIT_COLUMN] == "train").sum())
    mlflow = context.resources.mlflow
    commit = git_commit(PROJECT_ROOT)
    tags = {
        "data_version": window["data_version"],
        "code_version": commit,
        "window": f"{window['days'][0]}..{window['days'][-1]}",
        "excluded_batches": ",".join(sorted(window["excluded"])) or "none",
        # Trained on, though a WARN data gate flagged them (a shift short of the hard bounds).
        "flagged_batches": flagged_batches_tag(window.get("warned", {})),
        "dagster_run_id": context.run.run_id,
    }
    try:
        with tempfile.TemporaryDirectory() as tmp:
            model_path = Path(tmp) / MODEL_FILE
            model_sha = save_model(booster, model_path)
            mlflow.log_params(
                {
                    **training.lightgbm,
                    "num_boost_round": training.num_boost_round,
                    "best_iteration": booster.best_iteration,
                    "seed": training.seed,
                }
            )
            scores = {f"valid_{k}": v for k, v in validation_scores(booster).items()}
            mlflow.log_metrics(scores)
            mlflow.set_tags({**tags, "model_sha256": model_sha})
            mlflow.log_dict(window, "data/training_window.json")
            # The served model: the booster, the contract and the feature code, loadable with
            # mlflow.pyfunc.load_model and servable by `mlflow models serve`.
            test = examples[examples[SPLIT_COLUMN] == "test"]
            example = test[dataset.model_features].head(3)
            logged = log_scoring_model(mlflow, model_path, dataset, example)
            run = mlflow.active_run()
            version = register_version(
                pipeline.mlflow_client(),
                training.registered_model_name,
                run.info.run_id,
                logged,
                {**tags, "model_sha256": model_sha},
            )
            # The run is named after what it is, so the MLflow UI's run list reads as a history.
            pipeline.mlflow_client().update_run(
                run.info.run_id, name=f"candidate v{version.version}"
            )
            local = pipeline.models_dir / f"v{version.version}" / MODEL_FILE
            local.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(model_path, local)
    except Exception:
        mlflow.end_run(status="FAILED")
        raise
    candidate = {
        "model": training.registered_model_name,
        "version": str(version.version),
        "run_id": run.info.run_id,
        "model_sha256": model_sha,
        "data_version": window["data_version"],
        "code_version": commit,
        "local_path": str(local),
    }
    pipeline.candidate_path.write_text(json.dumps(candidate, indent=1))
    append_audit(
        pipeline.audit_dir,
        training.registered_model_name,
        version.version,
        "registered",
        run_id=run.info.run_id,
        data_version=window["data_version"],
        code_version=commit,
        dagster_run_id=context.run.run_id,
        excluded_batches=window["excluded"],
    )
    # A link to the run when the tracking store is an MLflow server.
    run_url = mlflow_run_url(settings.mlflow_tracking_uri, run.info.experiment_id, run.info.run_id)
    return dg.MaterializeResult(
        metadata={
            "model_version": str(version.version),
            "mlflow_run_id": run.info.run_id,
            **({"mlflow_run": dg.MetadataValue.url(run_url)} if run_url else {}),
            "data_version": window["data_version"],
            # The newest batch it learned from: evidence from batches up to here is seen.
            "window_end": window["days"][-1],
            "train_rows": train_rows,
            # A hash of the training settings and the contract: `make run` retrains on a change.
            "training_policy": settings.training_policy,
            "code_version": commit,
            "best_iteration": int(booster.best_iteration or training.num_boost_round),
            **{k: round(v, 6) for k, v in scores.items()},
            "model_sha256": model_sha,
            "excluded_batches": dg.MetadataValue.json(window["excluded"]),
            **observability(started, rows=train_rows, paths=[local]),
        }
    )
