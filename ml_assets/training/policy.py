"""The training stage's policy: the window, the split, the model and where it is registered."""

from __future__ import annotations

import difflib
import functools
import json
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from ml_assets.data.policy import StrictModel

# LightGBM's parameters and their aliases, as the pinned LightGBM lists them
# (LGBM_DumpParamAliases). A copy, so that loading the settings does not import LightGBM;
# test_settings.py fails when it no longer matches the installed LightGBM, and
# `python -m ml_assets.training.policy` rewrites it.
LIGHTGBM_PARAMETERS = Path(__file__).with_name("lightgbm_parameters.json")

# Parameters the pipeline sets itself, and the training key that controls each instead.
PIPELINE_OWNED = {
    "num_iterations": "training.num_boost_round",
    "early_stopping_round": "training.early_stopping_rounds",
    "seed": "training.seed",
    "deterministic": "ml_assets (always true: the reproducibility gate retrains and compares)",
    "force_row_wise": "ml_assets (always true: deterministic histograms)",
    "verbosity": "ml_assets (always -1: training logs go to MLflow, not the terminal)",
}


@functools.cache
def lightgbm_aliases() -> dict[str, str]:
    """Every LightGBM parameter name and alias -> its canonical name."""
    listed = json.loads(LIGHTGBM_PARAMETERS.read_text())["parameters"]
    return {alias: name for name, aliases in listed.items() for alias in [name, *aliases]}


def installed_lightgbm_parameters() -> dict[str, Any]:
    """The installed LightGBM's parameter list, in LIGHTGBM_PARAMETERS' layout."""
    import lightgbm
    from lightgbm.basic import _ConfigAliases

    listed = _ConfigAliases._get_all_param_aliases()
    return {
        "lightgbm_version": lightgbm.__version__,
        "parameters": {name: sorted(set(v) - {name}) for name, v in sorted(listed.items())},
    }


class SplitSettings(StrictModel):
    validation: float = Field(gt=0, lt=0.5)
    test: float = Field(gt=0, lt=0.5)


class TrainingSettings(StrictModel):
    window_days: int = Field(ge=1)
    min_window_days: int = Field(1, ge=1)
    split: SplitSettings
    seed: int = 42
    registered_model_name: str
    experiment_name: str
    lightgbm: dict[str, Any]
    num_boost_round: int = Field(ge=1)
    early_stopping_rounds: int = Field(0, ge=0)

    @field_validator("lightgbm")
    @classmethod
    def _lightgbm_parameters(cls, params: dict[str, Any]) -> dict[str, Any]:
        aliases = lightgbm_aliases()
        problems = []
        for key in params:
            name = aliases.get(key)
            if name is None:
                close = difflib.get_close_matches(key, aliases, n=3)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                problems.append(f"{key!r} is not a LightGBM parameter{hint}")
            elif name in PIPELINE_OWNED:
                problems.append(f"{key!r} is set by {PIPELINE_OWNED[name]}, not here")
        if problems:
            raise ValueError("; ".join(problems))
        return params


if __name__ == "__main__":
    LIGHTGBM_PARAMETERS.write_text(
        json.dumps(installed_lightgbm_parameters(), indent=1, sort_keys=True) + "\n"
    )
    print(f"wrote {LIGHTGBM_PARAMETERS}")
