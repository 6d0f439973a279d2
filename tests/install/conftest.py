"""The rig for the install tests: no quiesce installed, its nodes cordoned.

The rig has no kubelet unless its node agent runs, and a pod bound to a node waits
for that node's kubelet to confirm its deletion. Cordoned, the operator's pods stay
Pending (unscheduled), and an unscheduled pod is deleted at once.
"""

from __future__ import annotations

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


@pytest.fixture
def cluster(rig_instance: rig.Rig) -> Iterator[rig.Rig]:
    """The rig with no quiesce installed, its nodes cordoned for the test.

    Other tests of the session (the rollout demo, the operator's) apply quiesce's
    cluster-wide RBAC and CRDs from manifests/rbac/ and leave them: they are saved,
    removed for the test, and put back after it.
    """
    if not namespace_gone(rig_instance, NAMESPACE):
        pytest.fail(f"namespace {NAMESPACE} already exists on this shared rig: run tests/install "
                    "before the tests that install the operator's RBAC there")  # fmt: skip
    present = [
        o for o in CLUSTER_OBJECTS
        if rig_instance.kubectl("get", o, "--ignore-not-found", "-o", "name").stdout.strip()
    ]  # fmt: skip
    saved = _saved(rig_instance, present) if present else []
    if present:
        rig_instance.kubectl("delete", "--wait", *present, timeout=120)
    nodes = json.loads(rig_instance.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    cordoned = [n["metadata"]["name"] for n in nodes if not n["spec"].get("unschedulable")]
    for node in cordoned:
        rig_instance.kubectl("cordon", node)
    try:
        yield rig_instance
    finally:
        for node in cordoned:
            rig_instance.kubectl("uncordon", node, check=False)
        crds = [o for o in saved if o["kind"] == "CustomResourceDefinition"]
        rest = [o for o in saved if o["kind"] != "CustomResourceDefinition"]
        for batch in (crds, rest):
            if batch:
                rig_instance.kubectl(
                    "create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                           "items": batch})
                )  # fmt: skip
                if batch is crds:
                    rig_instance.kubectl(
                        "wait", "--for=condition=Established", "--timeout=30s",
                        *(f"crd/{o['metadata']['name']}" for o in crds),
                    )  # fmt: skip
