"""The rate limiter behind the sidecar's noise lines: one line per interval, with the count."""

from __future__ import annotations

import logging

import pytest
from aiohttp.http_exceptions import BadHttpMessage

from quiesce.sidecar import logs


def test_a_thousand_parse_errors_are_one_debug_line_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    noise = logs.HttpNoiseFilter()
    aiohttp_server = logging.getLogger("aiohttp.server")
    caplog.set_level(logging.DEBUG)
    for _ in range(1000):
        try:
            raise BadHttpMessage("Invalid header token:\n\n  b'x'")
        except BadHttpMessage:
            record = aiohttp_server.makeRecord(
                "aiohttp.server",
                logging.ERROR,
                __file__,
                1,
                "Error handling request from %s",
                ("198.18.0.9",),
                exc_info=__import__("sys").exc_info(),
            )
        assert noise.filter(record) is False  # aiohttp's own record never goes out
    lines = [r for r in caplog.records if r.name == "quiesce.sidecar.http"]
    assert len(lines) == 1
    assert lines[0].levelno == logging.DEBUG and lines[0].exc_info is None
    assert lines[0].getMessage() == (
        "Malformed request from 198.18.0.9, answered 400: Invalid header token."
    )
    assert noise.malformed.suppressed == 999


def test_the_next_line_after_the_interval_says_how_many_were_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    limited = logs.RateLimited(logging.getLogger("quiesce.test"), level=logging.DEBUG, interval=0)
    limited._next = float("inf")  # inside an interval: counted, not logged
    for _ in range(5):
        assert not limited("noise %d", 1)
    limited._next = 0.0
    assert limited("noise %d", 2)
    assert caplog.records[-1].getMessage() == "noise 2 (5 more like it since the last line)"
