"""The training stage: the LightGBM candidate, the serving path, the MLflow registry."""
