"""What keeps the sidecar's port answering when a neighbour on the pod network misbehaves.

Anyone on the pod network can reach the sidecar's port. With the open-file
limit a container runtime gives by default (soft 1,024) and aiohttp's default
keep-alive (3,630 s, even for a connection that never sends a byte), 1,100
idle connections from one address used every descriptor: the kubelet's
probes and its ``/prestop`` call timed out, and asyncio logged a traceback
for every failed ``accept()``, 7.2 MB in 6 s. Four defences, each alone not
enough:

- :func:`raise_open_files_limit`: the soft ``RLIMIT_NOFILE`` goes up to the hard
  limit at start (the runtime's hard limit is usually far higher).
- :data:`IDLE_TIMEOUT`: a connection that sends no request (none at all, an
  unfinished one, or none after its last answer) is closed after a few seconds.
- :class:`ConnectionGuard`: a cap per address and a cap over all addresses that
  are not the node or loopback. Past a cap a new connection is closed as soon as
  it is accepted, so descriptors always remain for the node (its probes and
  ``/prestop``), loopback, and the sidecar's own clients (Consul, the API server).
- one log line when an episode starts and one when it ends, never one per
  connection; asyncio's own ``accept()`` errors are rate-limited the same way
  (:func:`install_accept_error_handler`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import resource
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from quiesce.sidecar import listen, logs

log = logging.getLogger(__name__)

#: Seconds a connection may stay open without sending a request (aiohttp's keep-alive
#: timeout, which aiohttp also arms when the connection opens). The kubelet opens a
#: connection per probe and per hook call and sends its request at once.
IDLE_TIMEOUT = 5.0
#: The listen backlog (the kernel caps it at net.core.somaxconn).
BACKLOG = listen.BACKLOG
#: Seconds without a refused connection that end an episode.
EPISODE_QUIET = 10.0


@dataclass(frozen=True)
class ConnectionLimits:
    #: Open connections one address may hold (the node and loopback: no cap).
    per_address: int = 32
    #: Open connections all other addresses together may hold.
    total: int = 256
    #: Descriptors kept free, whatever the open-file limit, for the node, loopback and
    #: the sidecar's own clients.
    reserve: int = 128

    def effective_total(self, open_files: int) -> int:
        """The total cap under ``open_files`` descriptors: never into the reserve."""
        return max(1, min(self.total, open_files - self.reserve))


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; the (soft, hard) now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.warning("Cannot raise the open-file limit from %d to %d: %s", soft, hard, exc)
        else:
            soft = hard
    return soft, hard


def _exempt_checker(host_ip: str) -> Callable[[str | None], bool]:
    node = None
    if host_ip:
        with contextlib.suppress(ValueError):
            node = ipaddress.ip_address(host_ip)

    def exempt(remote: str | None) -> bool:
        if not remote:
            return False
        try:
            addr = ipaddress.ip_address(remote)
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return addr.is_loopback or addr == node

    return exempt


class ConnectionGuard:
    """Counts open connections by address; refuses those past a cap, one log line an episode."""

    def __init__(
        self,
        *,
        host_ip: str,
        limits: ConnectionLimits | None = None,
        open_files: int | None = None,
    ) -> None:
        self.limits = limits or ConnectionLimits()
        if open_files is None:
            open_files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.total_cap = self.limits.effective_total(open_files)
        self._exempt = _exempt_checker(host_ip)
        self.by_address: dict[str, int] = {}
        self.others = 0  # open connections not from the node or loopback
        self.refused = 0  # over the sidecar's life
        self.accepted = 0  # every connection the server accepted, refused ones included
        # the episode in progress, if any
        self._episode_start: float | None = None
        self._episode_refused = 0
        self._episode_addresses: set[str] = set()
        self._last_refusal = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def admit(self, remote: str | None) -> bool:
        """Count a new connection from ``remote``; False: close it now."""
        self.accepted += 1
        if self._exempt(remote):
            return True
        key = remote or "?"
        held = self.by_address.get(key, 0)
        if held >= self.limits.per_address or self.others >= self.total_cap:
            self._refuse(key, held)
            return False
        self.by_address[key] = held + 1
        self.others += 1
        return True

    def release(self, remote: str | None) -> None:
        if self._exempt(remote):
            return
        key = remote or "?"
        held = self.by_address.get(key, 0)
        if held <= 1:
            self.by_address.pop(key, None)
        else:
            self.by_address[key] = held - 1
        self.others = max(0, self.others - 1)

    def as_json(self) -> dict[str, Any]:
        return {
            "open": self.others,
            "addresses": len(self.by_address),
            "per_address_cap": self.limits.per_address,
            "total_cap": self.total_cap,
            "refused": self.refused,
        }

    def _refuse(self, key: str, held: int) -> None:
        self.refused += 1
        self._last_refusal = time.monotonic()
        self._episode_refused += 1
        if len(self._episode_addresses) < 1000:
            self._episode_addresses.add(key)
        if self._episode_start is not None:
            return
        self._episode_start = self._last_refusal
        which = "per-address" if held >= self.limits.per_address else "total"
        log.warning(
            "Refusing new connections from %s past the %s cap (%d open from it, %d from all "
            "addresses but the node and loopback; caps %d and %d); the node and loopback are "
            "still served.",
            key,
            which,
            held,
            self.others,
            self.limits.per_address,
            self.total_cap,
            extra={"remote": key, "cap": which},
        )
        with contextlib.suppress(RuntimeError):  # no loop: the episode ends at the next refusal
            self._timer = asyncio.get_running_loop().call_later(EPISODE_QUIET, self._maybe_end)

    def _maybe_end(self) -> None:
        self._timer = None
        now = time.monotonic()
        if now - self._last_refusal < EPISODE_QUIET:
            self._timer = asyncio.get_running_loop().call_later(
                EPISODE_QUIET - (now - self._last_refusal), self._maybe_end
            )
            return
        assert self._episode_start is not None
        log.warning(
            "Stopped refusing connections: %d refused from %d addresses in %.1f s.",
            self._episode_refused,
            len(self._episode_addresses),
            self._last_refusal - self._episode_start,
            extra={"refused": self._episode_refused},
        )
        self._episode_start = None
        self._episode_refused = 0
        self._episode_addresses = set()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol behind the guard: a refused connection never reaches aiohttp."""

    def __init__(self, guard: ConnectionGuard, factory: Callable[[], asyncio.Protocol]) -> None:
        self._guard = guard
        self._factory = factory
        self._inner: asyncio.Protocol | None = None
        self._remote: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self._remote = str(peer[0]) if peer else None
        if not self._guard.admit(self._remote):
            assert isinstance(transport, asyncio.Transport)
            transport.abort()
            return
        self._inner = self._factory()
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is not None:
            self._guard.release(self._remote)
            inner, self._inner = self._inner, None
            inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


class GuardedTCPSite(web.BaseSite):
    """``web.TCPSite`` whose every connection passes a :class:`ConnectionGuard` first.

    ``sock``: a socket already listening on ``host:port`` (:func:`listen.bind`, called
    before aiohttp was imported, so early connections waited in its backlog); without
    it, the site binds ``host:port`` itself.
    """

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        guard: ConnectionGuard,
        sock: socket.socket | None = None,
    ) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self._sock = sock
        self.guard = guard

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        guard = self.guard

        def factory() -> asyncio.Protocol:
            assert server is not None
            return _Guarded(guard, server)

        # a deep backlog: the node's calls queue behind a burst instead of being dropped
        loop = asyncio.get_running_loop()
        if self._sock is not None:
            self._server = await loop.create_server(factory, sock=self._sock, backlog=BACKLOG)
        else:
            self._server = await loop.create_server(
                factory, self._host, self._port, backlog=BACKLOG, reuse_address=True
            )

    async def stop(self) -> None:
        self.guard.close()
        await super().stop()


def install_accept_error_handler(loop: asyncio.AbstractEventLoop) -> None:
    """asyncio's ``accept()`` errors (out of descriptors): one line per interval, no traceback.

    asyncio reports every failed ``accept()`` through the loop's exception
    handler with a traceback, up to the listen backlog (128) times per try:
    megabytes of log when descriptors run out. The guard's caps keep that from
    happening; this keeps it quiet if it happens anyway (the sidecar's own
    clients share the descriptors).
    """
    limited = logs.RateLimited(log, level=logging.ERROR)
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") == "socket.accept() out of system resource":
            exc = context.get("exception")
            limited(
                "accept() failed: %s; asyncio retries every second, the node's calls "
                "wait in the listen backlog.",
                exc,
            )
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
