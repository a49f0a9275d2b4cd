"""ml_assets: CI/CD for code, data and models as a Dagster asset project."""
