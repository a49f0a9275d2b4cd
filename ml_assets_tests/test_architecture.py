"""The house rules hold: import contracts (pyproject.toml) and what the pure modules may import."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import ml_assets
from ml_assets.settings import PROJECT_ROOT

STAGES = ("data", "features", "training", "evaluation", "delivery", "monitoring", "retraining")
# The only files of a stage that may import dagster.
DAGSTER_LAYER = {"assets", "checks", "sensors", "jobs"}


def _contracts() -> list[dict]:
    config = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    return config["tool"]["importlinter"]["contracts"]


def test_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "BROKEN" not in result.stdout


def test_every_pure_module_of_a_stage_is_under_the_no_dagster_contract():
    """A new module outside the Dagster layer cannot slip past the contract unnoticed."""
    (pure,) = [
        c for c in _contracts() if c["type"] == "forbidden" and "dagster" in c["forbidden_modules"]
    ]
    root = Path(ml_assets.__file__).parent
    modules = {
        f"ml_assets.{stage}.{path.stem}"
        for stage in STAGES
        for path in (root / stage).glob("*.py")
        if path.stem not in DAGSTER_LAYER | {"__init__"}
    }
    in_stages = {m for m in pure["source_modules"] if m.split(".")[1] in STAGES}
    assert modules == in_stages
    # Shared by the stages and pure as well: the markdown tables of the metadata and reports.
    assert set(pure["source_modules"]) - in_stages == {"ml_assets.markdown"}


def test_the_stages_are_layered_in_flow_order():
    (layers,) = [c for c in _contracts() if c["type"] == "layers"]
    # On top: the lineage command's name, the command lines, the code location.
    assert layers["layers"][:3] == ["ml_assets.lineage", "ml_assets.cli", "ml_assets.definitions"]
    assert layers["layers"][3:] == [f"ml_assets.{s}" for s in reversed(STAGES)]
