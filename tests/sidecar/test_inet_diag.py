"""inet_diag: our netlink client reads the kernel's TCP table as getsockopt sees it."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import pytest

from quiesce.sidecar import inet_diag
from quiesce.sidecar.inet_diag import TcpState


@pytest.fixture
def pair(ext_ip: str) -> Iterator[tuple[socket.socket, socket.socket, socket.socket]]:
    server = socket.socket()
    server.bind((ext_ip, 0))
    server.listen()
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    yield server, client, accepted
    for s in (client, accepted, server):
        s.close()


def _row(port: int, peer_port: int) -> inet_diag.TcpSocket:
    rows = [r for r in inet_diag.dump() if r.local_port == port and r.peer_port == peer_port]
    assert len(rows) == 1, rows
    return rows[0]


def test_dump_lists_listening_and_established_sockets_with_addresses(
    pair: tuple[socket.socket, socket.socket, socket.socket], ext_ip: str
) -> None:
    server, client, _accepted = pair
    port = server.getsockname()[1]
    rows = inet_diag.dump()
    listen = [r for r in rows if r.local_port == port and r.state == TcpState.LISTEN]
    assert len(listen) == 1
    row = _row(port, client.getsockname()[1])
    assert row.state == TcpState.ESTABLISHED
    assert (row.local_ip, row.peer_ip) == (ext_ip, ext_ip)
    assert not row.peer_is_loopback
    assert row.cookie != listen[0].cookie


def test_tcp_info_byte_counters_and_times_match_getsockopt(
    pair: tuple[socket.socket, socket.socket, socket.socket],
) -> None:
    server, client, accepted = pair
    client.sendall(b"GET / HTTP/1.1\r\n\r\n" * 10)
    accepted.recv(4096)
    accepted.sendall(b"x" * 300)
    client.recv(4096)
    time.sleep(0.05)
    client.sendall(b"more")
    time.sleep(0.02)
    raw = accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232)
    info = _row(server.getsockname()[1], client.getsockname()[1]).info
    assert info is not None
    assert info.bytes_received == struct.unpack_from("=Q", raw, 128)[0] == 184
    assert info.bytes_acked == struct.unpack_from("=Q", raw, 120)[0] == 300
    assert info.last_data_recv_ms < info.last_data_sent_ms
    assert info.data_segs_in == struct.unpack_from("=I", raw, 152)[0] >= 2


def test_cookie_is_stable_across_dumps(
    pair: tuple[socket.socket, socket.socket, socket.socket],
) -> None:
    server, client, _ = pair
    first = _row(server.getsockname()[1], client.getsockname()[1])
    second = _row(server.getsockname()[1], client.getsockname()[1])
    assert first.cookie == second.cookie


def test_ipv6_loopback_sockets_are_listed_and_recognised_as_loopback() -> None:
    if not socket.has_ipv6:
        pytest.fail("this machine has no IPv6 support")
    server = socket.socket(socket.AF_INET6)
    try:
        server.bind(("::1", 0))
    except OSError as exc:  # IPv6 disabled on lo
        server.close()
        pytest.fail(f"::1 unavailable: {exc}")
    server.listen()
    client = socket.create_connection(("::1", server.getsockname()[1]))
    accepted, _ = server.accept()
    try:
        row = _row(server.getsockname()[1], client.getsockname()[1])
        assert row.family == socket.AF_INET6
        assert row.peer_ip == "::1"
        assert row.peer_is_loopback
    finally:
        for s in (client, accepted, server):
            s.close()


def test_passive_opens_counts_accepted_connections(ext_ip: str) -> None:
    server = socket.socket()
    server.bind((ext_ip, 0))
    server.listen()
    before = inet_diag.passive_opens()
    for _ in range(3):
        c = socket.create_connection(server.getsockname())
        a, _ = server.accept()
        c.close()
        a.close()
    server.close()
    assert inet_diag.passive_opens() - before >= 3


async def test_dump_async_runs_off_the_event_loop() -> None:
    rows = await inet_diag.dump_async()
    assert isinstance(rows, list)
