"""Drain: hold the hook until the signalled app has exited, or no request is in flight.

When the sidecar signalled the app itself, the hook is held until the app's
processes have exited: returning earlier lets the kubelet's own stop signal
cut the app's graceful stop. Otherwise, with a drain timeout, the hook is held
while inbound connections are busy. A connection is busy while its last
received data is newer than its last sent data (a request read, no answer
yet). Pooled idle keep-alive connections (last thing was our answer) and
connections that have sent nothing yet are not in flight, so they never hold
the hook.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from quiesce.sidecar import inet_diag, phases, signals
from quiesce.sidecar.inet_diag import TcpSocket, TcpState
from quiesce.sidecar.metrics import Metrics
from quiesce.sidecar.quiet import TrafficFilter
from quiesce.sidecar.status import Outcome, Timeline

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


async def hold_hook(
    tl: Timeline,
    *,
    deadline: float,
    pids: list[int],
    timeout: float,
    traffic: TrafficFilter,
    poll_interval: float,
    metrics: Metrics,
) -> Outcome:
    """Wait for ``pids`` to exit, else for in-flight requests (``timeout`` 0: off)."""
    if pids:
        outcome = await _wait_for_exit(tl, deadline=deadline, pids=pids)
    elif timeout <= 0:
        phase = tl.begin("drain")
        tl.end(phase, "skipped", reason="drain is off (drain-timeout 0)")
        return "skipped"
    else:
        outcome = await _wait_for_requests(
            tl, deadline=deadline, timeout=timeout, traffic=traffic, poll_interval=poll_interval
        )
    phases.record_duration(tl, "drain", metrics)
    return outcome


async def _wait_for_exit(tl: Timeline, *, deadline: float, pids: list[int]) -> Outcome:
    # We stopped the app ourselves: hold the hook until it has exited, or the
    # kubelet's own stop signal (after the hook returns) cuts its graceful stop.
    phase = tl.begin("drain", waiting_for="app exit", pids=pids)
    while time.monotonic() < deadline:
        left = [p for p in pids if signals.alive(p)]
        if not left:
            tl.end(phase, "ok", app_exited_at=tl.elapsed())
            return "ok"
        await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
    left = [p for p in pids if signals.alive(p)]
    tl.end(phase, "timeout", still_running=left)
    tl.error("drain", f"the app ignored its signal: {left} still running at the deadline")
    return "timeout"


async def _wait_for_requests(
    tl: Timeline, *, deadline: float, timeout: float, traffic: TrafficFilter, poll_interval: float
) -> Outcome:
    phase = tl.begin("drain", waiting_for="in-flight requests", timeout=timeout)
    until = min(time.monotonic() + timeout, deadline)
    while True:
        try:
            rows = await inet_diag.dump_async()
        except OSError as exc:
            tl.end(phase, "failed", error=str(exc))
            tl.error("drain", f"socket table unreadable: {exc}")
            return "failed"
        busy = busy_connections(rows, traffic)
        if not busy:
            tl.end(phase, "ok")
            return "ok"
        if time.monotonic() >= until:
            tl.end(
                phase,
                "timeout",
                busy=[f"{r.peer_ip}:{r.peer_port}->{r.local_port}" for r in busy],
            )
            return "timeout"
        await asyncio.sleep(min(poll_interval, until - time.monotonic()))
