"""A hostile neighbour on the rig: 1,100 idle connections, then the node's /prestop.

The sidecar runs in a pod sandbox with the open-file limit a container runtime
gives (1,024, set hard as well, so raising the soft limit cannot help); the
neighbour is the client namespace (another address on the pod network, where
HAProxy and the load generator run too).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from quiesce.rig import haproxy, rig

from . import test_rig_end_to_end as e2e
from .test_rig_end_to_end import (
    SIDECAR_PORT,
    STEADY,
    Pod,
    finish_load,
    phase,
    start_load,
    wait_routed,
)

# the end-to-end tests' fixtures: pods in sandboxes, their sidecars, HAProxy
balancer = e2e.balancer
containers = e2e.containers
pods = e2e.pods
service = e2e.service
sidecars = e2e.sidecars

pytestmark = pytest.mark.rig

HOLD = """
import socket, sys, time
made = []
for _ in range(int(sys.argv[3])):
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect((sys.argv[1], int(sys.argv[2])))
    except BlockingIOError:
        pass
    made.append(s)
print("connected", flush=True)
time.sleep(600)
"""


def test_a_neighbour_holding_1100_idle_connections_does_not_stop_the_nodes_prestop(
    pods: Callable[..., Pod],
    balancer: Callable[[float], haproxy.HAProxy],
    rig_instance: rig.Rig,
    tmp_path: Path,
) -> None:
    leaving = pods(plan=STEADY, app_args=("--exit-on", "QUIT"))
    staying = pods(plan=None)
    assert leaving.sidecar is not None
    subprocess.run(["prlimit", f"--pid={leaving.sidecar.pid}", "--nofile=1024:1024"], check=True)
    lb = balancer(2.0)
    wait_routed(lb, leaving, staying)
    gen = start_load(rig_instance, lb, tmp_path / "load.jsonl", rate=30, duration=20)
    log_before = leaving.log.stat().st_size
    hostile = rig_instance.network.client.popen(
        [sys.executable, "-c", HOLD, leaving.ip, str(SIDECAR_PORT), "1100"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert hostile.stdout is not None
        assert hostile.stdout.readline().strip() == "connected"
        time.sleep(6)  # the sidecar samples the traffic rate every 5 s while idle
        code, _took = leaving.prestop()
        assert code == 200
        status = leaving.status()
    finally:
        hostile.kill()
        hostile.wait(10)
    summary = finish_load(gen)
    assert status["state"] == "done"
    assert [p["name"] for p in status["phases"]][:2] == ["deregister", "converge"]
    assert phase(status, "deregister")["deregistered"][0]["id"] == leaving.service_id
    assert status["connections"]["refused"] > 0
    assert status["connections"]["per_address_cap"] == 32
    assert summary["failed"] == 0, summary
    added = leaving.log.stat().st_size - log_before
    assert "Traceback" not in leaving.log.read_text()
    print(f"\nhostile neighbour: {status['connections']}; log +{added} bytes; load {summary}")
