"""Thin Dagster wings, one module per asset group; the logic lives in ml_assets.core."""
