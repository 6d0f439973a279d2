"""The sidecar's HTTP server, in-process (pytest-aiohttp): auth, joining, status, metrics, abuse."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from quiesce.sidecar import server

from .helpers import make_settings

TOKEN = {"X-Quiesce-Token": "s3cret"}
FAST = {"converge_max": 0.4, "quiet_window": 0.1, "deregister_timeout": 0.5, "margin": 0.5}

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]
ClientFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
async def client(aiohttp_client: ClientFactory) -> TestClient[web.Request, web.Application]:
    return await aiohttp_client(server.create_app(make_settings(plan=FAST)))


async def test_prestop_without_token_is_refused_and_starts_nothing(
    client: TestClient[web.Request, web.Application],
) -> None:
    resp = await client.get("/prestop")
    assert resp.status == 403
    resp = await client.get("/prestop", headers={"X-Quiesce-Token": "wrong"})
    assert resp.status == 403
    status = await (await client.get("/status")).json()
    assert status["state"] == "idle"
    metrics = await (await client.get("/metrics")).text()
    assert 'quiesce_sidecar_prestop_requests_total{outcome="forbidden"} 2.0' in metrics


async def test_prestop_runs_the_sequence_and_status_shows_the_timeline(
    client: TestClient[web.Request, web.Application],
) -> None:
    resp = await client.get("/prestop", headers=TOKEN)
    assert resp.status == 200
    body = await resp.json()
    assert body["state"] == "done"
    status = await (await client.get("/status")).json()
    assert status["trigger"] == "prestop"
    assert [p["name"] for p in status["phases"]] == ["deregister", "converge", "signal", "drain"]
    assert status["phases"][0]["outcome"] == "skipped"
    converge = status["phases"][1]
    assert converge["reason"] in ("quiet", "ceiling")
    assert converge["endpointslices"]["state"] == "skipped"
    assert status["grace"]["source"] == "plan"
    grace = status["grace"]
    assert status["deadline"] == pytest.approx(grace["seconds"] - grace["margin"], abs=0.01)
    assert status["duration"] < status["deadline"]


async def test_concurrent_and_repeated_prestop_calls_join_the_one_sequence(
    client: TestClient[web.Request, web.Application],
) -> None:
    responses = await asyncio.gather(*(client.get("/prestop", headers=TOKEN) for _ in range(4)))
    bodies = [await r.json() for r in responses]
    assert all(r.status == 200 for r in responses)
    assert len({b["duration"] for b in bodies}) == 1
    again = await client.get("/prestop", headers=TOKEN)
    assert (await again.json())["duration"] == bodies[0]["duration"]
    status = await (await client.get("/status")).json()
    assert len(status["joined"]) == 4
    metrics = await (await client.get("/metrics")).text()
    assert 'quiesce_sidecar_sequences_total{trigger="prestop"} 1.0' in metrics
    assert 'quiesce_sidecar_phase_duration_seconds_count{phase="total"} 1.0' in metrics


async def test_health_ready_and_metrics_endpoints(
    client: TestClient[web.Request, web.Application],
) -> None:
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    resp = await client.get("/metrics")
    assert resp.headers["Content-Type"].startswith("text/plain")
    text = await resp.text()
    for name in (
        "quiesce_sidecar_phase_duration_seconds",
        "quiesce_sidecar_convergence_total",
        "quiesce_sidecar_deregistration_failures_total",
        "quiesce_sidecar_connections_after_deregistration_total",
        "quiesce_sidecar_inbound_rate",
    ):
        assert name in text


@pytest.fixture
async def external_client(ext_ip: str) -> AsyncIterator[MakeClient]:
    """A client that reaches the sidecar from a non-loopback source address."""
    made: list[TestClient[Any, Any]] = []

    async def make(**settings: Any) -> TestClient[Any, Any]:
        app = server.create_app(make_settings(plan=FAST, **settings))
        c: TestClient[Any, Any] = TestClient(TestServer(app, host=ext_ip))
        await c.start_server()
        made.append(c)
        return c

    yield make
    for c in made:
        await c.close()


async def test_prestop_from_an_address_that_is_not_the_node_is_refused(
    external_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> None:
    c = await external_client(host_ip="198.18.255.1")
    resp = await c.get("/prestop", headers=TOKEN)
    assert resp.status == 403
    assert (await (await c.get("/status")).json())["state"] == "idle"


async def test_prestop_from_the_node_is_accepted(
    external_client: Callable[..., Awaitable[TestClient[Any, Any]]], ext_ip: str
) -> None:
    c = await external_client(host_ip=ext_ip)
    assert (await c.get("/prestop", headers=TOKEN)).status == 200


async def test_source_check_can_be_switched_off_but_the_token_still_counts(
    external_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> None:
    c = await external_client(host_ip="198.18.255.1", check_source=False)
    assert (await c.get("/prestop")).status == 403
    assert (await c.get("/prestop", headers=TOKEN)).status == 200


async def _raw(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(200), 2.0)
    finally:
        writer.close()


async def test_garbage_huge_headers_and_slow_clients_do_no_harm(
    client: TestClient[web.Request, web.Application],
) -> None:
    port = client.server.port
    assert port is not None
    assert b" 400 " in await _raw(port, b"\x16\x03\x01garbage\r\n\r\n")
    huge = b"GET /prestop HTTP/1.1\r\nX-Quiesce-Token: s3cret\r\nX-Big: %s\r\n\r\n" % (b"a" * 70000)
    answer = await _raw(port, huge)
    assert b" 400 " in answer or b" 431 " in answer
    slow = socket.create_connection(("127.0.0.1", port))
    slow.sendall(b"GET /prestop HTTP/1.1\r\nX-Quiesce-")  # never finished
    try:
        assert (await client.get("/healthz")).status == 200
        assert (await (await client.get("/status")).json())["state"] == "idle"
    finally:
        slow.close()


async def test_a_consul_client_that_cannot_be_built_fails_deregistration_only(
    aiohttp_client: ClientFactory, tmp_path: Any
) -> None:
    from quiesce.sidecar.settings import ConsulSettings

    consul = ConsulSettings(
        backend="agent",
        address="127.0.0.1:8501",
        scheme="https",
        ca_file=str(tmp_path / "missing-ca.pem"),
    )
    client = await aiohttp_client(server.create_app(make_settings(plan=FAST, consul=consul)))
    assert (await client.get("/prestop", headers=TOKEN)).status == 200
    status = await (await client.get("/status")).json()
    phases = {p["name"]: p for p in status["phases"]}
    assert phases["deregister"]["outcome"] == "failed"
    assert "FileNotFoundError" in phases["deregister"]["failures"][0]["error"]
    assert phases["signal"]["outcome"] == "ok"  # the sequence went on
    assert status["state"] == "done"


async def test_thirty_thousand_joins_keep_status_small(
    aiohttp_client: ClientFactory,
) -> None:
    """A count and the last few joins: /status stays small however often /prestop is called."""
    app = server.create_app(
        make_settings(plan={**FAST, "converge_min": 30.0, "converge_max": 30.0})
    )
    client = await aiohttp_client(app)
    sidecar = app[server.SIDECAR]
    first = sidecar.trigger("prestop")
    for _ in range(30_000):
        assert sidecar.trigger("prestop") is first
    body = await (await client.get("/status")).read()
    print(f"/status after 30,000 joins: {len(body)} bytes")
    status = json.loads(body)
    assert status["joined_count"] == 30_000
    assert 0 < len(status["joined"]) <= 10
    assert len(body) < 8192
