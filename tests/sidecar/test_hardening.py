"""The sidecar's HTTP surface against hostile neighbours: a real ``quiesce sidecar`` process.

Every test here reproduces a problem seen on the rig (issue 16, "Hardening")
and asserts an outcome in sizes and answers, never in seconds: the log's
bytes, ``/status``'s bytes, which requests are answered. Timeouts only bound
how long a test waits before it gives up.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from quiesce.rig import network

from .helpers import FakeContainer
from .sidecar_proc import TOKEN, SidecarProcess

FAST = {"converge_max": 0.5, "quiet_window": 0.1, "deregister_timeout": 0.5}


@pytest.fixture(scope="module")
def neighbour_ip() -> Iterator[str]:
    """An address of this machine that is neither loopback nor the node: a pod neighbour.

    A bridge of the rig's own (no control plane): connections from its address
    reach the sidecar as connections from another pod on the pod network.
    """
    net = network.RigNetwork.create()
    try:
        yield net.host_ip
    finally:
        net.destroy()


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[list[SidecarProcess]]:
    made: list[SidecarProcess] = []
    yield made
    for s in made:
        s.stop()


def _lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


# --- secrets --------------------------------------------------------------------------


def test_status_metrics_and_logs_never_show_the_tokens_or_the_apps_argv(
    tmp_path: Path, sidecar: list[SidecarProcess], container: Callable[..., FakeContainer]
) -> None:
    argv_secret = "argv-password-4f1e"
    consul_token = "consul-token-9c2a"
    app = container(
        [sys.executable, "-c", "import time; time.sleep(600)", "--requirepass", argv_secret]
    )
    s = SidecarProcess(
        tmp_path,
        plan={**FAST, "signal": int(signal.SIGTERM), "drain_timeout": 1.0},
        env={
            "QUIESCE_APP_CONTAINER_IDS": app.id,
            # a Consul agent that refuses: deregistration fails, its errors are published
            "CONSUL_HTTP_ADDR": "127.0.0.1:1",
            "CONSUL_HTTP_TOKEN": consul_token,
            "QUIESCE_CONSUL_BACKEND": "agent",
            "QUIESCE_CONSUL_TIMEOUT": "0.2",
        },
    )
    sidecar.append(s)
    code, _ = s.prestop(timeout=30)
    assert code == 200
    status_code, status = s.get("/status")
    assert status_code == 200
    published = json.loads(status)
    signal_phase = next(p for p in published["phases"] if p["name"] == "signal")
    assert signal_phase["sent_to"] == [app.pid]
    _, metrics = s.get("/metrics")
    s.stop()
    places = {"/status": status, "/metrics": metrics, "log": s.log_path.read_bytes()}
    leaks = [
        (secret, where)
        for secret in (TOKEN, consul_token, argv_secret)
        for where, text in places.items()
        if secret.encode() in text
    ]
    assert leaks == []
    # the executable's name is still there, to tell which process it was
    assert signal_phase["processes"][0]["name"] == Path(sys.executable).name
