"""Fixtures of the sidecar's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from quiesce.rig import network

from .helpers import ConsulAPI, FakeContainer


@pytest.fixture
def ext_ip(rig_network: network.RigNetwork) -> str:
    """A non-loopback address of this machine: connections from it count as traffic.

    The rig's bridge address: the tests made it, so their traffic never goes to
    an address of the machine's real network.
    """
    return rig_network.host_ip


@pytest.fixture
def container() -> Iterator[Callable[..., FakeContainer]]:
    """Factory: start argv as the main process of a fresh fake container."""
    made: list[FakeContainer] = []

    def make(argv: list[str], **popen: Any) -> FakeContainer:
        c = FakeContainer(argv, **popen)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()


@pytest.fixture
def consul_http_addr(request: pytest.FixtureRequest) -> str:
    """The rig's real Consul agent ("IP:port")."""
    agent = request.getfixturevalue("consul_agent")
    return str(agent.http_addr)


@pytest.fixture
async def consul_api(consul_http_addr: str) -> AsyncIterator[ConsulAPI]:
    api = ConsulAPI(consul_http_addr)
    yield api
    await api.cleanup()
