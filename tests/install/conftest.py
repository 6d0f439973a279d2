"""The rig for the install tests: no quiesce installed, its nodes cordoned.

The rig has no kubelet unless its node agent runs, and a pod bound to a node waits
for that node's kubelet to confirm its deletion. Cordoned, the operator's pods stay
Pending (unscheduled), and an unscheduled pod is deleted at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from install.chartkit import CLUSTER_OBJECTS
from quiesce.rig import rig


@pytest.fixture
def cluster(rig_instance: rig.Rig) -> Iterator[rig.Rig]:
    """The rig with no quiesce installed, its nodes cordoned for the test."""
    present = [
        o for o in CLUSTER_OBJECTS
        if rig_instance.kubectl("get", o, "--ignore-not-found", "-o", "name").stdout.strip()
    ]  # fmt: skip
    if present:
        pytest.fail(
            "quiesce's cluster-wide objects are already on this shared rig (another test "
            f"applied them: {', '.join(present)}); run tests/install first or alone"
        )
    nodes = json.loads(rig_instance.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    cordoned = [n["metadata"]["name"] for n in nodes if not n["spec"].get("unschedulable")]
    for node in cordoned:
        rig_instance.kubectl("cordon", node)
    try:
        yield rig_instance
    finally:
        for node in cordoned:
            rig_instance.kubectl("uncordon", node, check=False)
