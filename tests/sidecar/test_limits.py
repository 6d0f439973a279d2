"""The connection guard's arithmetic: caps per address and in all, the node and loopback exempt."""

from __future__ import annotations

import asyncio
import errno

import pytest

from quiesce.sidecar.limits import ConnectionGuard, ConnectionLimits, install_accept_error_handler

NODE = "198.18.0.1"


def guard(**limits: int) -> ConnectionGuard:
    return ConnectionGuard(host_ip=NODE, limits=ConnectionLimits(**limits), open_files=100_000)


def test_one_address_past_its_cap_is_refused_and_others_still_get_in() -> None:
    g = guard(per_address=3, total=10, reserve=0)
    assert [g.admit("10.0.0.5") for _ in range(5)] == [True, True, True, False, False]
    assert g.admit("10.0.0.6")
    g.release("10.0.0.5")
    assert g.admit("10.0.0.5")
    assert g.refused == 2
    assert g.as_json()["open"] == 4


def test_the_node_and_loopback_are_never_capped() -> None:
    g = guard(per_address=1, total=1, reserve=0)
    assert g.admit("10.0.0.5")
    assert not g.admit("10.0.0.6")  # the total cap is reached
    for remote in (NODE, "127.0.0.1", "::1", "::ffff:127.0.0.1", f"::ffff:{NODE}") * 50:
        assert g.admit(remote)
    assert g.as_json()["open"] == 1


def test_the_total_cap_keeps_a_reserve_of_descriptors_under_a_low_open_file_limit() -> None:
    g = ConnectionGuard(
        host_ip=NODE,
        limits=ConnectionLimits(per_address=1000, total=1000, reserve=100),
        open_files=150,
    )
    assert g.total_cap == 50
    assert sum(g.admit(f"10.0.{i // 250}.{i % 250}") for i in range(60)) == 50


async def test_accept_errors_out_of_descriptors_are_one_line_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    try:
        install_accept_error_handler(loop)
        for _ in range(500):  # asyncio reports up to the backlog's length per try
            loop.call_exception_handler(
                {
                    "message": "socket.accept() out of system resource",
                    "exception": OSError(errno.EMFILE, "Too many open files"),
                }
            )
    finally:
        loop.set_exception_handler(previous)
    lines = [r for r in caplog.records if "accept()" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None
    assert "Too many open files" in lines[0].getMessage()
