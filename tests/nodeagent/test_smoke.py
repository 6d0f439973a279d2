"""A pod bound to the rig's node runs, gets an IP, and its status is reported."""

from __future__ import annotations

import ipaddress

from .conftest import read_log
from .helpers import Cluster, eventually, sig_container


def test_a_pod_runs_with_its_own_ip_and_reports_running_and_ready(cluster: Cluster) -> None:
    log = cluster.tmp / "app.jsonl"
    cluster.apply(cluster.pod_manifest("p1", [sig_container("app", log)]))
    pod = cluster.wait_ready("p1")
    status = pod["status"]
    assert status["phase"] == "Running"
    subnet = cluster.rig.network.subnet
    assert ipaddress.ip_address(status["podIP"]) in subnet
    assert status["hostIP"] == cluster.rig.network.host_ip
    cs = status["containerStatuses"][0]
    assert cs["containerID"].startswith("rig://") and len(cs["containerID"]) == 6 + 64
    assert cs["ready"] is True and cs["started"] is True
    start = eventually(lambda: [e for e in read_log(log) if e["event"] == "start"])[0]
    env = start["env"]
    assert isinstance(env, dict)
    assert env["KUBERNETES_SERVICE_HOST"] == cluster.rig.network.host_ip
