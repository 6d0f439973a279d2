"""Go duration syntax (``500ms``, ``10s``, ``1m30s``), parsed and printed exactly as Go does.

Kubernetes users read and write durations the way ``time.ParseDuration`` spells
them (kubectl, Helm values, Consul). Parsing works in integer nanoseconds, as
Go does, so ``format(parse(text))`` is the same canonical string Go would print
and no float rounding creeps into a budget. Pure: the sidecar imports this.
"""

from __future__ import annotations

import re
from typing import Final

NANOSECOND: Final = 1
MICROSECOND: Final = 1_000
MILLISECOND: Final = 1_000_000
SECOND: Final = 1_000_000_000
MINUTE: Final = 60 * SECOND
HOUR: Final = 60 * MINUTE

#: Largest value Go's ``time.Duration`` (an int64 of nanoseconds) can hold.
MAX_NANOSECONDS: Final = 2**63 - 1

_UNITS: Final[dict[str, int]] = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "µs": MICROSECOND,  # U+00B5 micro sign
    "μs": MICROSECOND,  # U+03BC greek small letter mu
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}

# One "<number><unit>" term: digits with an optional fraction (either side may be empty,
# not both), then the unit. Go's parser accepts exactly these terms.
_TERM: Final = re.compile(r"([0-9]*)(?:\.([0-9]*))?(ns|us|µs|μs|ms|s|m|h)")


class DurationError(ValueError):
    """A string that Go's ``time.ParseDuration`` would reject (or that overflows it)."""


def parse(text: str) -> int:
    """Parse a Go duration into integer nanoseconds (may be negative, as in Go)."""
    if not isinstance(text, str):
        raise DurationError(f"not a string: {type(text).__name__}")
    shown = text if len(text) <= 40 else text[:39] + "…"  # messages stay small
    rest = text
    negative = False
    if rest[:1] in ("-", "+"):
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise DurationError(f"invalid duration {shown!r}")
    total = 0
    pos = 0
    while pos < len(rest):
        match = _TERM.match(rest, pos)
        if match is None or (not match.group(1) and not match.group(2)):
            if match is None and rest[pos:].lstrip("0123456789.") == "":
                raise DurationError(f"missing unit in duration {shown!r}")
            raise DurationError(f"invalid duration {shown!r}")
        whole, fraction, unit = match.group(1), match.group(2) or "", match.group(3)
        if len(whole.lstrip("0")) > 20:  # beyond int64 nanoseconds in any unit
            raise DurationError(f"invalid duration {shown!r}: out of range")
        fraction = fraction[:20]  # digits past nanosecond precision change nothing
        scale = _UNITS[unit]
        # Leading zeros are stripped first: int() refuses over 4,300 digits (ValueError).
        value = int(whole.lstrip("0") or "0") * scale
        if fraction:
            value += int(fraction) * scale // 10 ** len(fraction)
        total += value
        if total > MAX_NANOSECONDS + (1 if negative else 0):
            raise DurationError(f"invalid duration {shown!r}: out of range")
        pos = match.end()
    return -total if negative else total


def format(nanoseconds: int) -> str:
    """Print integer nanoseconds exactly as Go's ``Duration.String`` does (``1m30s``, ``500ms``)."""
    if nanoseconds == 0:
        return "0s"
    sign = "-" if nanoseconds < 0 else ""
    u = abs(nanoseconds)
    if u < SECOND:
        # Sub-second values use a smaller unit: 1.5ms, 250ns.
        for unit, scale in (("ns", NANOSECOND), ("µs", MICROSECOND), ("ms", MILLISECOND)):
            if u < scale * 1000:
                return sign + _fixed(u, scale) + unit
    hours, u = divmod(u, HOUR)
    minutes, u = divmod(u, MINUTE)
    text = _fixed(u, SECOND) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _fixed(value: int, scale: int) -> str:
    """``value / scale`` as a decimal without trailing zeros (Go's fmtFrac + fmtInt)."""
    whole, frac = divmod(value, scale)
    if not frac:
        return str(whole)
    digits = len(str(scale)) - 1
    return f"{whole}.{frac:0{digits}d}".rstrip("0")


def from_seconds(seconds: float) -> int:
    """Float seconds (the plan's unit) to integer nanoseconds, rounded to the nearest."""
    return round(seconds * SECOND)


def to_seconds(nanoseconds: int) -> float:
    """Integer nanoseconds to float seconds (the plan's unit)."""
    return nanoseconds / SECOND


def format_seconds(seconds: float) -> str:
    """Float seconds in Go syntax, for messages and tables (``20s``, ``1.5s``)."""
    return format(from_seconds(seconds))
