"""Structured logs: one JSON object per line (default) or plain text.

Values that matter go in ``extra=`` and become JSON keys, so a log pipeline can
filter by pod, service ID or seconds left without parsing sentences.

Noise from the network never floods the log: anyone on the pod network can
send the sidecar's port garbage, so a malformed request is one debug line,
at most one per :data:`NOISE_INTERVAL` and kind, never a traceback
(:class:`HttpNoiseFilter`); the same limiter serves the accept() and
connection-cap episodes of :mod:`quiesce.sidecar.limits`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

#: At most one line per this many seconds for one kind of noise.
NOISE_INTERVAL = 10.0

_STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, static: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.static = static or {}

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **self.static,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class RateLimited:
    """One kind of noise: at most one line per ``interval``, with how many were left out."""

    def __init__(
        self, logger: logging.Logger, *, level: int, interval: float = NOISE_INTERVAL
    ) -> None:
        self.logger = logger
        self.level = level
        self.interval = interval
        self._next = 0.0
        self.suppressed = 0
        self.total = 0

    def allow(self) -> bool:
        """Whether one more of this kind may be logged now (counts it either way)."""
        self.total += 1
        now = time.monotonic()
        if now < self._next or not self.logger.isEnabledFor(self.level):
            self.suppressed += 1
            return False
        self._next = now + self.interval
        return True

    def __call__(self, msg: str, *args: object, **extra: Any) -> bool:
        """Log ``msg`` unless one was logged in the last ``interval``; whether it was."""
        if not self.allow():
            return False
        if self.suppressed:
            msg += " (%d more like it since the last line)"
            args = (*args, self.suppressed)
            extra["suppressed"] = self.suppressed
        self.suppressed = 0
        self.logger.log(self.level, msg, *args, extra=extra)
        return True


class HttpNoiseFilter(logging.Filter):
    """aiohttp's server log, rate-limited: a malformed request is debug, a bug is an error.

    aiohttp logs every request it cannot parse as an ERROR with a traceback
    (1,000 of them added 593 KB of log). A parse error (an
    ``HttpProcessingError``: a bad request line, header, encoding) becomes one
    debug line without a traceback, at most one per interval; anything else
    aiohttp reports (a handler that raised) stays an error with its traceback,
    rate-limited the same way.
    """

    def __init__(self) -> None:
        super().__init__()
        target = logging.getLogger("quiesce.sidecar.http")
        self.malformed = RateLimited(target, level=logging.DEBUG)
        self.errors = RateLimited(target, level=logging.ERROR)

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            reason = str(exc.message).strip().splitlines() or [type(exc).__name__]
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            self.malformed(
                "Malformed request from %s, answered %d: %s.",
                remote,
                exc.code,
                reason[0][:200].rstrip(":. "),
                kind=type(exc).__name__,
            )
            return False
        if record.levelno >= logging.ERROR:
            if not self.errors.allow():
                return False
            # the first error of an interval goes out as aiohttp wrote it, traceback included
            if self.errors.suppressed:
                record.suppressed = self.errors.suppressed
                self.errors.suppressed = 0
        return True


def quiet_aiohttp() -> None:
    """Install :class:`HttpNoiseFilter` on aiohttp's server logger (once)."""
    server_logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, HttpNoiseFilter) for f in server_logger.filters):
        server_logger.addFilter(HttpNoiseFilter())


def configure(fmt: str, *, pod: str = "", level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter({"pod": pod} if pod else None))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    quiet_aiohttp()
