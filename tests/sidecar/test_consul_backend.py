"""Deregistration against a real Consul agent: agent and catalog APIs, matching, faults."""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from quiesce.sidecar.consul_backend import ConsulBackend, PodIdentity
from quiesce.sidecar.settings import ConsulSettings

from .helpers import ConsulAPI

pytestmark = pytest.mark.rig

POD = PodIdentity(name="web-7d9f-abcde", namespace="shop", uid="6c1f-uid", ip="198.18.200.17")
META = {"pod-name": POD.name, "k8s-namespace": POD.namespace, "pod-uid": POD.uid}


def backend(addr: str, kind: str = "auto", **kw: object) -> ConsulBackend:
    return ConsulBackend(
        ConsulSettings(backend=kind, address=addr, request_timeout=1.0),  # type: ignore[arg-type]
        pod=POD,
        **kw,  # type: ignore[arg-type]
    )


def name() -> str:
    return f"web-{secrets.token_hex(3)}"


async def test_agent_instances_matched_by_meta_or_address_are_deregistered_others_stay(
    consul_api: ConsulAPI, consul_http_addr: str
) -> None:
    svc = name()
    by_meta = await consul_api.register_agent(Name=svc, Address="10.9.9.9", Port=80, Meta=META)
    by_addr = await consul_api.register_agent(Name=svc, Address=POD.ip, Port=8080)
    twice = await consul_api.register_agent(Name=svc + "-admin", Address=POD.ip, Port=9090)
    other_meta = {**META, "pod-name": "web-7d9f-other"}
    other = await consul_api.register_agent(Name=svc, Address="10.9.9.10", Port=80, Meta=other_meta)
    b = backend(consul_http_addr, "agent")
    try:
        report = await b.deregister(time.monotonic() + 5)
        assert report.failures == []
        assert {i.service_id for i in report.deregistered} == {by_meta, by_addr, twice}
        assert {i.via for i in report.deregistered} == {"agent"}
        assert {i.matched_by for i in report.deregistered} == {"meta", "address"}
        left = await consul_api.agent_ids()
        assert other in left and not {by_meta, by_addr, twice} & left
        assert await consul_api.passing_ids(svc) == {other}
        assert await b.still_listed(report.found, time.monotonic() + 2) == []
    finally:
        await b.close()


async def test_maintenance_comes_first_so_health_filtered_queries_drop_the_instance(
    consul_api: ConsulAPI, consul_http_addr: str
) -> None:
    """Maintenance alone already hides the instance (the deregistration that follows may fail)."""
    svc = name()
    sid = await consul_api.register_agent(Name=svc, Address=POD.ip, Port=80)
    b = backend(consul_http_addr, "agent")
    try:
        found = await b.find(time.monotonic() + 5, report=_report(consul_http_addr))
        assert [i.service_id for i in found] == [sid]
        client = b._consul()
        await client.agent.service.maintenance(sid, True, "test")
        assert await consul_api.passing_ids(svc) == set()
        assert [i.service_id for i in await b.still_listed(found, time.monotonic() + 2)] == []
    finally:
        await b.close()


def _report(addr: str):  # type: ignore[no-untyped-def]
    from quiesce.sidecar.consul_backend import Report

    return Report(backend="agent", address=addr)


async def test_catalog_instances_on_virtual_nodes_are_deregistered_through_the_catalog(
    consul_api: ConsulAPI, consul_http_addr: str
) -> None:
    svc = name()
    node = f"k8s-{secrets.token_hex(2)}-virtual"
    ours = await consul_api.register_catalog(
        node, "127.0.0.2", Service=svc, Address=POD.ip, Port=80, Meta=META
    )
    theirs = await consul_api.register_catalog(
        node, "127.0.0.2", Service=svc, Address="198.18.200.99", Port=80
    )
    b = backend(consul_http_addr, "catalog")
    try:
        report = await b.deregister(time.monotonic() + 5)
        assert report.failures == []
        assert [(i.node, i.service_id, i.via) for i in report.deregistered] == [
            (node, ours, "catalog")
        ]
        assert await consul_api.catalog_ids(svc) == {(node, theirs)}
    finally:
        await b.close()


async def test_auto_uses_the_agent_api_for_agent_instances_and_the_catalog_for_the_rest(
    consul_api: ConsulAPI, consul_http_addr: str
) -> None:
    svc = name()
    on_agent = await consul_api.register_agent(Name=svc, Address=POD.ip, Port=80)
    node = f"k8s-{secrets.token_hex(2)}-virtual"
    on_virtual = await consul_api.register_catalog(
        node, "127.0.0.3", Service=svc, Port=81, Meta=META
    )
    b = backend(consul_http_addr, "auto")
    try:
        report = await b.deregister(time.monotonic() + 5)
        assert report.failures == []
        assert {(i.service_id, i.via) for i in report.deregistered} == {
            (on_agent, "agent"),
            (on_virtual, "catalog"),
        }
        assert await consul_api.catalog_ids(svc) == set()
    finally:
        await b.close()


async def test_explicit_ids_are_deregistered_whatever_their_address(
    consul_api: ConsulAPI, consul_http_addr: str
) -> None:
    svc = name()
    sid = await consul_api.register_agent(Name=svc, Address="10.1.2.3", Port=80)
    unrelated = await consul_api.register_agent(Name=svc, Address="10.1.2.4", Port=80)
    b = backend(consul_http_addr, "auto", explicit=(sid,))
    try:
        report = await b.deregister(time.monotonic() + 5)
        assert [i.service_id for i in report.deregistered] == [sid]
        assert unrelated in await consul_api.agent_ids()
    finally:
        await b.close()


async def test_service_names_restrict_the_match_to_those_services(
    consul_api: ConsulAPI, consul_http_addr: str
) -> None:
    svc, sidecar_svc = name(), name()
    wanted = await consul_api.register_agent(Name=svc, Address=POD.ip, Port=80)
    kept = await consul_api.register_agent(Name=sidecar_svc, Address=POD.ip, Port=81)
    b = backend(consul_http_addr, "auto", explicit=(svc,))
    try:
        report = await b.deregister(time.monotonic() + 5)
        assert [i.service_id for i in report.deregistered] == [wanted]
        assert kept in await consul_api.agent_ids()
    finally:
        await b.close()


async def test_instances_already_gone_are_not_an_error(consul_http_addr: str) -> None:
    b = backend(consul_http_addr, "auto")
    try:
        report = await b.deregister(time.monotonic() + 5)
        assert report.failures == []
        assert report.deregistered == []
    finally:
        await b.close()


# --- faults: every one bounded by the deadline, recorded, never raised -------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_consul_is_retried_then_reported_when_the_budget_ends() -> None:
    addr = f"127.0.0.1:{_closed_port()}"
    b = backend(addr, "auto")
    try:
        # The budget ends the retries; wait_for only gives up on a hang (a failure).
        report = await asyncio.wait_for(b.deregister(time.monotonic() + 1.5), timeout=30)
    finally:
        await b.close()
    assert report.failures
    errors = " ".join(f["error"] for f in report.failures)
    assert addr in errors
    assert "ClientConnectorError" in errors


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """Accepts connections and never answers: a Consul that hangs."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        held.append(w)

    srv = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield f"127.0.0.1:{srv.sockets[0].getsockname()[1]}"
    srv.close()
    for w in held:
        w.close()


async def test_a_hanging_consul_cannot_hold_the_sequence_it_times_out(
    silent_server: str,
) -> None:
    b = backend(silent_server, "agent")
    try:
        report = await asyncio.wait_for(b.deregister(time.monotonic() + 2.5), timeout=30)
    finally:
        await b.close()
    assert "timed out" in report.failures[-1]["error"]


@pytest.fixture
async def failing_server() -> AsyncIterator[str]:
    """Answers every call with 500, as a Consul without a leader does."""

    async def fail(_request: web.Request) -> web.Response:
        return web.Response(status=500, text="No cluster leader")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fail)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"127.0.0.1:{port}"
    await runner.cleanup()


async def test_consul_answering_5xx_is_retried_with_backoff_and_reported(
    failing_server: str,
) -> None:
    b = backend(failing_server, "agent")
    try:
        report = await asyncio.wait_for(b.deregister(time.monotonic() + 3.0), timeout=30)
    finally:
        await b.close()
    assert len(report.failures) > 1, "retried"
    assert "500 No cluster leader" in report.failures[-1]["error"]
