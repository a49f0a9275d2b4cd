"""Gate hygiene: the pure summary of past gate evaluations, and the gate_history asset."""

import math
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from ml_assets.monitoring.assets import (
    code_location_check_keys,
    gate_history,
    gate_names,
    pipeline_health,
)
from ml_assets.monitoring.gate_history import (
    COLUMNS,
    FAILS_MOSTLY,
    NEVER_NEAR,
    GateEvaluation,
    summarise_gate_history,
)
from ml_assets.monitoring.jobs import gate_history_job
from ml_assets.resources import PipelineResource
from ml_assets_tests.conftest import code_location, make_project


def ev(gate, passed=True, margin=None, value=None, threshold=None, t=0.0, severity="ERROR"):
    return GateEvaluation(
        gate=gate,
        passed=passed,
        severity=severity,
        margin=margin,
        value=value,
        threshold=threshold,
        timestamp=t,
    )


def row(frame: pd.DataFrame, gate: str) -> pd.Series:
    return frame.set_index("gate").loc[gate]


# --- the pure summary ------------------------------------------------------------------------


def test_empty_history_has_the_columns_and_no_rows():
    frame = summarise_gate_history([])
    assert list(frame.columns) == COLUMNS
    assert frame.empty


def test_counts_margins_and_last_values_with_known_answers():
    evaluations = [
        ev("b", True, 0.30, value=0.93, threshold=0.70, t=1),
        ev("b", False, -0.05, value=0.66, threshold=0.70, t=3),
        ev("b", True, 0.10, value=0.77, threshold=0.70, t=2),
        ev("a", True, 0.50, value=1.0, threshold=2.0, t=5),
    ]
    frame = summarise_gate_history(evaluations)
    assert list(frame["gate"]) == ["a", "b"]  # sorted by gate
    b = row(frame, "b")
    assert (b["runs"], b["failures"]) == (3, 1)
    assert b["fail_rate"] == pytest.approx(1 / 3)
    assert b["closest_margin"] == pytest.approx(-0.05)
    assert b["median_margin"] == pytest.approx(0.10)
    # newest by timestamp (t=3), not the last in the input
    assert (b["last_value"], b["last_threshold"]) == (0.66, 0.70)
    assert b["flag"] == ""  # fewer than min_runs
    assert frame["runs"].dtype == "int64"
    assert frame["closest_margin"].dtype == "float64"


def test_never_near_threshold_needs_min_runs_and_every_margin_above_near_margin():
    far = [ev("loose", True, 0.4 + i / 100, t=i) for i in range(5)]
    assert row(summarise_gate_history(far), "loose")["flag"] == NEVER_NEAR
    assert row(summarise_gate_history(far[:4]), "loose")["flag"] == ""  # 4 runs < min_runs
    assert row(summarise_gate_history(far, min_runs=4), "loose")["flag"] == NEVER_NEAR
    # one evaluation within near_margin of its threshold clears the flag
    near = [*far, ev("loose", True, 0.1, t=9)]
    assert row(summarise_gate_history(near), "loose")["flag"] == ""  # 0.1 is not > 0.1
    assert row(summarise_gate_history(near, near_margin=0.05), "loose")["flag"] == NEVER_NEAR


def test_unknown_margins_leave_margin_columns_nan_and_never_flag_never_near():
    history = [ev("opaque", True, None, value=10.0, threshold=1.0, t=i) for i in range(6)]
    opaque = row(summarise_gate_history(history), "opaque")
    assert math.isnan(opaque["closest_margin"]) and math.isnan(opaque["median_margin"])
    assert (opaque["last_value"], opaque["last_threshold"]) == (10.0, 1.0)
    assert opaque["flag"] == ""
    # a single missing margin among far ones: direction unknown, so not "never near" either
    mixed = [ev("mixed", True, 0.9, t=i) for i in range(5)] + [ev("mixed", True, None, t=5)]
    m = row(summarise_gate_history(mixed), "mixed")
    assert m["closest_margin"] == pytest.approx(0.9)
    assert m["flag"] == ""
    # a NaN margin counts as unknown, not as a number
    nan = [ev("nan", True, 0.9, t=i) for i in range(5)] + [ev("nan", True, math.nan, t=5)]
    assert row(summarise_gate_history(nan), "nan")["flag"] == ""


def test_fails_most_of_the_time_wins_over_never_near():
    # margins that alone would mean "never near"; the failure rate decides (e.g. a WARN gate
    # whose verdict disagrees with its own margin)
    history = [ev("strict", False, 0.5, t=i) for i in range(4)] + [ev("strict", True, 0.5, t=4)]
    strict = row(summarise_gate_history(history), "strict")
    assert (strict["runs"], strict["failures"]) == (5, 4)
    assert strict["fail_rate"] == pytest.approx(0.8)
    assert strict["flag"] == FAILS_MOSTLY


def test_fail_rate_must_exceed_max_fail_rate():
    history = [ev("half", i % 2 == 0, -0.01 if i % 2 else 0.01, t=i) for i in range(6)]
    assert row(summarise_gate_history(history), "half")["flag"] == ""  # 0.5 is not > 0.5
    assert row(summarise_gate_history(history, max_fail_rate=0.4), "half")["flag"] == FAILS_MOSTLY


def test_missing_last_value_is_nan():
    frame = summarise_gate_history([ev("g", True, 0.2, value=None, threshold=None)])
    assert math.isnan(row(frame, "g")["last_value"])
    assert math.isnan(row(frame, "g")["last_threshold"])


@pytest.mark.parametrize(
    "kwargs", [{"min_runs": 0}, {"max_fail_rate": -0.1}, {"max_fail_rate": 1.5}]
)
def test_rejects_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        summarise_gate_history([], **kwargs)


def test_gate_names_disambiguate_only_clashing_check_names():
    a = dg.AssetCheckKey(dg.AssetKey("a"), "fresh")
    b = dg.AssetCheckKey(dg.AssetKey("b"), "fresh")
    c = dg.AssetCheckKey(dg.AssetKey("b"), "unique")
    assert gate_names([a, b, c]) == {a: "a:fresh", b: "b:fresh", c: "unique"}


def test_code_location_check_keys_include_checks_inside_assets():
    @dg.multi_asset(
        specs=[dg.AssetSpec("inner")],
        check_specs=[dg.AssetCheckSpec("inner_gate", asset="inner")],
    )
    def inner():
        yield dg.MaterializeResult(asset_key="inner")
        yield dg.AssetCheckResult(asset_key="inner", check_name="inner_gate", passed=True)

    repository = dg.Definitions(assets=[inner, toy_scores, toy_loose_gate]).get_repository_def()
    assert code_location_check_keys(repository) == {
        dg.AssetCheckKey(dg.AssetKey("inner"), "inner_gate"),
        toy_loose_gate.check_key,
    }


def test_the_project_code_location_gates_are_all_found():
    from ml_assets.data.gates import BATCH_GATES

    repository = code_location().get_repository_def()
    keys = code_location_check_keys(repository)
    assert set(repository.asset_checks_defs_by_key) <= keys
    assert set(BATCH_GATES) <= {key.name for key in keys}


# --- the asset, on a real instance ----------------------------------------------------------


@dg.asset
def toy_scores() -> int:
    return 1


@dg.asset_check(asset=toy_scores)
def toy_loose_gate() -> dg.AssetCheckResult:
    # value 0.99 against a floor of 0.5: 98% of the threshold to spare, every time
    return dg.AssetCheckResult(
        passed=True, metadata={"value": 0.99, "threshold": 0.5, "margin": 0.98}
    )


@dg.asset_check(asset=toy_scores)
def toy_failing_gate() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"value": 0.4, "threshold": 0.5, "margin": -0.2},
    )


@dg.asset_check(asset=toy_scores)
def toy_opaque_gate() -> dg.AssetCheckResult:
    # value and threshold but no margin: the direction is unknown, so never "never near"
    return dg.AssetCheckResult(passed=True, metadata={"value": 100, "threshold": 1})


@dg.asset_check(asset=toy_scores)
def toy_broken_gate() -> dg.AssetCheckResult:
    raise RuntimeError("this gate never produces a verdict")


TOY_CHECKS = [toy_loose_gate, toy_failing_gate, toy_opaque_gate, toy_broken_gate]
TOY_RUNS = 6


def test_gate_history_summarises_the_instance_check_history(tmp_path, instance):
    for _ in range(TOY_RUNS):
        result = dg.materialize([toy_scores, *TOY_CHECKS], instance=instance, raise_on_error=False)
        assert not result.success  # toy_broken_gate raises: no evaluation, left out below

    project = make_project(tmp_path / "p")
    result = dg.materialize(
        [gate_history, toy_scores, *TOY_CHECKS],
        selection=[gate_history],
        instance=instance,
        resources={"pipeline": project.pipeline},
    )
    assert result.success
    metadata = result.asset_materializations_for_node("gate_history")[0].metadata
    assert metadata["gates"].value == 3  # the broken gate has no evaluation
    assert metadata["flagged"].value == 2
    assert metadata["evaluations"].value == 3 * TOY_RUNS
    # materialize() runs in process, with no repository on the context: the gates come from
    # the instance's own check evaluations
    assert metadata["gates_from"].value == "instance history"
    assert "toy_loose_gate" in metadata["summary"].value

    csv_path = project.pipeline.reports_dir / "gates" / "gate_history.csv"
    assert metadata["csv"].value == str(csv_path)
    assert (csv_path.with_suffix(".md")).read_text().startswith("| gate")
    frame = pd.read_csv(csv_path, keep_default_na=False, na_values=[""])
    frame["flag"] = frame["flag"].fillna("")
    assert list(frame["gate"]) == ["toy_failing_gate", "toy_loose_gate", "toy_opaque_gate"]
    loose, failing, opaque = (
        row(frame, "toy_loose_gate"),
        row(frame, "toy_failing_gate"),
        row(frame, "toy_opaque_gate"),
    )
    assert (loose["runs"], loose["failures"], loose["flag"]) == (TOY_RUNS, 0, NEVER_NEAR)
    assert loose["closest_margin"] == pytest.approx(0.98)
    assert (loose["last_value"], loose["last_threshold"]) == (0.99, 0.5)
    assert (failing["runs"], failing["failures"]) == (TOY_RUNS, TOY_RUNS)
    assert failing["fail_rate"] == 1.0 and failing["flag"] == FAILS_MOSTLY
    assert failing["closest_margin"] == pytest.approx(-0.2)
    assert (opaque["runs"], opaque["flag"]) == (TOY_RUNS, "")
    assert math.isnan(opaque["closest_margin"])
    assert (opaque["last_value"], opaque["last_threshold"]) == (100.0, 1.0)


def test_gate_history_with_no_history_writes_an_empty_report(tmp_path, instance):
    project = make_project(tmp_path / "p")
    result = dg.materialize(
        [gate_history, toy_scores, *TOY_CHECKS],
        selection=[gate_history],
        instance=instance,
        resources={"pipeline": project.pipeline},
    )
    assert result.success
    metadata = result.asset_materializations_for_node("gate_history")[0].metadata
    assert (metadata["gates"].value, metadata["flagged"].value) == (0, 0)
    csv_path = project.pipeline.reports_dir / "gates" / "gate_history.csv"
    assert list(pd.read_csv(csv_path).columns) == COLUMNS


def test_gate_history_job_selects_only_the_review_assets(tmp_path):
    defs = dg.Definitions(
        assets=[gate_history, pipeline_health, toy_scores, *TOY_CHECKS],
        jobs=[gate_history_job],
        resources={"pipeline": make_project(tmp_path / "p").pipeline},
    )
    job = defs.resolve_job_def("gate_history_job")
    assert job.asset_layer.executable_asset_keys == {
        dg.AssetKey("gate_history"),
        dg.AssetKey("pipeline_health"),
    }
    assert not job.asset_layer.asset_graph.asset_check_keys  # it runs none of the gates


# A code location of its own: runs launched from a reconstructable repository (as `dagster dev`
# and the daemon do) carry it on the context, so the asset lists every check it defines.
toy_location = dg.Definitions(
    assets=[gate_history, pipeline_health, toy_scores, *TOY_CHECKS],
    jobs=[gate_history_job],
    resources={"pipeline": PipelineResource()},  # config from $ML_ASSETS_CONFIG
    executor=dg.in_process_executor,
)


def test_gate_history_reads_the_checks_of_its_code_location(tmp_path, instance, monkeypatch):
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    for _ in range(TOY_RUNS):
        dg.materialize([toy_scores, *TOY_CHECKS], instance=instance, raise_on_error=False)
    project = make_project(tmp_path / "p")
    monkeypatch.setenv("ML_ASSETS_CONFIG", str(project.config_path))
    repository = ReconstructableRepository.for_module(__name__, "toy_location", str(Path.cwd()))
    job = repository.get_reconstructable_job("gate_history_job")
    with dg.execute_job(job, instance=instance) as result:
        assert result.success
        metadata = result.asset_materializations_for_node("gate_history")[0].metadata
    assert metadata["gates_from"].value == "code location"
    assert (metadata["gates"].value, metadata["flagged"].value) == (3, 2)
