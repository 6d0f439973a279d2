"""The sidecar's HTTP surface against hostile neighbours: a real ``quiesce sidecar`` process.

Every test here reproduces a problem seen on the rig (issue 16, "Hardening")
and asserts an outcome in sizes and answers, never in seconds: the log's
bytes, ``/status``'s bytes, which requests are answered. Timeouts only bound
how long a test waits before it gives up.
"""

from __future__ import annotations

import contextlib
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


# --- malformed requests -----------------------------------------------------------------


def test_invalid_utf8_in_a_header_is_a_400_not_a_500_with_a_traceback(
    tmp_path: Path, sidecar: list[SidecarProcess]
) -> None:
    s = SidecarProcess(tmp_path)
    sidecar.append(s)
    for path, header in (
        (b"/prestop", b"X-Quiesce-Token: \xff\xfe" + TOKEN.encode()),
        (b"/healthz", b"X-Anything: caf\xc3\x28"),
        (b"/status", b"Host: \xc0\xaf"),
    ):
        request = b"GET %s HTTP/1.1\r\nHost: sidecar\r\n%s\r\nConnection: close\r\n\r\n"
        answer = s.raw(request % (path, header))
        assert answer.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request"), (path, answer[:80])
    assert s.status()["state"] == "idle"
    assert "Traceback" not in s.log_text()
    assert not [r for r in _lines(s.log_text()) if r["level"] == "error"]


MALFORMED = (
    b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nContent-Length: x\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET\x00/ HTTP/1.1\r\n\r\n",
)


def test_a_thousand_malformed_requests_add_a_few_log_lines_not_a_traceback_each(
    tmp_path: Path, sidecar: list[SidecarProcess]
) -> None:
    s = SidecarProcess(tmp_path)
    sidecar.append(s)
    before = s.log_bytes()
    for i in range(1000):
        answer = s.raw(MALFORMED[i % len(MALFORMED)])
        assert answer.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request"), answer[:80]
    assert s.get("/healthz")[0] == 200
    added = s.log_bytes() - before
    print(f"1,000 malformed requests added {added} bytes of log")
    assert "Traceback" not in s.log_text()
    assert added < 4096


def test_a_thousand_refused_prestop_calls_are_counted_not_logged_one_line_each(
    tmp_path: Path, sidecar: list[SidecarProcess]
) -> None:
    s = SidecarProcess(tmp_path, env={"HOST_IP": "198.18.255.254"})
    sidecar.append(s)
    before = s.log_bytes()
    for i in range(1000):
        assert s.get("/prestop", headers={"X-Quiesce-Token": f"guess-{i}"})[0] == 403
    added = s.log_bytes() - before
    print(f"1,000 refused /prestop calls added {added} bytes of log")
    _, metrics = s.get("/metrics")
    assert b'quiesce_sidecar_prestop_requests_total{outcome="forbidden"} 1000.0' in metrics
    assert s.status()["state"] == "idle"
    assert added < 4096


# --- connection exhaustion --------------------------------------------------------------


def _idle_connections(address: str, port: int, count: int) -> list[socket.socket]:
    """``count`` connections from ``address`` that never send a byte."""
    made = []
    for _ in range(count):
        s = socket.socket()
        s.setblocking(False)
        s.bind((address, 0))
        with contextlib.suppress(BlockingIOError):
            s.connect((address, port))
        made.append(s)
    return made


def test_a_neighbour_with_1100_idle_connections_cannot_stop_the_probes_or_the_nodes_prestop(
    tmp_path: Path, sidecar: list[SidecarProcess], neighbour_ip: str
) -> None:
    """The open-file limit a container runtime gives (1,024), hard as well as soft: raising
    the soft limit cannot help here, the connection cap has to."""
    s = SidecarProcess(tmp_path, plan=FAST, env={"HOST_IP": "198.18.255.254"}, nofile=(1024, 1024))
    sidecar.append(s)
    before = s.log_bytes()
    hostile = _idle_connections(neighbour_ip, s.port, 1100)
    try:
        # the probes (the kubelet, here from loopback) and the node's /prestop are served
        for _ in range(3):
            assert s.get("/healthz", timeout=15)[0] == 200
            assert s.get("/readyz", timeout=15)[0] == 200
        code, body = s.prestop(timeout=30)
        assert code == 200, body
        assert json.loads(body)["state"] == "done"
    finally:
        for c in hostile:
            c.close()
    assert s.get("/healthz", timeout=15)[0] == 200
    added = s.log_bytes() - before
    lines = s.log_text()[-added:].count("\n") if added else 0
    print(f"1,100 idle connections added {added} bytes, {lines} lines of log")
    assert "Traceback" not in s.log_text()
    assert added < 8192


def test_the_soft_open_file_limit_is_raised_to_the_hard_limit(
    tmp_path: Path, sidecar: list[SidecarProcess]
) -> None:
    s = SidecarProcess(tmp_path, nofile=(1024, 4096))
    sidecar.append(s)
    limits = Path(f"/proc/{s.proc.pid}/limits").read_text()
    line = next(x for x in limits.splitlines() if x.startswith("Max open files"))
    assert line.split()[3:5] == ["4096", "4096"]
    assert s.status()["connections"]["total_cap"] == 256


def test_connections_that_send_no_request_are_closed_by_the_sidecar(
    tmp_path: Path, sidecar: list[SidecarProcess]
) -> None:
    """aiohttp's default keep-alive (3,630 s) kept them; the idle timeout closes them."""
    s = SidecarProcess(tmp_path)
    sidecar.append(s)
    silent = socket.create_connection(("127.0.0.1", s.port), timeout=60)
    unfinished = socket.create_connection(("127.0.0.1", s.port), timeout=60)
    unfinished.sendall(b"GET /prestop HTTP/1.1\r\nX-Quiesce-")
    kept = socket.create_connection(("127.0.0.1", s.port), timeout=60)
    kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: sidecar\r\n\r\n")
    assert kept.recv(4096).startswith(b"HTTP/1.1 200 ")
    for conn in (silent, unfinished, kept):
        with conn:
            # the server hangs up (b"") long before the give-up timeout
            assert conn.recv(4096) == b""
