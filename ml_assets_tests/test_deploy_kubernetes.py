"""The Kubernetes deployment (deploy/kubernetes/) against Dagster's own config schemas: the
instance config the Helm chart renders, the K8sRunLauncher's config, and the Helm values that
must say the same. No cluster runs here; this is what can be checked without one."""

import re
import shutil

import pytest
import yaml
from dagster._config import process_config
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import dagster_instance_config

from ml_assets.settings import PROJECT_ROOT

KUBERNETES = PROJECT_ROOT / "deploy" / "kubernetes"


def _launcher_config_errors(config: dict) -> list[str]:
    from dagster_k8s import K8sRunLauncher

    result = process_config(K8sRunLauncher.config_type(), config)
    return [] if result.success else [error.message for error in result.errors]


def test_the_kubernetes_instance_config_is_valid_for_dagster_and_its_run_launcher():
    config, _ = dagster_instance_config(str(KUBERNETES))
    launcher = config["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_k8s", "K8sRunLauncher")
    assert _launcher_config_errors(launcher["config"]) == []
    assert "postgres" in config["storage"]


def test_a_misspelt_key_is_refused_by_the_schema(tmp_path):
    """The check can fail: a typo in the launcher's config or the instance's is an error."""
    raw = yaml.safe_load((KUBERNETES / "dagster.yaml").read_text())
    launcher = dict(raw["run_launcher"]["config"])
    launcher["job_namepsace"] = launcher.pop("job_namespace")
    assert any("job_namepsace" in e for e in _launcher_config_errors(launcher))
    raw["run_monitoring"]["poll_interval_secs"] = 60
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(DagsterInvalidConfigError, match="poll_interval_secs"):
        dagster_instance_config(str(tmp_path))


def test_the_production_instance_config_is_valid_without_a_database(tmp_path):
    shutil.copyfile(
        PROJECT_ROOT / "deploy" / "production" / "dagster.yaml", tmp_path / "dagster.yaml"
    )
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["concurrency"]["pools"]["default_limit"] == 1


def test_the_helm_values_say_what_the_instance_config_says():
    instance = yaml.safe_load((KUBERNETES / "dagster.yaml").read_text())
    values = yaml.safe_load((KUBERNETES / "values.yaml").read_text())
    launcher = instance["run_launcher"]["config"]
    chart = values["runLauncher"]
    assert chart["type"] == instance["run_launcher"]["class"]
    k8s = chart["config"]["k8sRunLauncher"]
    assert k8s["jobNamespace"] == launcher["job_namespace"]
    assert [m["name"] for m in k8s["envConfigMaps"]] == launcher["env_config_maps"]
    assert [s["name"] for s in k8s["envSecrets"]] == launcher["env_secrets"]
    resources = launcher["run_k8s_config"]["container_config"]["resources"]
    assert k8s["runK8sConfig"]["containerConfig"]["resources"] == resources
    queue = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    runs = instance["concurrency"]["runs"]
    assert queue["maxConcurrentRuns"] == runs["max_concurrent_runs"]
    assert queue["tagConcurrencyLimits"] == runs["tag_concurrency_limits"]
    assert values["global"]["postgresqlSecretName"] == launcher["postgres_password_secret"]
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["--module-name", "ml_assets.definitions"]
    # The webserver is never exposed directly.
    assert values["dagsterWebserver"]["service"]["type"] == "ClusterIP"


def test_every_pod_gets_the_environment_make_gives_a_developer():
    """The ConfigMap the pods read is the one both the chart and the instance name, it points
    at an MLflow server, and it switches MLflow's telemetry off as the Makefile does."""
    configmap = yaml.safe_load((KUBERNETES / "env-configmap.yaml").read_text())
    instance = yaml.safe_load((KUBERNETES / "dagster.yaml").read_text())
    values = yaml.safe_load((KUBERNETES / "values.yaml").read_text())
    name = configmap["metadata"]["name"]
    assert (configmap["apiVersion"], configmap["kind"]) == ("v1", "ConfigMap")
    assert instance["run_launcher"]["config"]["env_config_maps"] == [name]
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert [m["name"] for m in deployment["envConfigMaps"]] == [name]
    data = configmap["data"]
    assert all(isinstance(v, str) for v in data.values())  # a ConfigMap holds text only
    assert data["MLFLOW_TRACKING_URI"].startswith(("http://", "https://"))
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    (telemetry,) = re.findall(r"^export MLFLOW_DISABLE_TELEMETRY \?= (\S+)$", makefile, re.M)
    assert data["MLFLOW_DISABLE_TELEMETRY"] == telemetry == "true"
