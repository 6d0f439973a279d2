"""Drain: a connection is busy while a request was read and no answer sent yet."""

from __future__ import annotations

import socket
import time

from quiesce.sidecar import inet_diag
from quiesce.sidecar.phases import drain
from quiesce.sidecar.quiet import TrafficFilter


def test_busy_until_answered_and_idle_keepalive_is_not_busy(ext_ip: str) -> None:
    server = socket.socket()
    server.bind((ext_ip, 0))
    server.listen()
    idle = socket.create_connection(server.getsockname())
    idle_accepted, _ = server.accept()
    fresh = socket.create_connection(server.getsockname())
    fresh_accepted, _ = server.accept()
    traffic = TrafficFilter(sidecar_port=7979, only_ports=frozenset({server.getsockname()[1]}))
    try:
        # a pooled keep-alive connection: request answered
        idle.sendall(b"GET / HTTP/1.1\r\n\r\n")
        idle_accepted.recv(100)
        time.sleep(0.01)
        idle_accepted.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
        idle.recv(100)
        time.sleep(0.01)
        assert drain.busy_connections(inet_diag.dump(), traffic) == []

        # a request arrives: busy until answered
        time.sleep(0.01)
        idle.sendall(b"POST /slow HTTP/1.1\r\n\r\n")
        idle_accepted.recv(100)
        time.sleep(0.01)
        busy = drain.busy_connections(inet_diag.dump(), traffic)
        assert [r.peer_port for r in busy] == [idle.getsockname()[1]]

        idle_accepted.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
        time.sleep(0.01)
        assert drain.busy_connections(inet_diag.dump(), traffic) == []

        # a first request on a fresh connection, never answered yet
        fresh.sendall(b"GET / HTTP/1.1\r\n\r\n")
        fresh_accepted.recv(100)
        time.sleep(0.01)
        busy = drain.busy_connections(inet_diag.dump(), traffic)
        assert [r.peer_port for r in busy] == [fresh.getsockname()[1]]
    finally:
        for s in (idle, idle_accepted, fresh, fresh_accepted, server):
            s.close()
