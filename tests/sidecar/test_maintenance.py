"""A restart's reversible leaving, against a real Consul agent: maintenance with the pod's
UID, lifted only where this pod set it; catalog entries registered again as they were."""

from __future__ import annotations

import secrets
import time

import pytest

from quiesce.sidecar import maintenance
from quiesce.sidecar.consul_backend import Report
from quiesce.sidecar.kubeapi import PodFacts

from .helpers import ConsulAPI
from .test_consul_backend import META, POD, backend

pytestmark = pytest.mark.rig


def svc_name() -> str:
    return f"web-{secrets.token_hex(3)}"


async def no_pod() -> PodFacts | None:
    return None


async def test_maintenance_carries_the_pod_uid_and_only_ours_is_lifted(
    consul_api: ConsulAPI, consul_http_addr: str
) -> None:
    svc = svc_name()
    ours = await consul_api.register_agent(Name=svc, Address=POD.ip, Port=80, Meta=META)
    other = await consul_api.register_agent(Name=svc, Address=POD.ip, Port=81, Meta=META)
    # an operator's own maintenance on the other instance, set before the sidecar
    await consul_api._put(f"/v1/agent/service/maintenance/{other}?enable=true&reason=ops")
    b = backend(consul_http_addr, "agent")
    try:
        until = time.monotonic() + 5
        report = Report(backend="agent", address=consul_http_addr)
        found = await b.find(until, report)
        entered = await maintenance.enter(b, found, until=until, uid=POD.uid, report=report)
        assert [i.service_id for i in entered] == [ours]
        assert await consul_api.passing_ids(svc) == set()
        checks = await consul_api.get("/v1/agent/checks")
        assert POD.uid in checks[f"_service_maintenance:{ours}"]["Notes"]

        held = maintenance.Held(agent={i.service_id: i for i in entered})
        keeper = maintenance.Keeper(
            consul=b, read_pod=no_pod, tl=None, held=held, before={}, targets=(), uid=POD.uid
        )
        await keeper.lift()
        checks = await consul_api.get("/v1/agent/checks")
        assert f"_service_maintenance:{ours}" not in checks
        assert checks[f"_service_maintenance:{other}"]["Notes"] == "ops"  # never ours to lift
        assert [u["id"] for u in keeper.undid] == [ours]
    finally:
        await b.close()


async def test_a_dropped_maintenance_check_is_reasserted(
    consul_api: ConsulAPI, consul_http_addr: str
) -> None:
    svc = svc_name()
    sid = await consul_api.register_agent(Name=svc, Address=POD.ip, Port=80, Meta=META)
    b = backend(consul_http_addr, "agent")
    try:
        until = time.monotonic() + 5
        report = Report(backend="agent", address=consul_http_addr)
        found = await b.find(until, report)
        entered = await maintenance.enter(b, found, until=until, uid=POD.uid, report=report)
        # the app registers again, replacing its checks: the maintenance check is gone
        await consul_api._put(
            "/v1/agent/service/register?replace-existing-checks=true",
            {"ID": sid, "Name": svc, "Address": POD.ip, "Port": 80, "Meta": META},
        )
        assert f"_service_maintenance:{sid}" not in await consul_api.get("/v1/agent/checks")
        keeper = maintenance.Keeper(
            consul=b,
            read_pod=no_pod,
            tl=None,
            held=maintenance.Held(agent={i.service_id: i for i in entered}),
            before={},
            targets=(),
            uid=POD.uid,
        )
        await keeper.reassert()
        assert f"_service_maintenance:{sid}" in await consul_api.get("/v1/agent/checks")
        assert await consul_api.passing_ids(svc) == set()
        assert [u["action"] for u in keeper.undid] == ["reasserted"]
    finally:
        await b.close()


async def test_catalog_instances_are_removed_and_registered_again_exactly(
    consul_api: ConsulAPI, consul_http_addr: str
) -> None:
    svc = svc_name()
    node = f"k8s-{secrets.token_hex(2)}-virtual"
    sid = await consul_api.register_catalog(
        node, "127.0.0.2", Service=svc, Address=POD.ip, Port=80, Meta=META, Tags=["v1"]
    )
    before = await consul_api.get(f"/v1/catalog/service/{svc}")
    b = backend(consul_http_addr, "catalog")
    try:
        until = time.monotonic() + 5
        report = Report(backend="catalog", address=consul_http_addr)
        found = await b.find(until, report)
        kept = await maintenance.remove_catalog(b, found, until=until, report=report)
        assert await consul_api.catalog_ids(svc) == set()
        keeper = maintenance.Keeper(
            consul=b,
            read_pod=no_pod,
            tl=None,
            held=maintenance.Held(catalog=kept),
            before={},
            targets=(),
            uid=POD.uid,
        )
        await keeper.lift()
        after = await consul_api.get(f"/v1/catalog/service/{svc}")
        keys = ("Node", "ServiceID", "ServiceAddress", "ServicePort", "ServiceMeta", "ServiceTags")
        assert [{k: e[k] for k in keys} for e in after] == [{k: e[k] for k in keys} for e in before]
        assert [u["id"] for u in keeper.undid] == [sid]
    finally:
        await b.close()
