"""The delivery stage's policy: the aliases that name each environment."""

from __future__ import annotations

from ml_assets.data.policy import StrictModel


class DeliverySettings(StrictModel):
    staging_alias: str = "staging"
    production_alias: str = "production"
