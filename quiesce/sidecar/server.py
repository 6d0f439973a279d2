"""The sidecar's HTTP server and process lifecycle (aiohttp).

``create_app(settings)`` builds the application (testable in-process with
pytest-aiohttp); :func:`serve` runs it with an ``AppRunner`` whose signal
handling is ours (``handle_signals=False``): the sidecar's own SIGTERM starts
or joins the shutdown sequence (regular container: the kubelet signals it at
the same moment it calls the app's hook), and the process exits only when the
sequence has finished or its deadline has passed. As a native sidecar it is
signalled after the app is gone and exits promptly.

Endpoints: ``/prestop`` (the kubelet's httpGet; token and source checked;
concurrent and repeated calls join the one sequence), ``/healthz``,
``/readyz``, ``/status`` (the JSON timeline), ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import signal
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from quiesce import contract
from quiesce.sidecar import limits, logs, ownsignal
from quiesce.sidecar.metrics import Metrics
from quiesce.sidecar.sequence import Sidecar
from quiesce.sidecar.settings import Settings

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
SIDECAR = web.AppKey("sidecar", Sidecar)
METRICS = web.AppKey("metrics", Metrics)
GUARD = web.AppKey("guard", limits.ConnectionGuard)
#: A refused /prestop is worth a warning, but not one per call: anyone on the pod
#: network can make them (every one is counted in quiesce_sidecar_prestop_requests_total).
REFUSALS = web.AppKey("refusals", logs.RateLimited)
TOKEN_HEADER = contract.TOKEN_HEADER


def source_allowed(remote: str | None, settings: Settings) -> bool:
    """The kubelet calls hooks from the node's IP; loopback is the pod itself."""
    if not settings.check_source:
        return True
    if not remote:
        return False
    try:
        addr = ipaddress.ip_address(remote)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if addr.is_loopback:
        return True
    if settings.host_ip:
        with contextlib.suppress(ValueError):
            return addr == ipaddress.ip_address(settings.host_ip)
    return False


def token_ok(given: str | None, settings: Settings) -> bool:
    if settings.token is None:
        return True
    # surrogateescape: aiohttp keeps a header's undecodable bytes as surrogates
    return given is not None and hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), settings.token.encode()
    )


def _undecodable(value: str) -> bool:
    """A header value that held bytes that are not UTF-8 (aiohttp keeps them as surrogates)."""
    if value.isascii():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


_bad_encoding = logs.RateLimited(logging.getLogger("quiesce.sidecar.http"), level=logging.DEBUG)


@web.middleware
async def utf8_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """400 for a header that is not UTF-8: nothing the kubelet or Prometheus sends."""
    for name, value in request.headers.items():
        if _undecodable(name) or _undecodable(value):
            _bad_encoding(
                "Malformed request from %s, answered 400: a header is not UTF-8.", request.remote
            )
            return web.Response(status=400, text="400: a header is not UTF-8\n")
    return await handler(request)


async def prestop(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    metrics = request.app[METRICS]
    refusals = request.app[REFUSALS]
    if not token_ok(request.headers.get(TOKEN_HEADER), settings):
        metrics.prestop_requests.labels(outcome="forbidden").inc()
        refusals("Refused /prestop from %s: missing or wrong token.", request.remote)
        return web.json_response({"error": f"missing or wrong {TOKEN_HEADER}"}, status=403)
    if not source_allowed(request.remote, settings):
        metrics.prestop_requests.labels(outcome="forbidden").inc()
        refusals(
            "Refused /prestop from %s: not the node (%s) or loopback.",
            request.remote,
            settings.host_ip or "HOST_IP unset",
            remote=request.remote,
        )
        return web.json_response(
            {"error": f"source {request.remote} is not the node or loopback"}, status=403
        )
    sidecar = request.app[SIDECAR]
    metrics.prestop_requests.labels(outcome="joined" if sidecar.running else "started").inc()
    timeline = await sidecar.run_or_join("prestop")
    status = timeline.as_json()
    return web.json_response(
        {
            "state": status["state"],
            "duration": status["duration"],
            "convergence": status.get("convergence"),
            "errors": len(status["errors"]),
        }
    )


async def healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def readyz(_request: web.Request) -> web.Response:
    return web.Response(text="ready\n")


async def status(request: web.Request) -> web.Response:
    sidecar = request.app[SIDECAR]
    timeline = sidecar.timeline
    body: dict[str, Any] = {"state": "idle"} if timeline is None else timeline.as_json()
    # the sequences before this one, in order, briefly (bounded: HISTORY_KEPT)
    body["history"] = [t.brief() for t in sidecar.history if t is not timeline]
    if sidecar.recovered:
        body["recovered"] = list(sidecar.recovered)
    body["inbound_rate"] = round(sidecar.estimator.rate(time.monotonic()), 3)
    if sidecar.sampling_error:
        body["sampling_error"] = sidecar.sampling_error
    guard = request.app.get(GUARD)
    if guard is not None:
        body["connections"] = guard.as_json()
    return web.json_response(body)


async def metrics_handler(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[METRICS].exposition(),
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )


async def _sidecar_ctx(app: web.Application) -> AsyncIterator[None]:
    """The sequence owner and its clients (Consul, API server) live and die with the app."""
    sidecar = Sidecar(app[SETTINGS], metrics=app[METRICS])
    app[SIDECAR] = sidecar
    guard = app.get(GUARD)
    if guard is not None:  # serve()'s: the sidecar's own accepts are not the app's traffic
        sidecar.sampler.observer.count_own_accepts(lambda: guard.accepted)
    await sidecar.start()
    yield
    await sidecar.close()


def create_app(settings: Settings, *, metrics: Metrics | None = None) -> web.Application:
    app = web.Application(client_max_size=64 * 1024, middlewares=[utf8_headers])
    app[SETTINGS] = settings
    app[METRICS] = metrics or Metrics()
    app[REFUSALS] = logs.RateLimited(log, level=logging.WARNING)
    app.cleanup_ctx.append(_sidecar_ctx)
    app.router.add_route("GET", contract.PRESTOP_PATH, prestop)
    app.router.add_route("POST", contract.PRESTOP_PATH, prestop)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/status", status)
    app.router.add_get("/metrics", metrics_handler)
    return app


async def serve(
    settings: Settings,
    *,
    ready: asyncio.Event | None = None,
    sock: socket.socket | None = None,
    held_signals: list[int] | None = None,
) -> int:
    """Run until the shutdown policy says exit; returns the exit code.

    ``sock``: the sidecar's port, already listening (``quiesce sidecar`` binds it before
    importing aiohttp, so a probe or ``/prestop`` sent during the start waits in the
    backlog and is answered); without it, the port is bound here. ``held_signals``:
    stop signals received during that start (``listen.hold_stop_signals``), handled
    here as if they arrived now.
    """
    logs.quiet_aiohttp()
    loop = asyncio.get_running_loop()
    limits.install_accept_error_handler(loop)
    open_files, hard = limits.raise_open_files_limit()
    app = create_app(settings)
    guard = app[GUARD] = limits.ConnectionGuard(host_ip=settings.host_ip, open_files=open_files)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=2.0,
        # limits against garbage and huge headers
        max_line_size=8190,
        max_field_size=8190,
        # closes a connection that sends no request (none yet, or none after an answer);
        # aiohttp's default, 3,630 s, let idle connections use every descriptor
        keepalive_timeout=limits.IDLE_TIMEOUT,
    )
    await runner.setup()
    site = limits.GuardedTCPSite(
        runner, settings.listen_host, settings.plan.port, guard=guard, sock=sock
    )
    await site.start()
    log.info(
        "Open-file limit %d (hard %d); at most %d connections per address and %d in all from "
        "addresses other than the node and loopback.",
        open_files,
        hard,
        guard.limits.per_address,
        guard.total_cap,
    )
    sidecar = app[SIDECAR]
    log.info(
        "quiesce sidecar ready on %s:%d (%s mode, Consul backend %s).",
        settings.listen_host,
        settings.plan.port,
        settings.mode,
        settings.consul.backend,
        extra={"port": settings.plan.port, "mode": settings.mode},
    )
    if ready is not None:
        ready.set()
    stop = asyncio.Event()
    signals_seen: list[int] = []

    def on_signal(signum: int) -> None:
        signals_seen.append(signum)
        if len(signals_seen) > 1 or signum == signal.SIGINT:
            log.warning("Second stop signal: exiting now.")
            stop.set()
            return
        if settings.mode == "native":
            log.info("SIGTERM as a native sidecar: the app is gone, exiting.")
            stop.set()
            return
        log.info("SIGTERM: exiting once the pod's shutdown allows it.")
        task = asyncio.create_task(ownsignal.on_sigterm(sidecar), name="quiesce-sigterm")
        task.add_done_callback(lambda _t: stop.set())

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    for held in held_signals or ():
        log.info("Stop signal %d received during the start.", held)
        on_signal(held)
    try:
        await stop.wait()
        # let a /prestop handler waiting on the sequence send its answer
        await asyncio.sleep(0.05)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await runner.cleanup()
    log.info("quiesce sidecar stopped.")
    return 0
