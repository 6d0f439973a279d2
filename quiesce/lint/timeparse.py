"""Duration readers for the spellings that appear in manifests.

Each tool writes durations its own way (Go's ``1m30s``, GNU ``sleep 5m``,
Spring's ``30s`` or ``PT30S`` where a bare number means milliseconds); the
linter only needs seconds, and ``None`` when a value is not a duration it can
read, in which case no rule fires on it (a guess would be a false alarm).
Go's syntax is read by :mod:`quiesce.durations`, the parser the plan uses.
"""

from __future__ import annotations

import re

from quiesce import durations

_SLEEP = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([smhd]?)")
_SLEEP_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_ISO = re.compile(r"PT(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?", re.I)
_SPRING = re.compile(r"(\d+)\s*(ns|us|ms|s|m|h|d)?", re.I)
_SPRING_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}


def go_duration(text: str) -> float | None:
    """Seconds in a Go duration (``500ms``, ``1m30s``); a bare number is seconds."""
    text = text.strip()
    if _is_number(text):
        return float(text)
    try:
        nanoseconds = durations.parse(text)
    except durations.DurationError:
        return None
    return durations.to_seconds(nanoseconds) if nanoseconds >= 0 else None


def sleep_seconds(text: str) -> float | None:
    """Seconds in one GNU ``sleep`` argument (``5``, ``2.5``, ``1m``)."""
    match = _SLEEP.fullmatch(text.strip())
    if match is None:
        return None
    return float(match.group(1)) * _SLEEP_UNITS[match.group(2)]


def spring_duration(text: str) -> float | None:
    """Seconds in a Spring Boot duration: ``30s``, ``1m``, ``PT30S``; bare numbers are ms."""
    text = text.strip()
    iso = _ISO.fullmatch(text)
    if iso is not None and text.upper() != "PT":
        hours, minutes, seconds = (float(g) if g else 0.0 for g in iso.groups())
        return hours * 3600 + minutes * 60 + seconds
    match = _SPRING.fullmatch(text)
    if match is None:
        return None
    unit = (match.group(2) or "ms").lower()
    return int(match.group(1)) * _SPRING_UNITS[unit]


def seconds(text: str) -> float | None:
    """A plain number of seconds (``30``, ``2.5``)."""
    text = text.strip()
    return float(text) if _is_number(text) else None


def _is_number(text: str) -> bool:
    return re.fullmatch(r"\d+(?:\.\d*)?|\.\d+", text) is not None
