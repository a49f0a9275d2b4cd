"""The functional core: pure, typed functions. Nothing here imports Dagster."""
