"""The MLflow model of every registered version, as code: MLflow runs this file to load a model.

A version is logged as a pyfunc "model from code" (training/registry.log_scoring_model): this
file, the LightGBM booster in its native text format, the data contract as JSON, and the feature
code it imports (the contract and the record encoder, bundled with the model). Loading runs the
file and `load_context`; nothing is unpickled. So `mlflow.pyfunc.load_model("models:/<name>@
production")` and `mlflow models serve` score a request with the code the model was trained
with: each record is checked against the contract (a record that breaks it is refused with an
error naming the field) and encoded as training encoded it (training/serving.RecordEncoder).

This module is not imported by the pipeline: MLflow executes it, and it calls `set_model` at the
end as MLflow's models-from-code format requires.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

BOOSTER = "booster"  # the artefact keys the registry logs under
CONTRACT = "contract"


class ScoringModel(PythonModel):
    """Probability of the positive class for raw records, validated against the data contract."""

    def load_context(self, context: Any) -> None:
        import lightgbm as lgb

        from ml_assets.data.contract import DataContract
        from ml_assets.training.serving import RecordEncoder

        self.booster = lgb.Booster(model_file=context.artifacts[BOOSTER])
        contract = DataContract.model_validate_json(Path(context.artifacts[CONTRACT]).read_text())
        self.encoder = RecordEncoder(contract, check=True)

    # No type hints: MLflow would read them as a second input schema beside the signature.
    def predict(self, context, model_input, params=None):
        """Scores for a DataFrame of records (what MLflow passes once the signature is
        enforced) or a list of records; ContractViolation names a field the contract refuses."""
        records = (
            _records(model_input) if isinstance(model_input, pd.DataFrame) else list(model_input)
        )
        if not records:
            return np.empty(0)
        try:
            matrix = self.encoder.matrix(records)
        except (KeyError, ValueError) as error:
            # MLflow's scoring server answers an MlflowException with its message (HTTP 400);
            # any other exception becomes a generic "unexpected error" with a stack trace.
            raise MlflowException(error.args[0], error_code=INVALID_PARAMETER_VALUE) from error
        # One thread: a scoring server handles requests side by side, each on its own.
        return self.booster.predict(matrix, num_threads=1)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame's rows as records, missing values as None (what a JSON request carries)."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


mlflow.models.set_model(ScoringModel())
