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


def prepare_pools(instance) -> None:
    """Create the alias pool's slots (its limit from dagster.yaml's concurrency.pools) before
    any step claims them, under a lock in DAGSTER_HOME.

    Dagster creates a pool's slots on its first claim; two processes claiming first at the same
    moment on a new SQLite instance can both create one, and both steps run (seen: two
    approvals at once overlapping). A pool that exists already, with a limit set by the default
    or by hand (`dagster instance concurrency set`), is left as it is.
    """
    from ml_assets.delivery.assets import ALIAS_POOL
    from ml_assets.locking import exclusive

    storage = instance.event_log_storage
    with exclusive(Path(instance.root_directory) / ".pools.lock"):
        if ALIAS_POOL not in storage.get_concurrency_keys():
            storage.initialize_concurrency_limit_to_default(ALIAS_POOL)


def open_instance():
    """The Dagster instance at DAGSTER_HOME, its alias pool ready (prepare_pools)."""
    import dagster as dg

    instance = dg.DagsterInstance.get()
    prepare_pools(instance)
    return instance


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--mlflow-uri"]:
        # `make mlflow`: the tracking store the pipeline writes to (MLFLOW_TRACKING_URI wins).
        from ml_assets.settings import load_settings

        print(load_settings().mlflow_tracking_uri)
    else:
        # `make dev`: the instance and its pools exist before the webserver and daemon start.
        home = ensure_dagster_home()
        open_instance().dispose()
        print(f"DAGSTER_HOME={home}")
