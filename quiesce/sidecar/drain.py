"""Drain: which inbound connections are in flight (a request read, no answer yet)?

A connection is busy while its last received data is newer than its last sent
data. Pooled idle keep-alive connections (last thing was our answer) and
connections that have sent nothing yet are not in flight, so they never hold
the hook.
"""

from __future__ import annotations

from collections.abc import Iterable

from quiesce.sidecar.inet_diag import TcpSocket, TcpState
from quiesce.sidecar.quiet import TrafficFilter

_OPEN = frozenset({TcpState.ESTABLISHED, TcpState.CLOSE_WAIT})


def is_busy(row: TcpSocket) -> bool:
    info = row.info
    if info is None or row.state not in _OPEN or info.bytes_received == 0:
        return False
    # "ms ago": smaller is newer. Never sent anything: last_data_sent is huge.
    return info.last_data_recv_ms < info.last_data_sent_ms or info.bytes_acked == 0


def busy_connections(rows: Iterable[TcpSocket], traffic: TrafficFilter) -> list[TcpSocket]:
    rows = list(rows)
    listening = traffic.listening_ports(rows)
    return [
        r for r in rows if traffic.is_inbound(r, listening) and traffic.counts(r) and is_busy(r)
    ]
