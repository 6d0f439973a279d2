"""The plan travels to the sidecar as JSON: versioned, strict, and with a stable hash."""

from __future__ import annotations

import dataclasses
import json

import pytest

from quiesce import plan

from .specs import web, web_with_prestop


def default_plan() -> plan.ShutdownPlan:
    return plan.build_plan({"quiesce.dev/inject": "true"}, web())


def format_error(text: str) -> list[str]:
    with pytest.raises(plan.PlanFormatError) as caught:
        plan.ShutdownPlan.from_json(text)
    return [str(error) for error in caught.value.errors]


def test_round_trip_keeps_every_field_including_a_kept_hook() -> None:
    p = plan.build_plan(
        {"quiesce.dev/signal": "QUIT", "quiesce.dev/consul-service": "web"},
        web_with_prestop(
            {"httpGet": {"path": "/d", "port": 8080, "httpHeaders": [{"name": "A", "value": "b"}]}}
        ),
    )
    assert plan.ShutdownPlan.from_json(p.to_json()) == p


def test_the_json_is_canonical_and_carries_the_version() -> None:
    text = default_plan().to_json()
    data = json.loads(text)
    assert data["version"] == 1
    assert text == json.dumps(data, sort_keys=True, separators=(",", ":"))
    assert "notes" not in data


def test_the_hash_is_pinned_because_a_change_rolls_every_injected_workload() -> None:
    # If this fails, the plan format changed: every workload will be re-injected on upgrade.
    assert default_plan().plan_hash() == "d1d40fa2dcc98185"


def test_the_hash_changes_with_any_budget_and_ignores_notes() -> None:
    p = default_plan()
    assert dataclasses.replace(p, notes=("x",)).plan_hash() == p.plan_hash()
    changed = dataclasses.replace(p, converge_max=19.0, margin=11.0)
    assert changed.plan_hash() != p.plan_hash()


def test_an_unknown_version_is_refused_clearly() -> None:
    data = json.loads(default_plan().to_json())
    data["version"] = 2
    assert format_error(json.dumps(data)) == [
        'plan.version: "2" is not a known plan format; expected 1 (this quiesce reads plan '
        "format 1; run the same quiesce version in the operator and the sidecar)"
    ]


def test_missing_unknown_and_mistyped_fields_are_all_reported() -> None:
    data = json.loads(default_plan().to_json())
    del data["margin"]
    data["extra"] = 1
    assert format_error(json.dumps(data)) == [
        'plan.extra: "1" is an unknown field; expected no such field',
        'plan.margin: "" is missing; expected the field to be present',
    ]
    data = json.loads(default_plan().to_json())
    data["port"] = "7979"
    data["containers"] = "app"
    assert format_error(json.dumps(data)) == [
        'plan.port: "7979" has the wrong type; expected an integer',
        'plan.containers: "app" has the wrong type; expected a list of strings',
    ]


def test_a_plan_whose_budget_does_not_add_up_is_refused() -> None:
    data = json.loads(default_plan().to_json())
    data["margin"] = 1.0
    (message,) = format_error(json.dumps(data))
    assert "does not add up to the grace 35s" in message


@pytest.mark.parametrize("text", ["", "null", "[]", "{", '"x"', "{}", '{"version": true}'])
def test_garbage_is_a_format_error(text: str) -> None:
    with pytest.raises(plan.PlanFormatError):
        plan.ShutdownPlan.from_json(text)


def test_a_plan_cannot_be_built_without_its_identity() -> None:
    with pytest.raises(ValueError, match="does not add up"):
        dataclasses.replace(default_plan(), margin=0.0)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("port", 0, 'plan.port: "0" is out of range; expected a port from 1 to 65535'),
        ("signal", 99, 'plan.signal: "99" is out of range; expected a signal number from 1 to 64'),
        (
            "sidecar_mode",
            "pod",
            'plan.sidecar_mode: "pod" is not a choice; expected auto or native or container',
        ),
    ],
)
def test_out_of_range_values_are_refused(field: str, value: object, message: str) -> None:
    data = json.loads(default_plan().to_json())
    data[field] = value
    assert format_error(json.dumps(data)) == [message]
