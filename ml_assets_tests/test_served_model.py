"""The registered model is a real MLflow model: loaded by pyfunc and served by MLflow's server.

One project is trained and its v1 promoted once for the module; each test then loads
`models:/<name>@production` the way a serving team would.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from ml_assets.features.examples import SPLIT_COLUMN
from ml_assets.training.model import load_model, predict_scores
from ml_assets.training.serving import to_records
from ml_assets_tests.conftest import (
    START,
    built_once,
    copy_project,
    decide,
    failed_checks,
    ingest,
    make_project,
    train,
)


@pytest.fixture(scope="module")
def promoted(tmp_path_factory):
    """A project whose v1 passed the gates and was promoted to production (this module's copy
    of a project built once per session)."""
    with pytest.MonkeyPatch.context() as env:
        # As _isolated_env does per test: mlflow.set_tracking_uri, called by an earlier test's
        # run, exports MLFLOW_TRACKING_URI, which would point this project at that test's store.
        env.delenv("MLFLOW_TRACKING_URI", raising=False)
        env.delenv("ML_ASSETS_CONFIG", raising=False)
        built = built_once(tmp_path_factory, "served_promoted", _promoted)
        return copy_project(built, tmp_path_factory.mktemp("served") / "p")


def _promoted(root):
    project = make_project(root)
    days = project.write_days(START, 6)
    instance = dg.DagsterInstance.ephemeral()  # the template keeps files, not the instance
    try:
        assert ingest(project, instance, days).success
        trained = train(project, instance)
        assert trained.success, failed_checks(trained)
        assert decide(project, instance, "1", "ana").success
    finally:
        instance.dispose()


def _test_rows(project) -> pd.DataFrame:
    examples = pd.read_parquet(project.pipeline.training_dataset_path)
    return examples[examples[SPLIT_COLUMN] == "test"]


def _pipeline_scores(project, rows: pd.DataFrame) -> np.ndarray:
    candidate = json.loads(project.pipeline.candidate_path.read_text())
    return predict_scores(load_model(Path(candidate["local_path"])), rows, project.settings.dataset)


def _production_uri(project) -> str:
    return f"models:/{project.settings.training.registered_model_name}@production"


@pytest.fixture
def tracking(promoted):
    """MLflow pointed at the project's store for one test (a run in the same worker may have
    pointed it elsewhere), then back."""
    import mlflow

    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(promoted.settings.mlflow_tracking_uri)
    yield mlflow
    mlflow.set_tracking_uri(before)


def test_production_alias_loads_with_pyfunc_and_scores_as_the_pipeline(promoted, tracking):
    mlflow = tracking
    model = mlflow.pyfunc.load_model(_production_uri(promoted))
    rows = _test_rows(promoted)
    # Raw rows as a client sends them: JSON records, extra columns (id, label) included.
    served = model.predict(pd.DataFrame(to_records(rows)))
    assert np.array_equal(np.asarray(served), _pipeline_scores(promoted, rows))
    inputs = model.metadata.get_input_schema().input_names()
    assert inputs == promoted.settings.dataset.model_features
    # No pickle on the load path: the model is code, the booster is LightGBM's text format.
    folder = Path(mlflow.artifacts.download_artifacts(_production_uri(promoted)))
    assert not list(folder.rglob("*.pkl")) and (folder / "artifacts" / "model.txt").exists()
    assert "python_model" not in (folder / "MLmodel").read_text().split("loader_module")[0]
    # A record that breaks the contract is refused, naming the field, instead of scored.
    record = to_records(rows.head(1))[0]
    with pytest.raises(MlflowException, match="'credit_score': 900 is above the maximum 850"):
        model.predict(pd.DataFrame([{**record, "credit_score": 900}]))
    refused = "record 1: request field 'region': 'mars' is outside the contract's categories"
    with pytest.raises(MlflowException, match=refused):
        model.predict(pd.DataFrame([record, {**record, "region": "mars"}]))
    # Integers are numbers: a client sending "term_months": 36 is scored, not refused.
    whole = {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in record.items()}
    assert model.predict(pd.DataFrame([whole]))[0] == pytest.approx(served[0], abs=1e-12)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_mlflow_scoring_server_answers_invocations(promoted, tmp_path):
    port = _free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": promoted.settings.mlflow_tracking_uri,
        # The server starts uvicorn by name: the environment's scripts come first on PATH.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "mlflow", "models", "serve"),
            *("-m", _production_uri(promoted), "--env-manager", "local"),
            *("-h", "127.0.0.1", "-p", str(port)),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # the server's workers are stopped with it, by process group
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "scoring server did not answer /ping in 120 s"
            time.sleep(0.5)
        rows = _test_rows(promoted).head(50)
        status, body = _post(f"{base}/invocations", {"dataframe_records": to_records(rows)})
        assert status == 200, body
        assert np.array_equal(np.asarray(body["predictions"]), _pipeline_scores(promoted, rows))
        bad = {**to_records(rows.head(1))[0], "utilization": -0.5}
        status, body = _post(f"{base}/invocations", {"dataframe_records": [bad]})
        assert status == 400 and "'utilization': -0.5 is below the minimum 0" in body["message"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def test_the_served_model_loads_from_its_store_whatever_mlflow_points_at(promoted, tmp_path):
    import mlflow

    from ml_assets.training.registry import load_served_model

    store, name = (
        promoted.settings.mlflow_tracking_uri,
        promoted.settings.training.registered_model_name,
    )
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'another.db'}")  # a different store
    try:
        model = load_served_model(store, name, "1", tmp_path / "m")
        rows = _test_rows(promoted).head(20)
        scores = model.predict(
            pd.DataFrame(to_records(rows))[promoted.settings.dataset.model_features]
        )
        assert np.array_equal(np.asarray(scores), _pipeline_scores(promoted, rows))
    finally:
        mlflow.set_tracking_uri(before)
