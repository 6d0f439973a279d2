"""The work queue: one entry per workload, the newest copy, compact; workers survive bugs."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import kopf
import pytest

from quiesce.operator import resources, workqueue

DEPLOYMENT = resources.WORKLOADS[0]


def workload(uid: str, generation: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": f"web-{uid}",
            "namespace": "shop",
            "uid": uid,
            "generation": generation,
            "managedFields": [
                {"manager": "kubectl", "operation": "Apply", "fieldsV1": {"f:spec": {}}},
                {"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {}},
            ],
        },
        "spec": {"replicas": 1},
        "status": {"replicas": 1, "conditions": [{"type": "Available"}]},
    }


def test_the_copy_keeps_what_decisions_read_and_drops_the_rest() -> None:
    obj = workload("a", 1)
    kept = json.loads(workqueue.compact(obj))
    assert "status" not in kept
    assert [e["manager"] for e in kept["metadata"]["managedFields"]] == ["kubectl"]
    assert kept["spec"] == obj["spec"] and kept["metadata"]["uid"] == "a"
    assert len(obj["metadata"]["managedFields"]) == 2  # the caller's object is untouched
    no_apply = workload("b", 1)
    no_apply["metadata"]["managedFields"].pop(0)
    assert "managedFields" not in json.loads(workqueue.compact(no_apply))["metadata"]


def test_kopfs_body_is_copied_through_the_public_mapping_api() -> None:
    raw = {"metadata": {"name": "web", "annotations": {"a": "b"}}, "spec": {"replicas": 1}}
    plain = json.loads(workqueue.compact(kopf.Body(raw)))
    assert plain == raw and type(plain) is dict
    plain["metadata"]["annotations"]["a"] = "changed"
    assert raw["metadata"]["annotations"]["a"] == "b"


async def test_a_newer_event_replaces_the_pending_copy_in_its_place() -> None:
    queue = workqueue.WorkQueue()
    queue.put(DEPLOYMENT, "a", workload("a", 1))
    queue.put(DEPLOYMENT, "b", workload("b", 1))
    queue.put(DEPLOYMENT, "a", workload("a", 2))
    queue.put(DEPLOYMENT, "c", workload("c", 1))
    queue.discard("c")
    assert len(queue) == 2
    taken = [await queue.get(), await queue.get()]
    assert [(o["metadata"]["uid"], o["metadata"]["generation"]) for _, o in taken] == [
        ("a", 2),
        ("b", 1),
    ]
    assert len(queue) == 0


async def test_workers_reconcile_everything_even_after_one_object_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue = workqueue.WorkQueue()
    seen: list[str] = []

    async def reconcile(kind: resources.Kind, obj: dict[str, Any]) -> None:
        uid = obj["metadata"]["uid"]
        if uid == "bad":
            raise ValueError("a bug")
        seen.append(uid)

    queue.start(2, reconcile)
    for uid in ("x", "bad", "y", "z"):
        queue.put(DEPLOYMENT, uid, workload(uid, 1))
    with caplog.at_level(logging.ERROR):
        for _ in range(100):
            if len(seen) == 3:
                break
            await asyncio.sleep(0.01)
    await queue.stop()
    assert sorted(seen) == ["x", "y", "z"]
    assert "Reconciling Deployment shop/web-bad failed." in caplog.text
