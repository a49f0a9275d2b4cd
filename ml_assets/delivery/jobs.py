"""Delivery jobs: the human approval gate that moves `production`."""

import dagster as dg

from ml_assets.delivery.assets import production_model

promote_to_production_job = dg.define_asset_job(
    "promote_to_production_job",
    selection=dg.AssetSelection.assets(production_model),
    description="Move `production` to a staged version; run config names the version and approver.",
)
