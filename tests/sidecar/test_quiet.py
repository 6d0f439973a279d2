"""Observed quiet: what counts as traffic, and how long silence must last."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from quiesce.sidecar.quiet import (
    Activity,
    QuietTracker,
    RateEstimator,
    TrafficFilter,
    TrafficObserver,
    adaptive_window,
)


class Server:
    """A real listening socket that accepts and keeps connections."""

    def __init__(self, host: str = "0.0.0.0") -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(64)
        self.port: int = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.clients: list[socket.socket] = []

    def connect(self, source: str, dest: str | None = None) -> tuple[socket.socket, socket.socket]:
        c = socket.socket()
        c.bind((source, 0))
        c.connect((dest or source, self.port))
        a, _ = self.sock.accept()
        self.clients.append(c)
        self.accepted.append(a)
        return c, a

    def close(self) -> None:
        for s in [*self.clients, *self.accepted, self.sock]:
            s.close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


def observer(*servers: Server, **kw: object) -> TrafficObserver:
    """Looks only at the test's own ports: other processes share this namespace."""
    params: dict[str, object] = {
        "sidecar_port": 7979,
        "only_ports": frozenset(s.port for s in servers),
    }
    params.update(kw)
    return TrafficObserver(TrafficFilter(**params))  # type: ignore[arg-type]


def test_first_sample_is_only_a_baseline(server: Server, ext_ip: str) -> None:
    server.connect(ext_ip)
    obs = observer(server)
    first = obs.sample()
    assert first.new_connections == 0 and first.requests == 0
    assert first.connections >= 1


def test_a_new_inbound_connection_from_another_address_is_traffic(
    server: Server, ext_ip: str
) -> None:
    obs = observer(server)
    obs.sample()
    server.connect(ext_ip)
    activity = obs.sample()
    assert activity.new_connections == 1
    assert activity.active


def test_loopback_connections_are_not_traffic(server: Server) -> None:
    obs = observer(server)
    obs.sample()
    client, accepted = server.connect("127.0.0.1")
    client.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
    accepted.recv(100)
    activity = obs.sample()
    assert activity.new_connections == 0
    assert activity.requests == 0


def test_the_sidecars_own_port_is_not_traffic(ext_ip: str) -> None:
    srv = Server()
    try:
        obs = observer(srv, sidecar_port=srv.port)
        obs.sample()
        srv.connect(ext_ip)
        assert obs.sample().new_connections == 0
    finally:
        srv.close()


def test_the_nodes_probe_connections_are_not_traffic_but_other_ports_are(ext_ip: str) -> None:
    probed, served = Server(), Server()
    try:
        obs = observer(probed, served, host_ip=ext_ip, probe_ports=frozenset({probed.port}))
        obs.sample()
        probed.connect(ext_ip)
        served.connect(ext_ip)
        assert obs.sample().new_connections == 1
    finally:
        probed.close()
        served.close()


def test_request_bytes_on_a_kept_alive_connection_are_traffic(server: Server, ext_ip: str) -> None:
    client, accepted = server.connect(ext_ip)
    obs = observer(server)
    obs.sample()
    assert obs.sample().requests == 0
    client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    accepted.recv(100)
    time.sleep(0.01)
    assert obs.sample().requests == 1


def test_each_request_on_a_kept_alive_connection_is_counted_for_the_rate(
    server: Server, ext_ip: str
) -> None:
    client, accepted = server.connect(ext_ip)
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    obs = observer(server)
    obs.sample()
    for _ in range(3):
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        accepted.recv(100)
        accepted.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
        client.recv(100)
    time.sleep(0.01)
    assert obs.sample().requests == 3


def test_on_long_lived_ports_only_new_connections_count(server: Server, ext_ip: str) -> None:
    client, accepted = server.connect(ext_ip)
    obs = observer(server, long_lived_ports=frozenset({server.port}))
    obs.sample()
    client.sendall(b"stream frame")
    accepted.recv(100)
    time.sleep(0.01)
    assert obs.sample().requests == 0
    server.connect(ext_ip)
    assert obs.sample().new_connections == 1


def test_a_connection_that_opened_and_closed_between_samples_is_still_caught(
    server: Server, ext_ip: str
) -> None:
    obs = observer(server)
    obs.sample()
    client, accepted = server.connect(ext_ip)
    client.close()  # the client closes first: no TIME_WAIT on our side
    accepted.close()
    time.sleep(0.01)
    activity = obs.sample()
    assert activity.new_connections + activity.unseen_opens >= 1
    assert activity.active


@pytest.mark.parametrize(
    ("rate", "epsilon", "minimum", "ceiling", "expected"),
    [
        (2.0, 1e-3, 1.0, 30.0, math.log(1000) / 2),  # sparse: ~3.45 s (the design's example)
        (100.0, 1e-3, 1.0, 30.0, 1.0),  # busy: the plan's quiet window
        (0.1, 1e-3, 1.0, 30.0, 30.0),  # very sparse: the ceiling decides
        (0.0, 1e-3, 1.0, 20.0, 20.0),  # nothing seen: silence proves nothing
        (2.0, 1e-2, 0.5, 30.0, math.log(100) / 2),
        (5.0, 1e-3, 3.0, 2.0, 3.0),  # a ceiling below the window: the window wins
    ],
)
def test_adaptive_window(
    rate: float, epsilon: float, minimum: float, ceiling: float, expected: float
) -> None:
    got = adaptive_window(rate=rate, epsilon=epsilon, minimum=minimum, ceiling=ceiling)
    assert got == pytest.approx(expected)


def test_rate_estimator_counts_events_per_second_over_its_horizon() -> None:
    est = RateEstimator(horizon=10.0)
    est.add(Activity(at=0.0))
    for t in range(1, 21):
        est.add(Activity(at=float(t), new_connections=1, requests=1))
    assert est.rate(20.0) == pytest.approx(2.0)
    assert RateEstimator().rate(5.0) == 0.0


def test_quiet_tracker_measures_silence_since_the_last_activity() -> None:
    tracker = QuietTracker(started=100.0)
    tracker.add(Activity(at=100.5, new_connections=1))
    tracker.add(Activity(at=101.0))
    assert tracker.quiet_for(102.0) == pytest.approx(1.5)
    assert tracker.new_connections == 1
    tracker.add(Activity(at=102.5, connecting=1))
    assert tracker.quiet_for(103.0) == pytest.approx(0.5)


# The sidecar's own accepts, in a network namespace of the test's own: PassiveOpens
# counts every accept in a namespace, so the host's would blur the count.
_OWN_ACCEPTS = r"""
import json, socket, subprocess, time
from quiesce.sidecar.quiet import TrafficFilter, TrafficObserver

subprocess.run(["ip", "link", "set", "lo", "up"], check=True)

def listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    return s, s.getsockname()[1]

own, own_port = listener()
app, app_port = listener()
accepted = 0

def missed(port, srv, accept=True):
    # opens and closes between two samples; the client closes first: no TIME_WAIT here
    global accepted
    c = socket.create_connection(("127.0.0.1", port))
    if not accept:
        return c
    a, _ = srv.accept()
    if srv is own:
        accepted += 1
    c.close()
    a.close()
    time.sleep(0.05)

def observer(counting):
    obs = TrafficObserver(TrafficFilter(sidecar_port=own_port))
    if counting:
        obs.count_own_accepts(lambda: accepted)
    obs.sample()
    return obs

out = {}
counting, blind = observer(True), observer(False)
missed(own_port, own)
out["own_counting"] = counting.sample().unseen_opens
out["own_blind"] = blind.sample().unseen_opens
waiting = missed(own_port, own, accept=False)  # handshake done, not accepted yet
time.sleep(0.05)
out["own_waiting"] = counting.sample().unseen_opens
own.accept()[0].close()
accepted += 1
waiting.close()
out["own_after_accept"] = counting.sample().unseen_opens
missed(app_port, app)
out["app_counting"] = counting.sample().unseen_opens
print(json.dumps(out))
"""


def test_the_sidecars_own_accepts_missed_between_samples_are_not_unseen_traffic() -> None:
    done = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", _OWN_ACCEPTS],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    # without the server's count, the missed accept on the sidecar's port reads as traffic
    assert out["own_blind"] == 1, out
    assert out["own_counting"] == 0 and out["own_waiting"] == 0, out
    assert out["own_after_accept"] == 0, out
    # an accept on the app's port that no sample saw is still traffic
    assert out["app_counting"] == 1, out
