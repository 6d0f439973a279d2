"""Fixtures of the sidecar's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from .helpers import ConsulAPI, FakeContainer, external_ip


@pytest.fixture
def ext_ip() -> str:
    """This machine's non-loopback address: connections from it count as traffic."""
    ip = external_ip()
    assert not ip.startswith("127."), "tests need a non-loopback address on this machine"
    return ip


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
