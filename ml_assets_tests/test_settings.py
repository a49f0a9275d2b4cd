from pathlib import Path

import pytest
import yaml

from ml_assets.settings import DEFAULT_CONFIG, SettingsError, load_settings, parse_settings


def _raw() -> dict:
    """The project's pipeline.yaml, to be written elsewhere: its one file path made absolute."""
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    cases = raw["dataset"]["behaviour_cases"]
    raw["dataset"]["behaviour_cases"] = str((DEFAULT_CONFIG.parent / cases).resolve())
    return raw


def test_a_missing_behaviour_cases_file_fails_at_load_naming_key_and_file(tmp_path):
    raw = _raw()
    raw["dataset"]["behaviour_cases"] = "cases/missing.yaml"  # relative to the copied config
    with pytest.raises(SettingsError) as error:
        parse_settings(raw, tmp_path / "pipeline.yaml")
    assert "dataset.behaviour_cases" in str(error.value)
    assert str(tmp_path / "cases" / "missing.yaml") in str(error.value)


def test_the_old_behaviour_cases_key_says_where_it_moved(tmp_path):
    raw = _raw()
    raw["gates"]["behaviour"]["cases"] = "x.yaml"
    with pytest.raises(SettingsError, match=r"moved to dataset\.behaviour_cases"):
        parse_settings(raw, tmp_path / "pipeline.yaml")


def test_project_config_loads_with_absolute_paths():
    settings = load_settings()
    assert settings.dataset.features_dir.is_absolute()
    assert settings.dataset.features_dir == DEFAULT_CONFIG.parent / "data/raw/features"
    assert "sex" not in settings.dataset.model_features
    assert settings.gates.floors.min_roc_auc == 0.7
    assert settings.dataset.behaviour_cases.is_file()


def test_relative_paths_resolve_against_the_files_folder(tmp_path):
    settings = parse_settings(_raw(), tmp_path / "sub" / "pipeline.yaml")
    assert settings.dataset.labels_dir == (tmp_path / "sub" / "data/raw/labels").resolve()
    assert settings.mlflow_tracking_uri == f"sqlite:///{tmp_path / 'sub' / 'data/mlflow'}/mlflow.db"


def test_missing_key_names_the_key_and_the_file(tmp_path):
    raw = _raw()
    del raw["training"]["window_days"]
    with pytest.raises(SettingsError) as error:
        parse_settings(raw, tmp_path / "pipeline.yaml")
    assert "training.window_days" in str(error.value)
    assert str(tmp_path / "pipeline.yaml") in str(error.value)


def test_unknown_and_mistyped_keys_fail(tmp_path):
    raw = _raw()
    raw["training"]["windw_days"] = 3
    raw["drift"]["drifted_columns_share"] = "lots"
    with pytest.raises(SettingsError) as error:
        parse_settings(raw, tmp_path / "p.yaml")
    assert "training.windw_days" in str(error.value)
    assert "drift.drifted_columns_share" in str(error.value)


def test_lightgbm_parameters_are_lightgbm_s_own(tmp_path):
    raw = _raw()
    raw["training"]["lightgbm"].update(num_leavs=15, min_child_samples=20, metric="binary_logloss")
    with pytest.raises(SettingsError) as error:
        parse_settings(raw, tmp_path / "p.yaml")
    message = str(error.value)
    assert "training.lightgbm" in message and str(tmp_path / "p.yaml") in message
    assert "'num_leavs' is not a LightGBM parameter (did you mean num_leaves" in message
    assert "min_child_samples" not in message  # an alias of min_data_in_leaf
    # What the pipeline sets itself is refused with the key that controls it.
    raw = _raw()
    raw["training"]["lightgbm"]["n_estimators"] = 500
    with pytest.raises(SettingsError, match=r"'n_estimators' is set by training\.num_boost_round"):
        parse_settings(raw, tmp_path / "p.yaml")


def test_the_lightgbm_parameter_list_matches_the_installed_lightgbm():
    """The copy read at load (so loading does not import LightGBM) is the installed one's."""
    import json

    from ml_assets.training.policy import LIGHTGBM_PARAMETERS, installed_lightgbm_parameters

    assert json.loads(LIGHTGBM_PARAMETERS.read_text()) == installed_lightgbm_parameters(), (
        "LightGBM changed its parameters: run `python -m ml_assets.training.policy`"
    )


def test_unknown_severity_key_names_the_key_and_the_file(tmp_path):
    raw = _raw()
    raw["validation"]["severity"]["raw_batches_match_shema"] = "WARN"
    with pytest.raises(SettingsError) as error:
        parse_settings(raw, tmp_path / "p.yaml")
    assert "validation.severity" in str(error.value)
    assert "raw_batches_match_shema" in str(error.value)
    assert str(tmp_path / "p.yaml") in str(error.value)


def test_severity_keys_are_the_data_gates_only(tmp_path):
    """The window gates' severity is fixed: validation.severity does not accept their names."""
    from ml_assets.data.gates import BATCH_GATES

    raw = _raw()
    raw["validation"]["severity"] = dict.fromkeys(BATCH_GATES, "WARN")
    settings = parse_settings(raw, tmp_path / "p.yaml")
    assert {settings.validation.severity_of(g) for g in BATCH_GATES} == {"WARN"}
    raw["validation"]["severity"]["training_dataset_has_no_leaking_feature"] = "WARN"
    with pytest.raises(SettingsError, match="training_dataset_has_no_leaking_feature"):
        parse_settings(raw, tmp_path / "p.yaml")


def test_severity_defaults_to_the_gate_table():
    from ml_assets.data.gates import DATA_GATES

    validation = load_settings().validation
    for gate in DATA_GATES:
        expected = validation.severity.get(gate.name, gate.default_severity)
        assert validation.severity_of(gate.name) == expected
    assert validation.severity_of("raw_batches_match_reference_profile") == "WARN"
    assert validation.severity_of("raw_batches_match_schema") == "ERROR"
    with pytest.raises(KeyError, match="not a data gate"):
        validation.severity_of("candidate_is_calibrated")


def test_slice_column_must_be_declared(tmp_path):
    raw = _raw()
    raw["dataset"]["slice_columns"] = ["zodiac_sign"]
    with pytest.raises(SettingsError, match="zodiac_sign"):
        parse_settings(raw, tmp_path / "p.yaml")


def test_env_var_points_at_another_file(tmp_path, monkeypatch):
    raw = _raw()
    raw["training"]["window_days"] = 5
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("ML_ASSETS_CONFIG", str(path))
    assert load_settings().training.window_days == 5


def test_unreadable_file_is_named(tmp_path):
    with pytest.raises(SettingsError, match=str(tmp_path / "nope.yaml")):
        load_settings(Path(tmp_path / "nope.yaml"))


def test_mlflow_uri_from_environment_wins(monkeypatch, tmp_path):
    settings = parse_settings(_raw(), tmp_path / "p.yaml")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql://db/mlflow")
    assert settings.mlflow_tracking_uri == "postgresql://db/mlflow"


def test_an_unknown_executor_names_the_key_and_the_file(tmp_path):
    raw = _raw()
    raw["execution"]["executor"] = "dask"
    with pytest.raises(SettingsError) as error:
        parse_settings(raw, tmp_path / "p.yaml")
    message = str(error.value)
    assert "execution.executor" in message and str(tmp_path / "p.yaml") in message
    assert "'in_process' or 'celery'" in message


def test_the_default_executor_is_in_process(tmp_path):
    assert load_settings().execution.executor == "in_process"
    raw = _raw()
    del raw["execution"]  # a pipeline.yaml written before the block existed
    assert parse_settings(raw, tmp_path / "p.yaml").execution.executor == "in_process"


def test_a_celery_password_stays_out_of_the_file(tmp_path, monkeypatch):
    raw = _raw()
    raw["execution"]["celery"]["broker"] = "pyamqp://ml:s3cret@rabbit:5672//"
    with pytest.raises(SettingsError) as error:
        parse_settings(raw, tmp_path / "p.yaml")
    message = str(error.value)
    assert "execution.celery.broker" in message and "$ML_ASSETS_CELERY_BROKER_URL" in message
    assert "s3cret" not in message
    # The environment's URL, password and all, wins over the file's.
    celery = parse_settings(_raw(), tmp_path / "p.yaml").execution.celery
    assert celery.broker_url == "pyamqp://guest@127.0.0.1:5672//" and celery.broker_env is None
    monkeypatch.setenv("ML_ASSETS_CELERY_BROKER_URL", "pyamqp://ml:s3cret@rabbit:5672//")
    assert celery.broker_url == "pyamqp://ml:s3cret@rabbit:5672//"
    assert celery.broker_env == "ML_ASSETS_CELERY_BROKER_URL"
