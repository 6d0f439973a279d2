"""``quiesce status``'s pure parts: targets, selectors, the operator's view, the table.

Against the rig's real API server (a rollout's Events, table and json): tests/e2e/test_events.py.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from quiesce import annotations as keys
from quiesce import contract
from quiesce.commands import status


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("deployment/web", ("deployments", "web")),
        ("deploy/web", ("deployments", "web")),
        ("StatefulSet/db", ("statefulsets", "db")),
        ("ds/agent", ("daemonsets", "agent")),
    ],
)
def test_targets_are_spelled_as_kubectl_spells_them(target: str, expected: tuple[str, str]) -> None:
    assert status.parse_target(target) == expected


def test_an_unknown_kind_is_refused_with_exit_2_before_any_cluster_is_asked() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "quiesce", "status", "pod/web", "--kubeconfig", "/nonexistent"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "expected KIND/NAME with KIND one of deployment, statefulset, daemonset" in done.stderr


def test_a_workload_selector_becomes_the_label_selector_of_its_events() -> None:
    selector = {
        "matchLabels": {"app": "web", "tier": "front"},
        "matchExpressions": [
            {"key": "track", "operator": "In", "values": ["stable", "canary"]},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    }
    assert status.selector_string(selector) == "app=web,tier=front,track in (stable,canary),!legacy"


def test_the_operator_view_shows_injection_hash_and_errors() -> None:
    ok = {
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "annotations": {
                keys.INJECT: "true",
                keys.STATE_PLAN_HASH: "abc",
                keys.STATE_STATUS: "ok: injected plan abc, grace 29s, native sidecar",
            },
        },
    }
    view = status.operator_view(ok)
    assert (view["injected"], view["planHash"], view["errors"]) == (True, "abc", [])
    assert view["status"] == "injected plan abc, grace 29s, native sidecar"
    bad = {
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "annotations": {keys.INJECT: "true", keys.STATE_STATUS: "error: bad converge-max"},
        },
    }
    assert status.operator_view(bad)["errors"] == ["bad converge-max"]
    assert status.operator_view(bad)["injected"] is False


def test_a_termination_comes_from_the_events_facts_and_prints_as_a_row() -> None:
    facts = {
        "kind": "deletion",
        "convergence": {"reason": "quiet", "seconds": 2.5},
        "connections_after_deregistration": 3,
        "deregister": {"seconds": 0.1, "removed": ["web-1"]},
    }
    event = {
        "metadata": {"annotations": {contract.EVENT_FACTS_ANNOTATION: json.dumps(facts)}},
        "involvedObject": {"kind": "Pod", "name": "web-1"},
        "lastTimestamp": "2026-12-03T15:42:13Z",
        "type": "Normal",
        "reason": contract.EVENT_QUIESCED,
    }
    t = status.termination(event)
    assert (t["pod"], t["convergence"], t["convergenceSeconds"]) == ("web-1", "quiet", 2.5)
    assert t["connectionsAfterDeregistration"] == 3 and t["removed"] == ["web-1"]
    report = {
        "namespace": "shop",
        "workloads": [
            {"kind": "Deployment", "name": "web", "injected": True, "planHash": "abc",
             "status": "injected", "errors": [], "terminations": [t]},
        ],
    }  # fmt: skip
    lines = status.render_table(report).splitlines()
    assert lines[0].split() == ["WORKLOAD", "INJECTED", "PLAN", "STATUS"]
    assert lines[1].split() == ["deployment/web", "yes", "abc", "injected"]
    assert lines[-1].split() == [
        "deployment/web", "web-1", "2026-12-03T15:42:13Z", "Quiesced", "quiet", "2.50s", "3"
    ]  # fmt: skip
    empty = status.render_table({"namespace": "shop", "workloads": []})
    assert empty == "No quiesce workloads or terminations in namespace shop."
