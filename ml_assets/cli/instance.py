"""The embedded default Dagster instance: a project-local DAGSTER_HOME using ./dagster.yaml."""

from __future__ import annotations

import os
from pathlib import Path

from ml_assets.settings import PROJECT_ROOT

DEFAULT_HOME = PROJECT_ROOT / ".dagster"


def ensure_dagster_home() -> Path:
    """Use $DAGSTER_HOME when set, else .dagster/ linked to the top-level dagster.yaml."""
    home = Path(os.environ.get("DAGSTER_HOME") or DEFAULT_HOME).resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if home == DEFAULT_HOME.resolve() and not config.exists():
        config.symlink_to(PROJECT_ROOT / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--mlflow-uri"]:
        # `make mlflow`: the tracking store the pipeline writes to (MLFLOW_TRACKING_URI wins).
        from ml_assets.settings import load_settings

        print(load_settings().mlflow_tracking_uri)
    else:
        print(f"DAGSTER_HOME={ensure_dagster_home()}")
