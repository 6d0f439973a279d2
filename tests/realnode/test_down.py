"""A real node whose starter is gone is still removed whole by ``python -m quiesce.rig down``.

``up --real-nodes 1`` leaves a rig and a real node running after its process
exits (as a crashed test would); ``down`` finds the node's processes by its
network namespace and its cgroups, removes the cgroups and restores the
host's kernel settings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from quiesce.rig import binaries, rig
from quiesce.rig.realnode import host
from quiesce.rig.realnode.cgroups import cgroup_hierarchies


def test_down_removes_a_real_node_left_running(tmp_path: Path) -> None:
    sysctls = {k: host.read_sysctl(k) for k in host.SYSCTLS}
    paths = {p: os.path.exists(p) for p in host.PRIVATE_PATHS}
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    up = subprocess.run(
        [sys.executable, "-m", "quiesce.rig", "up", "--real-nodes", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert up.returncode == 0, up.stderr
    exports = dict(
        line.removeprefix("export ").split("=", 1)
        for line in up.stdout.splitlines()
        if line.startswith("export ")
    )
    workdir = Path(up.stdout.split("logs in ")[1].split()[0].removesuffix("/logs"))
    state = json.loads((workdir / "state.json").read_text())
    bridge = state["bridge"]
    try:
        nodes = subprocess.run(
            [
                str(binaries.require("kubectl")),
                f"--kubeconfig={exports['KUBECONFIG']}",
                *("get", "node", "rig-real-1", "-o", "json"),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        conditions = json.loads(nodes.stdout)["status"]["conditions"]
        assert {c["type"]: c["status"] for c in conditions}["Ready"] == "True"
        cgroups = [d for h in cgroup_hierarchies() for d in h.glob(f"quiesce-{bridge}-*")]
        assert cgroups, "the node has no cgroup of its own?"
        pids = {
            int(p)
            for d in cgroups
            for procs in d.rglob("cgroup.procs")
            for p in procs.read_text().split()
        }
        assert pids
        assert host.read_sysctl("kernel.panic") == "10"  # the kubelet's setting
    finally:
        down = subprocess.run(
            [sys.executable, "-m", "quiesce.rig", "down"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
    assert down.returncode == 0, down.stderr
    assert [d for h in cgroup_hierarchies() for d in h.glob(f"quiesce-{bridge}-*")] == []
    assert [p for p in pids if rig._alive(p)] == []
    assert {k: host.read_sysctl(k) for k in host.SYSCTLS} == sysctls
    assert not host.LEDGER.exists()
    assert {p: os.path.exists(p) for p in host.PRIVATE_PATHS} == paths
