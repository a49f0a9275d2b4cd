"""Dagster resources: the pipeline settings and paths, and MLflow through dagster-mlflow."""

from functools import cached_property
from pathlib import Path
from types import SimpleNamespace

import dagster as dg

from ml_assets.settings import Settings, load_settings


class PipelineResource(dg.ConfigurableResource):
    """pipeline.yaml and the folders the pipeline reads and writes.

    `config_path` defaults to $ML_ASSETS_CONFIG, else the project's pipeline.yaml.
    """

    config_path: str | None = None

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.config_path)

    @property
    def data_dir(self) -> Path:
        return self.settings.storage.data_dir

    @property
    def ledger_dir(self) -> Path:
        return self.data_dir / "validation"

    @property
    def sketches_dir(self) -> Path:
        """A row sketch per judged batch (data/redelivery), for comparing later batches."""
        return self.data_dir / "sketches"

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "quarantine"

    @property
    def features_dir(self) -> Path:
        return self.data_dir / "features"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def audit_dir(self) -> Path:
        return self.data_dir / "audit"

    @property
    def desired_state_dir(self) -> Path:
        """deploy/: each environment's desired state (delivery/desired_state)."""
        return self.settings.desired_state_dir

    @property
    def predictions_dir(self) -> Path:
        """batch_predictions: a parquet file of scores and a JSON summary per batch."""
        return self.data_dir / "predictions"

    @property
    def canary_dir(self) -> Path:
        """canary_analysis: one measurement per candidate version and batch."""
        return self.reports_dir / "canary"

    @property
    def live_dir(self) -> Path:
        """production_performance: production's live performance per labelled batch."""
        return self.reports_dir / "live"

    @property
    def approval_requests_dir(self) -> Path:
        """An approval request page (markdown and HTML) per staged version."""
        return self.reports_dir / "approval"

    @property
    def model_cards_dir(self) -> Path:
        """A model card (markdown and HTML) per version, also logged to its MLflow run."""
        return self.reports_dir / "model_cards"

    @property
    def incidents_dir(self) -> Path:
        """A post-incident review per rollback."""
        return self.reports_dir / "incidents"

    # The files one stage writes and later stages read, named once.
    @property
    def training_dataset_path(self) -> Path:
        return self.features_dir / "training_dataset.parquet"

    @property
    def training_window_path(self) -> Path:
        return self.features_dir / "training_window.json"

    @property
    def reference_profile_path(self) -> Path:
        return self.features_dir / "reference_profile.json"

    @property
    def reference_sample_path(self) -> Path:
        return self.features_dir / "reference_profile.parquet"

    @property
    def candidate_path(self) -> Path:
        return self.models_dir / "candidate.json"

    @property
    def evaluation_path(self) -> Path:
        return self.reports_dir / "evaluation" / "evaluation.json"

    @property
    def gate_history_dir(self) -> Path:
        return self.reports_dir / "gates"

    @property
    def gate_policy(self) -> str:
        """A hash of what the per-batch gates read: verdicts under another are stale."""
        return self.settings.data_gate_policy

    def mlflow_client(self):
        """An MlflowClient on the configured tracking store (imports mlflow on first use)."""
        from mlflow import MlflowClient

        uri = self.settings.mlflow_tracking_uri
        # The registry is named too: left out, MLflow takes the process's registry URI, which
        # follows whatever tracking URI another caller set globally.
        return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _ensure_experiment(client, name: str, artifact_location: str | None) -> str:
    """The id of experiment `name`, created with its artefacts under `artifact_location` (the
    server's choice when None)."""
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    return client.create_experiment(name, artifact_location=artifact_location)


@dg.resource(
    required_resource_keys={"pipeline"},
    description="dagster-mlflow's MLflow run for this Dagster run, on the configured store.",
)
def mlflow_tracking(context: dg.InitResourceContext):
    """dagster-mlflow's `MlFlow` resource, configured from pipeline.yaml.

    Built lazily: `dagster_mlflow` imports mlflow (about 2 s), which every process that loads the
    definitions would otherwise pay. The experiment is created here first so that its artefacts
    live in the configured folder rather than in ./mlruns of whatever directory a run starts in.
    """
    import mlflow
    from dagster_mlflow.resources import MlFlow

    settings: Settings = context.resources.pipeline.settings
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    _ensure_experiment(
        mlflow.MlflowClient(),
        settings.training.experiment_name,
        settings.mlflow_artifact_location,
    )
    shim = SimpleNamespace(
        log=context.log,
        dagster_run=context.dagster_run,
        run_id=context.run_id,
        resource_config={
            "experiment_name": settings.training.experiment_name,
            "mlflow_tracking_uri": settings.mlflow_tracking_uri,
            "extra_tags": {"ml_assets.dataset": settings.dataset.name},
        },
    )
    tracking = MlFlow(shim)
    try:
        yield tracking
    finally:
        # The resource starts an MLflow run for every Dagster run that needs it, even when a
        # blocking check skips the training step; end it here so it never leaks into the next
        # run in the same process (make run, tests). candidate_model marks failures itself.
        if mlflow.active_run() is not None:
            mlflow.end_run()
