"""Pipeline health: the latest run of a stage against its recent median (known answers), and
the asset over crafted materializations."""

import dagster as dg

from ml_assets.monitoring.assets import pipeline_health
from ml_assets.monitoring.health import stage_health
from ml_assets.monitoring.policy import ObservabilitySettings
from ml_assets_tests.conftest import ASSETS

POLICY = ObservabilitySettings(
    history_runs=4, min_history=3, max_seconds_ratio=3.0, max_bytes_ratio=2.0, min_seconds=1.0
)


def _run(seconds, size=1000, rows=100):
    return {"stage_seconds": seconds, "artefact_bytes": size, "rows_processed": rows}


def test_a_stage_much_slower_or_much_larger_than_its_median_is_flagged():
    steady = [_run(10.0), _run(12.0), _run(9.0), _run(11.0)]
    ok = stage_health("evaluation_report", [*steady, _run(30.0)], POLICY)  # 2.86x the median 10.5
    assert ok.flags == () and ok.median_seconds == 10.5 and ok.row()["seconds_ratio"] == 2.86
    slow = stage_health("evaluation_report", [*steady, _run(33.0)], POLICY)
    assert slow.flags == ("33.0 s is 3.1x the median 10.5 s (limit 3.0x)",)
    large = stage_health("evaluation_report", [*steady, _run(10.0, size=2500)], POLICY)
    assert large.flags == ("2,500 bytes is 2.5x the median 1,000 (limit 2.0x)",)
    # Only the newest history_runs earlier runs count: an old slow run is forgotten.
    long = [_run(100.0), *steady, _run(33.0)]
    assert stage_health("s", long, POLICY).median_seconds == 10.5
    # Sub-second stages are not flagged for slowness (timer noise), sizes still are.
    quick = [_run(0.01), _run(0.01), _run(0.01), _run(0.5)]
    assert stage_health("s", quick, POLICY).flags == ()
    # Too little history: figures, no verdict.
    young = stage_health("s", [_run(1.0), _run(50.0)], POLICY)
    assert young.flags == () and young.median_seconds is None and young.earlier_runs == 1
    assert stage_health("s", [], POLICY) is None


def _observed(instance, stage, seconds):
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=stage, metadata=_run(seconds, rows=500))
    )


def test_pipeline_health_names_the_slow_stage_with_its_numbers(project, instance):
    for seconds in (2.0, 2.2, 1.9, 2.4):  # median 2.1
        _observed(instance, "evaluation_report", seconds)
        _observed(instance, "training_dataset", seconds / 2)
    _observed(instance, "evaluation_report", 9.0)  # 4.3x its median
    result = dg.materialize(
        ASSETS, selection=[pipeline_health], instance=instance, resources=project.resources
    )
    assert result.success
    (event,) = result.get_asset_materialization_events()
    meta = event.materialization.metadata
    assert meta["stages"].value == 2 and meta["flagged"].value == 1
    assert meta["flags"].value == "evaluation_report: 9.0 s is 4.3x the median 2.1 s (limit 3.0x)"
    assert "| training_dataset" in meta["stages_table"].value
