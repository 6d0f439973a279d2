"""Which kill is it: the pod object decides what the sidecar may do (pure, table-driven)."""

from __future__ import annotations

from typing import Any

import pytest

from quiesce.sidecar import kubeapi, maintenance, status, trigger


def pod(
    *,
    deleting: bool = False,
    phase: str = "Running",
    conditions: list[dict[str, str]] | None = None,
    app: dict[str, Any] | None = None,
    grace: int | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web-0", "uid": "u-1"}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-03T07:00:00Z"
    if grace is not None:
        meta["deletionGracePeriodSeconds"] = grace
    cs = {
        "name": "app",
        "containerID": "containerd://aaa",
        "state": {"running": {}},
        "ready": True,
        "restartCount": 0,
        **(app or {}),
    }
    return {
        "metadata": meta,
        "status": {
            "phase": phase,
            "conditions": conditions or [],
            "containerStatuses": [
                cs,
                {"name": "quiesce-sidecar", "containerID": "containerd://s", "restartCount": 2},
            ],
        },
    }


@pytest.mark.parametrize(
    ("obj", "kind"),
    [
        (pod(deleting=True), "deletion"),
        (pod(deleting=True, phase="Failed"), "deletion"),
        (pod(phase="Failed"), "final"),
        (pod(conditions=[{"type": "DisruptionTarget", "status": "True"}]), "final"),
        (
            pod(conditions=[{"type": "DisruptionTarget", "status": "False", "reason": "x"}]),
            "restart",
        ),
        (pod(), "restart"),
        (pod(phase="Pending"), "restart"),
    ],
)
def test_each_pod_state_is_one_kind_of_kill(obj: dict[str, Any], kind: str) -> None:
    assert trigger.classify(kubeapi.pod_facts(obj)).kind == kind


def test_an_unreadable_pod_is_handled_like_a_deletion() -> None:
    got = trigger.classify(None, error="connection refused")
    assert (got.kind, got.reason, got.deregisters) == ("unknown", "connection refused", True)


@pytest.mark.parametrize(
    ("kind", "deregisters"),
    [("deletion", True), ("final", True), ("unknown", True), ("restart", False)],
)
def test_only_a_pod_that_runs_again_keeps_its_registration(kind: Any, deregisters: bool) -> None:
    assert trigger.Classification(kind, "").deregisters is deregisters


def test_the_disruption_reason_is_kept() -> None:
    cond = {"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet"}
    facts = kubeapi.pod_facts(pod(conditions=[cond]))
    assert trigger.classify(facts).reason == "DisruptionTarget condition (TerminationByKubelet)"


@pytest.mark.parametrize(
    ("kind", "pod_grace", "probe_grace", "expected"),
    [
        ("deletion", None, None, (30, "plan")),
        ("deletion", 10, None, (10, "deletionGracePeriodSeconds")),
        ("deletion", 45, 5, (30, "plan")),  # a probe's grace is not a deletion's
        ("restart", None, 5, (5, "probe terminationGracePeriodSeconds")),
        ("restart", None, 60, (30, "plan")),
        ("restart", 3, 5, (3, "deletionGracePeriodSeconds")),
        ("unknown", None, 5, (30, "plan")),
    ],
)
def test_the_deadline_is_the_shortest_budget_that_applies(
    kind: Any, pod_grace: int | None, probe_grace: int | None, expected: tuple[int, str]
) -> None:
    got = trigger.deadline_seconds(
        kind, plan_grace=30, pod_grace=pod_grace, probe_grace=probe_grace
    )
    assert got == expected


def test_the_app_is_stopped_once_the_killed_container_no_longer_runs() -> None:
    before = {"app": "aaa"}
    running = kubeapi.pod_facts(pod())
    exited = kubeapi.pod_facts(pod(app={"state": {"terminated": {}}, "ready": False}))
    replaced = kubeapi.pod_facts(pod(app={"containerID": "containerd://bbb", "restartCount": 1}))
    assert not trigger.app_stopped(running, before=before, targets=("app",))
    assert trigger.app_stopped(exited, before=before, targets=("app",))
    assert trigger.app_stopped(replaced, before=before, targets=())


def test_the_app_is_back_when_a_new_container_runs_and_is_ready() -> None:
    before = {"app": "aaa"}
    same = kubeapi.pod_facts(pod())
    unready = kubeapi.pod_facts(pod(app={"containerID": "containerd://bbb", "ready": False}))
    back = kubeapi.pod_facts(pod(app={"containerID": "containerd://bbb", "restartCount": 1}))
    assert not trigger.app_back(same, before=before, targets=("app",))
    assert not trigger.app_back(unready, before=before, targets=("app",))
    assert trigger.app_back(back, before=before, targets=("app",))
    # the sidecar's own container is never the app, and no app is never "back"
    assert trigger.app_containers(back, ()) == ["app"]
    assert not trigger.app_back(kubeapi.pod_facts({}), before={}, targets=())
    # a restarted sidecar, knowing no earlier container, waits for running and ready
    assert trigger.app_back(same, before={}, targets=())


def test_the_sidecars_own_restarts_are_read_from_either_list() -> None:
    assert kubeapi.pod_facts(pod()).sidecar_restarts == 2
    native = {"status": {"initContainerStatuses": [{"name": "quiesce-sidecar", "restartCount": 1}]}}
    assert kubeapi.pod_facts(native).sidecar_restarts == 1


@pytest.mark.parametrize(
    ("check", "ours"),
    [
        ({"CheckID": "_service_maintenance:web-1", "Notes": maintenance.reason_for("u-1")}, True),
        ({"CheckID": "_service_maintenance:web-1", "Notes": maintenance.reason_for("u-2")}, False),
        ({"CheckID": "_service_maintenance:web-1", "Notes": "ops: broken disk u-1"}, False),
        ({"CheckID": "service:web-1", "Notes": maintenance.reason_for("u-1")}, False),
    ],
)
def test_only_maintenance_whose_reason_names_this_pod_is_ours(
    check: dict[str, str], ours: bool
) -> None:
    assert maintenance.is_ours(check, "u-1") is ours
    assert maintenance.is_ours(check, "") is False


def test_the_history_of_a_timeline_is_brief_and_names_kind_outcome_and_undo() -> None:
    tl = status.Timeline(trigger="prestop")
    tl.classification = trigger.classify(kubeapi.pod_facts(pod())).as_json()
    tl.undid.append({"action": "maintenance off", "id": "web-1"})
    assert tl.brief()["outcome"] == "running"
    tl.finish()
    brief = tl.brief()
    assert (brief["kind"], brief["outcome"], brief["undid"][0]["id"]) == ("restart", "ok", "web-1")
    for _ in range(status.UNDID_KEPT * 3):
        tl.undid.append({"action": "reasserted"})
    assert len(tl.as_json()["undid"]) == status.UNDID_KEPT
