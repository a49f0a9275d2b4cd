"""Known answers for the model-aware checks' rules (delivery/readiness): which changes between
production's and the candidate's interface break a client, and the cold-start budgets.

The checks' wiring (a real registry, a fresh process, staging not moving) is in
test_evaluation_checks.py, on its staged project.
"""

from __future__ import annotations

import pytest

from ml_assets.data.contract import DataContract, NumericColumn
from ml_assets.delivery.policy import ReadinessSettings
from ml_assets.delivery.readiness import (
    Break,
    ColdLoad,
    cold_load_criteria,
    contract_breaks,
    dropped_inputs,
    signature_breaks,
)
from ml_assets.evaluation.gates import decide


def _column(name: str, kind: str, required: bool = True) -> dict:
    return {"name": name, "type": kind, "required": required}


def _contract(**changes) -> DataContract:
    base = {
        "name": "t",
        "id_column": "id",
        "timestamp_column": "ts",
        "target_column": "y",
        "numeric_columns": {
            "income": NumericColumn(min=0, max=100),
            "years": NumericColumn(min=0, max=60, nullable=True),
        },
        "categorical_columns": {"region": ["north", "south"], "sex": ["f", "m"]},
        "sensitive_columns": ["sex"],
    }
    base.update(changes)
    return DataContract(**base)


def test_the_same_signature_breaks_nothing():
    inputs = [_column("income", "any"), _column("region", "string")]
    assert signature_breaks(inputs, inputs) == []


def test_a_new_required_input_breaks_clients_and_an_optional_one_does_not():
    before = [_column("income", "double")]
    after = [_column("income", "double"), _column("score", "double")]
    assert signature_breaks(before, after) == [
        Break("score", "absent", "double", "required, and clients do not send it")
    ]
    optional = [_column("income", "double"), _column("score", "double", required=False)]
    assert signature_breaks(before, optional) == []


def test_types_may_widen_but_not_narrow():
    assert signature_breaks([_column("n", "integer")], [_column("n", "double")]) == []
    assert signature_breaks([_column("n", "long")], [_column("n", "any")]) == []
    assert signature_breaks([_column("n", "double")], [_column("n", "integer")]) == [
        Break("n", "double", "integer", "a double value is not a valid integer")
    ]
    assert signature_breaks([_column("c", "string")], [_column("c", "double")]) == [
        Break("c", "string", "double", "a string value is not a valid double")
    ]


def test_an_optional_input_made_required_breaks_clients():
    before = [_column("n", "double", required=False)]
    assert signature_breaks(before, [_column("n", "double")]) == [
        Break("n", "optional", "required", "required now; clients may leave it out")
    ]


def test_an_input_production_read_and_the_candidate_ignores_breaks_nothing():
    before = [_column("income", "any"), _column("region", "string")]
    assert signature_breaks(before, [_column("income", "any")]) == []
    old = _contract()
    new = _contract(categorical_columns={"sex": ["f", "m"]})
    assert contract_breaks(old, new) == []
    assert dropped_inputs(old, new) == ["region"]


def test_the_same_contract_and_a_wider_one_break_nothing():
    old = _contract()
    assert contract_breaks(old, old) == []
    wider = _contract(
        numeric_columns={
            "income": NumericColumn(min=None, max=200),
            "years": NumericColumn(min=0, max=60, nullable=True),
        },
        categorical_columns={"region": ["north", "south", "east"], "sex": ["f", "m"]},
    )
    assert contract_breaks(old, wider) == []


def test_a_narrower_contract_names_each_field_it_now_refuses():
    old = _contract()
    narrower = _contract(
        numeric_columns={
            "income": NumericColumn(min=10, max=100),
            "years": NumericColumn(min=0, max=60, nullable=False),
        },
        categorical_columns={"region": ["north"], "sex": ["f", "m"]},
    )
    assert contract_breaks(old, narrower) == [
        Break(
            "income",
            "[0, 100]",
            "[10, 100]",
            "narrower range: values production accepts are refused",
        ),
        Break("years", "nullable", "not nullable", "refuses nulls production accepts"),
        Break(
            "region",
            "2 categories",
            "1 categories",
            "refuses categories production accepts: 'south'",
        ),
    ]


def test_a_new_feature_or_a_changed_kind_breaks_clients():
    old = _contract()
    new = _contract(
        numeric_columns={"income": NumericColumn(min=0, max=100), "debt": NumericColumn()},
        categorical_columns={"region": ["north", "south"], "years": ["0-5"], "sex": ["f", "m"]},
    )
    assert contract_breaks(old, new) == [
        Break("debt", "absent", "numeric", "clients do not send it"),
        Break("years", "numeric", "categorical", "changed kind"),
    ]


def test_a_sensitive_column_is_no_input_of_either_model():
    # `sex` is sensitive in both: never a model input, so its categories do not matter.
    old = _contract()
    new = _contract(categorical_columns={"region": ["north", "south"], "sex": ["f"]})
    assert contract_breaks(old, new) == []


def _load(**changes) -> ColdLoad:
    figures = {
        "model_uri": "models:/m/2",
        "load_cpu_seconds": 3.5,
        "load_wall_seconds": 9.0,
        "peak_resident_mb": 330.0,
        "warmup_requests": 20,
        "warmup_answered": 20,
        "first_request_ms": 4.0,
        "warm_p50_ms": 1.5,
        "example_rows": 3,
    }
    figures.update(changes)
    return ColdLoad(**figures)


def test_a_cold_load_within_its_budgets_passes_whatever_the_wall_time():
    policy = ReadinessSettings(max_load_cpu_seconds=30, max_resident_mb=1024)
    decision = decide("cold", cold_load_criteria(_load(load_wall_seconds=600.0), policy))
    assert decision.passed
    assert decision.value == 330.0  # the closest criterion: memory, 330 of 1024 MiB


def test_a_cold_load_fails_on_cpu_memory_or_an_unanswered_request():
    policy = ReadinessSettings(max_load_cpu_seconds=3.0, max_resident_mb=1024)
    slow = decide("cold", cold_load_criteria(_load(), policy))
    assert not slow.passed and slow.reason.startswith("load_cpu_seconds = 3.5 breaks <= 3")
    policy = ReadinessSettings(max_load_cpu_seconds=30, max_resident_mb=256)
    big = decide("cold", cold_load_criteria(_load(), policy))
    assert not big.passed and big.reason.startswith("peak_resident_mb = 330 breaks <= 256")
    mute = decide("cold", cold_load_criteria(_load(warmup_answered=19), ReadinessSettings()))
    assert not mute.passed and mute.reason.startswith("warmup_answered = 19 breaks >= 20")


def test_a_version_the_registry_does_not_hold_is_a_failed_cold_start(tmp_path):
    """The registry lookup, in the caller before any child starts, names the missing version."""
    from ml_assets.delivery.readiness import measure_cold_load
    from ml_assets_tests.conftest import _seed_mlflow_store

    _seed_mlflow_store(tmp_path)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(RuntimeError, match=r"models:/absent/3 is not in the registry"):
        measure_cold_load(store, "absent", "3", warmup_requests=1)
