"""Reading one input field into a value or a :class:`model.FieldError`.

Annotations (:mod:`quiesce.plan.build`) and the configuration's ``plan:``
mapping (:mod:`quiesce.plan.defaults`) share these readers, so a duration, a
boolean or a port is accepted, refused and explained the same way in both.
Each reader appends its error to the caller's list and returns None, so a
caller collects every problem at once.
"""

from __future__ import annotations

import difflib
import re
import shlex
import typing
from collections.abc import Sequence
from typing import Any, Final

from quiesce import durations, values
from quiesce.plan import model
from quiesce.plan.model import FieldError

DURATION_EXPECTED: Final = "Go syntax such as 500ms, 10s, 1m30s"


def command(command: Any) -> str:
    """An exec command as a shell line when it is a list of strings (for messages)."""
    if isinstance(command, list) and all(isinstance(part, str) for part in command):
        return shlex.join(command)
    return model.show(command)


def scalar_text(value: Any) -> str | None:
    """A YAML scalar as text (``true`` -> "true", 7979 -> "7979"); None for structures."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


def is_port(value: Any) -> typing.TypeGuard[int]:
    """A port number as Kubernetes stores one (an int, not a bool, 1..65535)."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def unknown_key(name: str, value: Any, short: str, known: Sequence[str], prefix: str) -> FieldError:
    """An unknown key's error, naming the closest known key (or all of them)."""
    hint = difflib.get_close_matches(short, known, n=1, cutoff=0.6)
    if hint:
        expected = f"{prefix}{hint[0]} (the closest known key)"
    else:
        expected = "one of " + ", ".join(prefix + key for key in known)
    return FieldError(name, model.show(value), expected, "is set on an unknown key")


def duration(name: str, raw: str, errors: list[FieldError]) -> int | None:
    """Nanoseconds of a Go duration from 0 to :data:`model.MAX_DURATION`."""
    try:
        ns = durations.parse(raw.strip())
    except durations.DurationError:
        text = raw.strip()
        expected = DURATION_EXPECTED
        if len(text) <= 32 and re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):
            expected += f' (did you mean "{text}s"?)'
        errors.append(FieldError(name, raw, expected, "is not a duration"))
        return None
    if ns < 0:
        errors.append(FieldError(name, raw, "a duration of 0s or more", "is negative"))
        return None
    if ns > model.MAX_DURATION:
        errors.append(
            FieldError(
                name, raw, f"at most {durations.format(model.MAX_DURATION)}", "is out of range"
            )
        )
        return None
    return ns


def boolean(name: str, raw: str, errors: list[FieldError]) -> bool | None:
    """A boolean in :func:`quiesce.values.parse_bool`'s grammar."""
    try:
        return values.parse_bool(raw)
    except ValueError:
        errors.append(FieldError(name, raw, values.BOOL_EXPECTED, "is not a boolean"))
        return None


def port(name: str, raw: str, errors: list[FieldError]) -> int | None:
    """A port number from 1 to 65535."""
    try:
        return values.parse_port(raw)
    except ValueError:
        errors.append(FieldError(name, raw, values.PORT_EXPECTED, "is not a port"))
        return None
