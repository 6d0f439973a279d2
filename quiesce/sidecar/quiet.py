"""Observed quiet: has the load balancer stopped sending this pod traffic?

What counts as traffic (design, "Decisions"): an inbound connection is a
socket whose local port listens in the pod's network namespace and whose peer
is not loopback, except the sidecar's own port and the node's connections to
the ports named in the pod's probes. Traffic is a new such connection, or new
request bytes on one (on long-lived ports, gRPC/WebSocket, only new
connections count: bytes never stop on a live stream).

The socket table is sampled (inet_diag + TCP_INFO); a connection that opens
and closes between two samples is still caught by the namespace's TCP
PassiveOpens counter: accepted connections the samples could not attribute
count as traffic.

Silence means little when traffic is sparse, so the quiet window adapts: at
least ``ln(1/ε)/λ`` where λ is the inbound rate seen while idle (the chance of
a gap that long with the LB still sending is ε), never below the plan's
quiet window, never past the convergence ceiling.
"""

from __future__ import annotations

import collections
import ipaddress
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from quiesce.sidecar import inet_diag
from quiesce.sidecar.inet_diag import TcpSocket, TcpState

# states of an accepted connection that still has a socket (TIME_WAIT included:
# a short connection we missed while it was open is still visible there)
ACCEPTED_STATES = frozenset(
    {
        TcpState.ESTABLISHED,
        TcpState.CLOSE_WAIT,
        TcpState.FIN_WAIT1,
        TcpState.FIN_WAIT2,
        TcpState.LAST_ACK,
        TcpState.CLOSING,
        TcpState.TIME_WAIT,
    }
)


@dataclass(frozen=True, kw_only=True)
class TrafficFilter:
    """Decides which sockets are the app's inbound traffic."""

    sidecar_port: int
    host_ip: str = ""
    probe_ports: frozenset[int] = frozenset()
    long_lived_ports: frozenset[int] = frozenset()
    only_ports: frozenset[int] | None = None
    """Look only at these listening ports (tests sharing a host's namespace); None: all."""

    def listening_ports(self, rows: Iterable[TcpSocket]) -> frozenset[int]:
        ports = frozenset(r.local_port for r in rows if r.state == TcpState.LISTEN)
        return ports if self.only_ports is None else ports & self.only_ports

    def is_inbound(self, row: TcpSocket, listening: frozenset[int]) -> bool:
        """An accepted connection on a port that listens here (any peer)."""
        return row.state in ACCEPTED_STATES and row.local_port in listening

    def counts(self, row: TcpSocket) -> bool:
        """Whether an inbound connection is traffic from a load balancer or client."""
        if row.local_port == self.sidecar_port:
            return False
        if row.peer_is_loopback:
            return False
        return not (
            self.host_ip
            and row.local_port in self.probe_ports
            and _same_ip(row.peer_ip, self.host_ip)
        )


def _same_ip(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a == b


@dataclass(frozen=True)
class Activity:
    """What one sample saw since the previous one."""

    at: float
    new_connections: int = 0
    """New inbound connections that count as traffic."""
    requests: int = 0
    """Requests on connections (data segments received; not on long-lived ports)."""
    unseen_opens: int = 0
    """Accepted connections (PassiveOpens) no sample saw: opened and closed in between."""
    connecting: int = 0
    """Half-open connections (SYN_RECV) that count as traffic."""
    connections: int = 0
    """Inbound connections (traffic) open now."""
    sources: tuple[str, ...] = ()
    """``peer -> :port`` of some connections that counted (at most :data:`SOURCES_MAX`)."""

    @property
    def events(self) -> int:
        return self.new_connections + self.requests + self.unseen_opens

    @property
    def active(self) -> bool:
        return self.events > 0 or self.connecting > 0


#: How many traffic sources an Activity and the QuietTracker keep (for logs and /status).
SOURCES_MAX = 8


class TrafficObserver:
    """Diffs successive samples of the socket table into :class:`Activity`.

    ``sample`` blocks (a netlink dump and a /proc read, ~1 ms); the sidecar
    uses ``asample``, whose netlink socket is non-blocking and driven by the loop.
    """

    def __init__(
        self,
        traffic: TrafficFilter,
        *,
        dump: Callable[..., list[TcpSocket]] = inet_diag.dump,
        dump_async: Callable[..., Awaitable[list[TcpSocket]]] = inet_diag.dump_async,
        passive_opens: Callable[[], int] = inet_diag.passive_opens,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.traffic = traffic
        self._dump = dump
        self._dump_async = dump_async
        self._passive_opens = passive_opens
        self._clock = clock
        # cookie -> (bytes_received, data segments in); bytes -1: not traffic
        self._known: dict[int, tuple[int, int]] = {}
        self._opens_base: int | None = None
        self._attributed = 0  # inbound connections (of any kind) first seen by a sample
        self._flagged = 0  # accepted connections already reported as unseen
        self._own_accepts: Callable[[], int] | None = None
        self._own_base = 0
        # listening ports of the last sample: the next dump decodes only their sockets
        self._ports: frozenset[int] | None = None

    def count_own_accepts(self, accepted: Callable[[], int]) -> None:
        """Take the sidecar's own accepted connections from its server's count.

        Its probes, ``/status`` and ``/metrics`` scrapes are accepts in the namespace's
        PassiveOpens too; one that opens and closes between two samples would read as
        unseen traffic (under load, a status poll every 0.2 s kept a pod from ever
        being quiet). The server counts them exactly, so they are subtracted instead.
        """
        self._own_accepts = accepted
        self._own_base = accepted()

    def sample(self) -> Activity:
        """Take one sample (blocking); the first one only sets the baseline."""
        opens = self._passive_opens()  # read before the table: see _unattributed
        return self._diff(opens, self._dump(local_ports=self._ports))

    async def asample(self) -> Activity:
        """:meth:`sample` with the socket table read by the event loop (no thread)."""
        opens = self._passive_opens()  # a small procfs read
        return self._diff(opens, await self._dump_async(local_ports=self._ports))

    def _diff(self, opens: int, rows: list[TcpSocket]) -> Activity:
        now = self._clock()
        listening = self.traffic.listening_ports(rows)
        self._ports = listening
        first = self._opens_base is None
        if first:
            self._opens_base = opens
        new = requests = connecting = connections = own_waiting = 0
        sources: list[str] = []
        seen: dict[int, tuple[int, int]] = {}
        own_port = self.traffic.sidecar_port if self._own_accepts is not None else None
        for row in rows:
            if row.local_port == own_port:
                # counted by the server (see count_own_accepts), not attributed here
                if row.state == TcpState.LISTEN:
                    own_waiting += row.queued
                continue
            if row.state == TcpState.SYN_RECV:
                if row.local_port in listening and self.traffic.counts(row):
                    connecting += 1
                continue
            if not self.traffic.is_inbound(row, listening):
                continue
            counted = self.traffic.counts(row)
            received, segments = -1, 0
            if counted and row.info is not None:
                received = row.info.bytes_received
                segments = row.info.data_segs_in or 0
            seen[row.cookie] = (received, segments)
            previous = self._known.get(row.cookie)
            bytes_count = counted and row.local_port not in self.traffic.long_lived_ports
            before = (new, requests)
            if previous is None:
                if not first:
                    self._attributed += 1
                    new += int(counted)
                    if bytes_count:
                        # the connection is one arrival; requests after its first are more
                        requests += max(0, segments - 1)
            elif bytes_count and received > previous[0] >= 0:
                # data segments approximate requests (one each for small requests); at
                # least one when the kernel does not report them
                requests += max(1, segments - previous[1])
            if (new, requests) != before and len(sources) < SOURCES_MAX:
                sources.append(f"{row.peer_ip}:{row.peer_port} -> :{row.local_port}")
            if counted and row.state != TcpState.TIME_WAIT:
                connections += 1
        self._known = seen
        own = 0
        if self._own_accepts is not None:
            # Read after the dump: accepted since, or still waiting, they count as ours.
            # Counted early here evens out at the next sample: never a false arrival.
            if first:
                self._own_base = self._own_accepts()
            own = self._own_accepts() - self._own_base + own_waiting
        unseen = 0 if first else self._unattributed(opens, own)
        return Activity(
            at=now,
            new_connections=new,
            requests=requests,
            unseen_opens=unseen,
            connecting=connecting,
            connections=connections,
            sources=tuple(sources),
        )

    def _unattributed(self, opens: int, own: int) -> int:
        # PassiveOpens is read before the dump, so a connection counted there is
        # either in this dump or already gone; one accepted between the two reads
        # is attributed early and evens out on the next sample.
        assert self._opens_base is not None
        missing = (opens - self._opens_base) - self._attributed - own - self._flagged
        if missing <= 0:
            return 0
        self._flagged += missing
        return missing


class RateEstimator:
    """λ: inbound connections and requests per second over a sliding horizon."""

    def __init__(self, *, horizon: float = 60.0) -> None:
        self.horizon = horizon
        self._events: collections.deque[tuple[float, int]] = collections.deque()
        self._since: float | None = None

    def add(self, activity: Activity) -> None:
        if self._since is None:
            self._since = activity.at
            return
        self._events.append((activity.at, activity.events))
        while self._events and self._events[0][0] <= activity.at - self.horizon:
            self._events.popleft()

    def rate(self, now: float) -> float:
        """Events per second; 0 when nothing (or nothing yet) was seen."""
        if self._since is None:
            return 0.0
        span = min(now - self._since, self.horizon)
        if span <= 0:
            return 0.0
        total = sum(n for t, n in self._events if t > now - self.horizon)
        return total / span


def adaptive_window(*, rate: float, epsilon: float, minimum: float, ceiling: float) -> float:
    """The quiet window: ``ln(1/ε)/λ``, at least ``minimum``, at most ``ceiling``.

    With no traffic seen (λ = 0) silence proves nothing: the window is the ceiling.
    """
    if rate <= 0 or not 0 < epsilon < 1:
        return max(minimum, ceiling)
    return min(max(math.log(1 / epsilon) / rate, minimum), max(ceiling, minimum))


class QuietTracker:
    """During convergence: when was traffic last seen, and how much after deregistration."""

    def __init__(self, *, started: float) -> None:
        self.started = started
        self.last_activity = started
        self.new_connections = 0
        self.unseen_opens = 0
        self.samples = 0
        #: The latest traffic seen (``peer -> :port``, or that accepts went unseen): what
        #: kept the pod from being quiet, for the log and /status.
        self.sources: collections.deque[str] = collections.deque(maxlen=SOURCES_MAX)

    def add(self, activity: Activity) -> None:
        self.samples += 1
        self.new_connections += activity.new_connections + activity.unseen_opens
        self.unseen_opens += activity.unseen_opens
        if activity.active:
            self.last_activity = activity.at
            self.sources.extend(activity.sources)
            if activity.unseen_opens:
                self.sources.append(f"{activity.unseen_opens} accepted between samples")
            if activity.connecting:
                self.sources.append(f"{activity.connecting} connecting (SYN_RECV)")

    def quiet_for(self, now: float) -> float:
        return max(0.0, now - self.last_activity)
