"""The plan's errors: each names the annotation, the value and what is expected, in bounded size.

Any tenant who can annotate a workload feeds the operator input, so an error's
texts, the errors per key and the list as a whole are capped here, where every
error is made, and :func:`render_errors` fits a list into any message limit
(an Event, a status annotation, a webhook warning). Standard library only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import reprlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

# -- bounds on what an error may carry ------------------------------------------------
# Any tenant who can annotate a workload feeds the operator input (up to the API
# server's 256 KiB of annotations), so nothing an error holds grows with that input:
# echoed values are cut, each key reports a few errors then "and K more", the list
# as a whole is capped, and list annotations have a documented length.

#: Characters of a raw value an error echoes; longer values are cut, their length stated.
MAX_VALUE_CHARS: Final = 200
#: Characters of an error's other texts (its key, what is expected, the problem).
MAX_TEXT_CHARS: Final = 600
#: Errors reported for one key; the rest become one "and K more" entry.
MAX_ERRORS_PER_KEY: Final = 5
#: Errors reported in all; the rest become one final "and K more" entry.
MAX_ERRORS: Final = 25
#: Items a list annotation (containers, consul-service, long-lived-ports) may hold.
MAX_LIST_ITEMS: Final = 64
#: Characters of ``str(PlanError)``; callers with tighter limits use :func:`render_errors`.
MAX_MESSAGE_CHARS: Final = 8192
_ELLIPSIS: Final = "…"


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, an ellipsis marking the cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + _ELLIPSIS


@dataclasses.dataclass(frozen=True)
class FieldError:
    """One bad input: which annotation, the raw value, what was wrong, what is expected.

    Bounded by construction: ``value`` keeps :data:`MAX_VALUE_CHARS` characters
    (``length`` then gives the full length), the other texts :data:`MAX_TEXT_CHARS`.
    """

    annotation: str
    value: str
    expected: str
    problem: str = "is invalid"
    length: int | None = None
    """The raw value's full length in characters when ``value`` was cut, else None."""

    def __post_init__(self) -> None:
        value = self.value if isinstance(self.value, str) else show(self.value)
        if len(value) > MAX_VALUE_CHARS:
            object.__setattr__(self, "length", self.length or len(value))
            value = clip(value, MAX_VALUE_CHARS)
        object.__setattr__(self, "value", value)
        for name in ("annotation", "expected", "problem"):
            text = getattr(self, name)
            text = text if isinstance(text, str) else show(text)
            object.__setattr__(self, name, clip(text, MAX_TEXT_CHARS))

    def __str__(self) -> str:
        shown = _quote(self.value)
        if self.length is not None:
            shown += f" ({self.length} characters)"
        return f"{self.annotation}: {shown} {self.problem}; expected {self.expected}"


@dataclasses.dataclass(frozen=True)
class MoreErrors(FieldError):
    """Stands for the errors left out of a bounded list: "and K more" (``count`` of them)."""

    count: int = 0

    def __str__(self) -> str:
        return f"{self.annotation}: {self.problem}"


def more_errors(annotation: str, count: int, *, of: str = "error") -> MoreErrors:
    """The "and K more" entry standing for ``count`` errors left out."""
    plural = "s" if count != 1 else ""
    return MoreErrors(
        annotation,
        "",
        "",
        f"and {count} more {of}{plural} (only the first are listed)",
        count=count,
    )


class ErrorList(list[FieldError]):
    """The plan's error list: it keeps what :class:`PlanError` reports, and counts the rest.

    At most :data:`MAX_ERRORS_PER_KEY` errors per key and :data:`MAX_ERRORS` in all
    are kept; :meth:`bounded` adds one "and K more" entry for what was left out. So
    reading an annotation of 40,000 bad names holds a few errors, not 40,000.
    """

    def __init__(self, errors: Iterable[FieldError] = ()) -> None:
        super().__init__()
        self.per_key: dict[str, int] = {}
        self.dropped: dict[str, int] = {}
        self.extend(errors)

    def append(self, error: FieldError) -> None:
        key = error.annotation
        if isinstance(error, MoreErrors):
            self.dropped[key] = self.dropped.get(key, 0) + error.count
            return
        seen = self.per_key.get(key, 0)
        if seen >= MAX_ERRORS_PER_KEY or len(self) >= MAX_ERRORS:
            self.dropped[key] = self.dropped.get(key, 0) + 1
            if key not in self.per_key and len(self.dropped) > MAX_ERRORS:
                # Distinct keys are counted, not remembered, past a bound of their own.
                self.dropped.pop(key)
                self.dropped["metadata.annotations"] = (
                    self.dropped.get("metadata.annotations", 0) + 1
                )
            return
        self.per_key[key] = seen + 1
        super().append(error)

    def extend(self, errors: Iterable[FieldError]) -> None:
        for error in errors:
            self.append(error)

    def full(self, key: str) -> bool:
        """True when another error for ``key`` would only be counted (skip costly hints)."""
        return self.per_key.get(key, 0) >= MAX_ERRORS_PER_KEY or len(self) >= MAX_ERRORS

    def bounded(self) -> tuple[FieldError, ...]:
        """The kept errors, then "and K more" for each key with errors left out."""
        kept: list[FieldError] = list(self)
        listed = {e.annotation for e in kept}
        others = 0
        for key, count in self.dropped.items():
            if key in listed:
                kept.append(more_errors(key, count))
            else:
                others += count
        if others:
            kept.append(more_errors("(other keys)", others))
        return tuple(kept)


def render_errors(errors: Sequence[FieldError], max_chars: int, *, separator: str = "; ") -> str:
    """The errors as one message of at most ``max_chars`` characters.

    Errors are joined with ``separator`` while they fit; the rest are summed up
    as "(and K more)", and an error too long to fit even alone is cut. For the
    operator's Event (``max_chars=1024``), its status annotation, or one
    webhook warning per error (``render_errors([e], 120)``).
    """
    if max_chars <= 0:
        return ""
    total = sum(e.count if isinstance(e, MoreErrors) else 1 for e in errors)
    parts: list[str] = []
    used = 0
    shown = 0
    for error in errors:
        text = str(error)
        count = error.count if isinstance(error, MoreErrors) else 1
        rest = total - shown - count
        tail = f"{separator}(and {rest} more)" if rest else ""
        cost = len(text) + (len(separator) if parts else 0)
        if used + cost + len(tail) > max_chars:
            if not parts:  # not even the first fits: cut it
                room = max_chars - len(tail)
                if room >= 8:
                    parts.append(clip(text, room))
                    shown += count
            break
        parts.append(text)
        used += cost
        shown += count
    message = separator.join(parts)
    if shown < total:
        tail = f"(and {total - shown} more)"
        message = f"{message}{separator}{tail}" if message else tail
    return clip(message, max_chars)


class PlanError(ValueError):
    """The annotations (or pod template) cannot make a plan; ``errors`` lists every reason.

    ``errors`` is bounded (see :class:`ErrorList`) and so is the message.
    """

    def __init__(self, errors: Sequence[FieldError]) -> None:
        listed = errors if isinstance(errors, ErrorList) else ErrorList(errors)
        self.errors: tuple[FieldError, ...] = listed.bounded()
        super().__init__(render_errors(self.errors, MAX_MESSAGE_CHARS, separator="\n"))


class PlanFormatError(PlanError):
    """A serialised plan (``QUIESCE_PLAN``) that this version cannot read."""


def show(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    """A value as the user wrote it, for messages (JSON for structures), in bounded time.

    At most about ``limit`` characters: a string is cut; a structure is written
    only until ``limit`` is reached, so a YAML alias bomb (a few bytes standing
    for billions of nodes) costs ``limit`` characters of work, and depth is capped.
    """
    if isinstance(value, str):
        return value if len(value) <= limit else clip(value, limit + 1)
    out: list[str] = []
    _write(value, out, limit + 1, depth=0)
    text = "".join(out)
    return clip(text, limit + 1) if len(text) > limit else text


def _write(value: Any, out: list[str], budget: int, *, depth: int) -> int:
    """Append ``value``'s JSON to ``out`` until ``budget`` characters; returns what is left."""
    if budget <= 0:
        return 0
    if isinstance(value, str):
        piece = _quote(value[:budget])
    elif value is None or isinstance(value, bool | int | float):
        piece = _scalar(value)
    elif depth >= 32:
        piece = _ELLIPSIS
    elif isinstance(value, Mapping):
        out.append("{")
        budget -= 1
        items = list(itertools.islice(value.items(), budget))
        with contextlib.suppress(TypeError):  # keys of mixed types keep their own order
            items.sort(key=lambda item: item[0])
        for index, (key, item) in enumerate(items):
            if budget <= 0:
                return 0
            if index:
                out.append(", ")
                budget -= 2
            budget = _write(key if isinstance(key, str) else _scalar(key), out, budget, depth=depth)
            out.append(": ")
            budget = _write(item, out, budget - 2, depth=depth + 1)
        out.append("}")
        return budget - 1
    elif isinstance(value, list | tuple):
        out.append("[")
        budget -= 1
        for index, item in enumerate(value):
            if budget <= 0:
                return 0
            if index:
                out.append(", ")
                budget -= 2
            budget = _write(item, out, budget, depth=depth + 1)
        out.append("]")
        return budget - 1
    else:
        piece = _quote(clip(_safe_repr(value), budget))
    out.append(piece)
    return budget - len(piece)


def _scalar(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > 640:  # beyond ~190 digits: str() is costly, and refused
            return f"<an integer of {value.bit_length()} bits>"
        return str(value)
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return _safe_repr(value)


def _safe_repr(value: Any) -> str:
    try:
        return reprlib.repr(value)
    except Exception:  # a hostile __repr__: name the type only
        return f"<{type(value).__name__}>"


def _quote(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)
