"""Delivery sensors: drift between the desired state in deploy/ and MLflow's aliases."""

from collections.abc import Collection

import dagster as dg

from ml_assets.delivery.jobs import reconcile_job
from ml_assets.metadata import sensor_status
from ml_assets.resources import PipelineResource


def build_alias_drift_sensor(
    interval_seconds: int, running: Collection[str] = ()
) -> dg.SensorDefinition:
    """The sensor that launches reconcile_job when an alias differs from its desired state."""

    @dg.sensor(
        job=reconcile_job,
        minimum_interval_seconds=interval_seconds,
        default_status=sensor_status("alias_drift_sensor", running),
        description=(
            "Launches reconcile_job when an MLflow alias differs from deploy/<environment>.yaml "
            "(an alias moved by hand in the MLflow UI, or a move that a crash cut short)."
        ),
    )
    def alias_drift_sensor(context: dg.SensorEvaluationContext, pipeline: PipelineResource):
        from ml_assets.delivery.desired_state import read_state
        from ml_assets.training.registry import read_audit, version_for_alias

        settings = pipeline.settings
        name = settings.training.registered_model_name
        client = pipeline.mlflow_client()
        drift = []
        for environment, (alias, _) in settings.delivery.environments().items():
            state = read_state(pipeline.desired_state_dir, environment)
            if state is None:
                continue
            held = version_for_alias(client, name, alias)
            found = str(held.version) if held is not None else None
            if found != state.version:
                drift.append(f"{environment}: {alias} on v{found}, desired v{state.version}")
        if not drift:
            return dg.SkipReason("every alias is where its desired state puts it")
        # The same drift seen again after reconcile acted (the audit log grew) is a new event.
        seen = len(read_audit(pipeline.audit_dir, name))
        return dg.RunRequest(
            run_key=f"{'; '.join(drift)} @{seen}",
            tags={"trigger": "alias drift", "evidence": "; ".join(drift)[:200]},
        )

    return alias_drift_sensor
