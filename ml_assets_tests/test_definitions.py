"""The code location loads, and any change to its graph shows up here in review."""

import os
import subprocess
import sys
from pathlib import Path

from ml_assets.settings import PROJECT_ROOT
from ml_assets_tests.conftest import code_location

SNAPSHOT = {
    "assets": [
        "batch_predictions",
        "canary_analysis",
        "candidate_model",
        "drift_report",
        "evaluation_report",
        "gate_history",
        "pipeline_health",
        "production_model",
        "production_performance",
        "raw_batches",
        "raw_labels",
        "reference_profile",
        "retraining_ledger",
        "staging_model",
        "training_dataset",
    ],
    "checks": [
        "candidate_model:candidate_model_matches_serving_path",
        "evaluation_report:candidate_beats_baselines",
        "evaluation_report:candidate_is_backward_compatible",
        "evaluation_report:candidate_is_calibrated",
        "evaluation_report:candidate_is_fair_across_groups",
        "evaluation_report:candidate_loads_cold_within_budget",
        "evaluation_report:candidate_meets_metric_floors",
        "evaluation_report:candidate_meets_operational_budget",
        "evaluation_report:candidate_not_worse_than_production",
        "evaluation_report:candidate_passes_behaviour_tests",
        "evaluation_report:candidate_passes_champion_challenger_test",
        "evaluation_report:candidate_slices_not_worse",
        "evaluation_report:candidate_training_is_reproducible",
        "raw_batches:raw_batches_match_reference_profile",
        "raw_batches:raw_batches_match_schema",
        "raw_batches:raw_batches_not_redelivered",
        "raw_batches:raw_batches_timestamps_not_in_future",
        "raw_labels:raw_labels_join_raw_batches",
        "raw_labels:raw_labels_not_leaked_into_features",
        "raw_labels:raw_labels_positive_rate_matches_reference",
        "training_dataset:training_dataset_has_enough_labels_per_class",
        "training_dataset:training_dataset_has_no_leaking_feature",
        "training_dataset:training_dataset_splits_are_disjoint",
    ],
    "jobs": [
        "approval_job",
        "evaluation_job",
        "gate_history_job",
        "ingestion_job",
        "ml_pipeline_job",
        "reconcile_job",
        "rollback_job",
        "scoring_job",
        "training_job",
    ],
    "schedules": ["gate_history_schedule", "retraining_schedule"],
    "sensors": [
        "alias_drift_sensor",
        "drift_sensor",
        "new_batch_sensor",
        "performance_decay_sensor",
        "performance_slo_sensor",
        "scoring_automation_sensor",
    ],
    "groups": [
        "delivery",
        "evaluation",
        "features",
        "governance",
        "ingestion",
        "monitoring",
        "retraining",
        "training",
    ],
}


def test_definitions_snapshot():
    graph = code_location().resolve_asset_graph()
    assets = sorted(k.to_user_string() for k in graph.get_all_asset_keys())
    checks = sorted(f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys)
    jobs = sorted(
        j.name for j in code_location().resolve_all_job_defs() if not j.name.startswith("__")
    )
    groups = sorted({graph.get(k).group_name for k in graph.get_all_asset_keys()})
    assert {
        "assets": assets,
        "checks": checks,
        "jobs": jobs,
        "schedules": sorted(s.name for s in code_location().schedules),
        "sensors": sorted(s.name for s in code_location().sensors),
        "groups": groups,
    } == SNAPSHOT


def test_every_asset_and_check_explains_itself():
    graph = code_location().resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        description = graph.get(key).description or ""
        assert description and "\n" not in description.strip(), key
    for check in graph.asset_check_keys:
        assert graph.get(check).description, check


def test_the_ui_shows_kinds_owners_stages_code_and_descriptions():
    """What a Dagster user sees on every asset, job, sensor and schedule (#10 H)."""
    import dagster as dg

    definitions = code_location()
    graph = definitions.resolve_asset_graph()
    stages = {"data", "features", "training", "evaluation", "delivery", "monitoring", "retraining"}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert 1 <= len(node.kinds) <= 3, key
        assert node.owners == ["team:ml"], key
        assert node.tags.get("stage") in stages, key
        references = node.metadata["dagster/code_references"]
        assert isinstance(references, dg.CodeReferencesMetadataValue), key
        assert all(Path(r.file_path).is_file() for r in references.code_references), key
    repository = definitions.get_repository_def()
    named = [
        *(j for j in repository.get_all_jobs() if not j.name.startswith("__")),
        *repository.sensor_defs,
        *repository.schedule_defs,
    ]
    assert len(named) == 17
    for definition in named:
        assert definition.description, definition.name


def test_data_gates_and_model_gates_block():
    graph = code_location().resolve_asset_graph()
    for check in graph.asset_check_keys:
        assert graph.get(check).blocking, check


def test_every_job_runs_in_process_by_default():
    """pipeline.yaml's default `execution.executor: in_process`: no job needs a worker."""
    executors = {
        j.name: j.executor_def.name
        for j in code_location().resolve_all_job_defs()
        if not j.name.startswith("__")
    }
    assert set(executors.values()) == {"in_process"}, executors


def test_definitions_import_leaves_heavy_libraries_unloaded():
    code = (
        "import sys, ml_assets.definitions;"
        "heavy = ('mlflow', 'lightgbm', 'evidently', 'sklearn', 'pandera', 'fairlearn',"
        " 'statsmodels', 'matplotlib', 'polars', 'pandas', 'numpy', 'pyarrow', 'scipy',"
        " 'celery', 'dagster_celery', 'kombu');"
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


def test_the_ledger_knows_every_batch_gate():
    from ml_assets.data.checks import BATCH_GATE_CHECKS
    from ml_assets.data.gates import BATCH_GATES

    assert tuple(next(iter(c.check_keys)).name for c in BATCH_GATE_CHECKS) == BATCH_GATES


def test_the_gate_tables_and_the_checks_agree():
    """Each stage's table is the only spelling: the checks, their judges and the settings follow."""
    from ml_assets.data import checks as data_checks
    from ml_assets.data.gates import BATCH_GATES, DATA_GATES
    from ml_assets.data.policy import ValidationSettings
    from ml_assets.features import checks as features_checks
    from ml_assets.features.gates import WINDOW_GATES

    def described(checks):
        return [
            (spec.name, spec.asset_key.to_user_string(), spec.description)
            for check in checks
            for spec in check.check_specs
        ]

    def tabled(gates):
        return [(g.name, g.asset, g.description) for g in gates]

    assert described(data_checks.BATCH_GATE_CHECKS) == tabled(DATA_GATES)
    assert described(features_checks.WINDOW_CHECKS) == tabled(WINDOW_GATES)
    assert tuple(g.name for g in DATA_GATES) == BATCH_GATES
    # Every gate has its judge and every judge its gate.
    from ml_assets.data.rules import RULES

    assert list(RULES) == list(BATCH_GATES)
    assert list(data_checks.JUDGES) == list(BATCH_GATES)
    assert list(features_checks.WINDOW_JUDGES) == [g.name for g in WINDOW_GATES]
    # Names are unique across the stages, and every table's asset is in the code location.
    names = [g.name for g in (*DATA_GATES, *WINDOW_GATES)]
    assert len(names) == len(set(names))
    graph = code_location().resolve_asset_graph()
    assets = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {g.asset for g in (*DATA_GATES, *WINDOW_GATES)} <= assets
    # A data gate's severity defaults to the table's; the window gates do not read the setting.
    assert {g.name: ValidationSettings().severity_of(g.name) for g in DATA_GATES} == {
        g.name: g.default_severity for g in DATA_GATES
    }
    assert {g.default_severity for g in WINDOW_GATES} == {"ERROR"}


def test_definitions_import_reads_no_file_and_changes_no_global_state(tmp_path):
    """Importing the code location does no work: a broken pipeline.yaml only matters at load."""
    broken = tmp_path / "pipeline.yaml"
    broken.write_text("dataset: [not, a, mapping\n")
    code = (
        # Libraries may set their own filters when imported (pandas does); ml_assets adds none.
        "import warnings, dagster, pandas, numpy, pyarrow; before = list(warnings.filters);"
        "import ml_assets.definitions as d;"
        "assert warnings.filters == before, 'warning filters changed';"
        "from ml_assets.settings import SettingsError\n"
        "try:\n    d.defs()\nexcept SettingsError as e:\n    print('load:', str(e).split(':')[0])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "ML_ASSETS_CONFIG": str(broken)},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == f"load: {broken} is not valid YAML"
