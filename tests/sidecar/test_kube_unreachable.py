"""An unreachable API server: the EndpointSlice check gives up after its timeout, noted."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient

from quiesce.sidecar import server
from quiesce.sidecar.settings import KubeSettings

from .helpers import make_settings

ClientFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


async def test_unreachable_api_server_skips_the_check_within_its_timeout(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: connections are refused
    (tmp_path / "token").write_text("t")
    settings = make_settings(
        plan={"converge_max": 4.0, "quiet_window": 0.2, "margin": 1.0},
        kube=KubeSettings(
            host="127.0.0.1",
            port=port,
            scheme="http",
            service_account_dir=str(tmp_path),
            timeout=0.5,
        ),
    )
    client = await aiohttp_client(server.create_app(settings))
    assert (await client.get("/prestop", headers={"X-Quiesce-Token": "s3cret"})).status == 200
    status = await (await client.get("/status")).json()
    converge = next(p for p in status["phases"] if p["name"] == "converge")
    assert converge["endpointslices"]["state"] == "skipped"
    assert "unreachable" in converge["endpointslices"]["reason"]
    # The unreachable API server cost its timeout, not the deadline.
    assert status["state"] == "done"
    assert converge["reason"] != "deadline", converge
