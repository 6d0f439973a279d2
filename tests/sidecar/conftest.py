"""Fixtures of the sidecar's tests."""

from __future__ import annotations

import pytest

from .helpers import external_ip


@pytest.fixture
def ext_ip() -> str:
    """This machine's non-loopback address: connections from it count as traffic."""
    ip = external_ip()
    assert not ip.startswith("127."), "tests need a non-loopback address on this machine"
    return ip
