"""Starting and stopping: nothing is left behind, and bad setup fails clearly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from quiesce.rig import consul, errors, network, rig

_alive = rig._alive


def test_teardown_stops_every_process_and_removes_the_network(tmp_path: Path) -> None:
    r = rig.Rig.start(tmp_path / "rig", kubernetes=True)
    r.network.sandbox("leftover").popen(["sleep", "600"])
    pids = [p.pid for p in r.processes()] + r.network.namespaces["leftover"].pids()
    bridge, netns = r.network.bridge, [ns.netns for ns in r.network.namespaces.values()]
    assert all(_alive(pid) for pid in pids)
    r.stop()
    still = [pid for pid in pids if _alive(pid)]
    assert still == [], f"processes left behind: {still}"
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert bridge not in links
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(ns in listed for ns in netns)


def test_rig_up_and_down_from_the_shell_leave_no_process(tmp_path: Path) -> None:
    up = subprocess.run(
        [sys.executable, "-m", "quiesce.rig", "up", "--no-kubernetes"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert up.returncode == 0, up.stderr
    assert "export CONSUL_HTTP_ADDR=198.1" in up.stdout
    workdir = up.stdout.split("logs in ")[1].split()[0].removesuffix("/logs")
    state_file = Path(workdir) / "state.json"
    assert state_file in rig.running_rigs()
    pids = json.loads(state_file.read_text())["pids"]
    assert pids and all(_alive(pid) for pid in pids)
    down = subprocess.run(
        [sys.executable, "-m", "quiesce.rig", "down"], capture_output=True, text=True, timeout=60
    )
    assert down.returncode == 0, down.stderr
    assert [pid for pid in pids if _alive(pid)] == []


def test_a_missing_binary_names_it_and_how_to_build_it(tmp_path: Path) -> None:
    env = dict(os.environ, QUIESCE_CACHE=str(tmp_path / "empty-cache"))
    result = subprocess.run(
        [sys.executable, "-c", "from quiesce.rig import rig; rig.check_machine()"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode != 0
    assert "missing etcd" in result.stderr or "missing kube-apiserver" in result.stderr
    assert "./dev setup" in result.stderr


def test_a_component_not_ready_in_time_names_itself_and_its_log(tmp_path: Path) -> None:
    net = network.RigNetwork.create()
    try:
        with pytest.raises(errors.ComponentFailed) as info:
            consul.start(tmp_path, address=net.host_ip, node_name="slow", timeout=0.0)
        assert info.value.component == "consul"
        assert "not electing itself leader after 0 s" in str(info.value)
        assert str(tmp_path / "logs" / "consul.log") in str(info.value)
    finally:
        net.destroy()
