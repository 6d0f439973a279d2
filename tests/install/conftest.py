"""The rig for the install tests: no quiesce installed; nodes cordoned, or pods running.

``cluster``: a pod bound to a node waits for that node's kubelet (the rig's node
agent) to confirm its deletion, and other tests may have started the agent or
not. Cordoned, the operator's pods stay Pending (unscheduled), and an unscheduled
pod is deleted at once: the tests check what is installed and removed.
``running_cluster``: the node agent runs the chart's pods, operator included.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from install.chartkit import CLUSTER_OBJECTS, NAMESPACE, namespace_gone
from quiesce.rig import rig

#: What another test may have left on the shared rig and must come back after ours.
_VOLATILE_METADATA = ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation")


def _saved(r: rig.Rig, names: list[str]) -> list[dict[str, Any]]:
    """The objects (and the peering objects of the CRDs), ready to be created again."""
    kinds = list(names)
    if any(n.startswith("customresourcedefinition/") for n in names):
        kinds += ["clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"]
    items = []
    for kind in kinds:
        if "/" in kind:
            found = [json.loads(r.kubectl("get", kind, "-o", "json").stdout)]
        else:
            found = json.loads(r.kubectl("get", kind, "-A", "-o", "json").stdout)["items"]
        for item in found:
            for key in _VOLATILE_METADATA:
                item["metadata"].pop(key, None)
            if item["kind"] == "CustomResourceDefinition":
                item.pop("status", None)
            items.append(item)
    return items


@contextlib.contextmanager
def _without_quiesce(r: rig.Rig) -> Iterator[None]:
    """No quiesce on the cluster during the block.

    Other tests of the session (the rollout demo, the operator's) apply quiesce's
    cluster-wide RBAC and CRDs from manifests/rbac/ and leave them: they are saved,
    removed for the block, and put back after it.
    """
    if not namespace_gone(r, NAMESPACE):
        pytest.fail(f"namespace {NAMESPACE} already exists on this shared rig: run tests/install "
                    "before the tests that install the operator's RBAC there")  # fmt: skip
    present = [
        o for o in CLUSTER_OBJECTS
        if r.kubectl("get", o, "--ignore-not-found", "-o", "name").stdout.strip()
    ]  # fmt: skip
    saved = _saved(r, present) if present else []
    if present:
        r.kubectl("delete", "--wait", *present, timeout=120)
    try:
        yield
    finally:
        crds = [o for o in saved if o["kind"] == "CustomResourceDefinition"]
        rest = [o for o in saved if o["kind"] != "CustomResourceDefinition"]
        for batch in (crds, rest):
            if batch:
                r.kubectl(
                    "create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                           "items": batch})
                )  # fmt: skip
                if batch is crds:
                    r.kubectl(
                        "wait", "--for=condition=Established", "--timeout=30s",
                        *(f"crd/{o['metadata']['name']}" for o in crds),
                    )  # fmt: skip


@pytest.fixture
def cluster(rig_instance: rig.Rig) -> Iterator[rig.Rig]:
    """The rig with no quiesce installed, its nodes cordoned for the test."""
    with _without_quiesce(rig_instance):
        nodes = json.loads(rig_instance.kubectl("get", "nodes", "-o", "json").stdout)["items"]
        cordoned = [n["metadata"]["name"] for n in nodes if not n["spec"].get("unschedulable")]
        for node in cordoned:
            rig_instance.kubectl("cordon", node)
        try:
            yield rig_instance
        finally:
            for node in cordoned:
                rig_instance.kubectl("uncordon", node, check=False)


@pytest.fixture
def running_cluster(agent_rig: rig.Rig) -> Iterator[rig.Rig]:
    """The rig with no quiesce installed and its node agent running: pods run, as local
    processes (the chart's image is this checkout's ``quiesce``)."""
    with _without_quiesce(agent_rig):
        yield agent_rig
