"""The sidecar's listening socket, bound before anything heavy is imported.

The kubelet's first startup probe (and, for a pod deleted at once, its
``/prestop`` call) can arrive while the sidecar is still importing aiohttp
(~250 ms of CPU on an idle core, more on a loaded node). A port that does not
listen yet refuses the probe, which then fails and is retried a probe period
later. Bound and listening first, the port queues the connection in the
kernel's backlog and aiohttp answers it once it serves (``server.serve`` hands
it this socket). Standard library only: importing this costs nothing.
"""

from __future__ import annotations

import signal
import socket

#: The listen backlog (the kernel caps it at net.core.somaxconn): the node's calls queue
#: behind a burst, or behind the sidecar's own start, instead of being refused.
BACKLOG = 1024


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host:port`` (IPv4 or IPv6 by the address), non-blocking.

    Raises ``OSError`` (``EADDRINUSE`` when the port is taken).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def hold_stop_signals() -> list[int]:
    """Record SIGTERM and SIGINT until the server installs its own handlers.

    Once the port listens, the kubelet (or a test) can see the sidecar as started
    and stop it at once: without this, a SIGTERM during the imports would kill the
    process by its default action, with no sequence. ``server.serve`` replays what
    was recorded.
    """
    held: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda received, _frame: held.append(received))
    return held
