"""How a refusal reads: the bounded text of an internal error, and the bounds on what a
refusal writes (status annotation, Event message), shared by reconcile and the webhook.

Hostile annotations must not make quiesce write, log or keep more than these bounds.
"""

from __future__ import annotations

import logging
from typing import Final

#: What the status, the Event and the webhook's warning say when reading the annotations
#: raised something other than a PlanError (a bug: every parser should be total).
INTERNAL_ERROR: Final = "internal error reading annotations"
#: Distinct internal errors whose traceback was logged; bounded, so hostile input that
#: raises a new message each time cannot grow it (past the bound nothing is logged twice
#: per process for the same type, see :func:`internal_error`).
_LOGGED_MAX: Final = 64
_logged: set[str] = set()
#: Bounds on what a refusal writes, whatever the errors' length: the status annotation
#: (the API server's limit is 256 KiB for all annotations together) and the Event's
#: message (kopf cuts Event messages at 1,024 characters; cut here, with a marker).
STATUS_MAX: Final = 4096
EVENT_MESSAGE_MAX: Final = 1024

log = logging.getLogger("quiesce.operator")


def internal_error(exc: BaseException, where: str) -> str:
    """The bounded one-line text of an unexpected exception; logs its traceback once.

    Once per exception type and (cut) message while the memory of them is small, then
    once per type: a hostile annotation that raises on every pass logs one traceback.
    """
    text = str(exc).replace("\n", " ")
    if len(text) > 200:
        text = text[:200] + "…"
    signature = type(exc).__name__ + (": " + text if len(_logged) < _LOGGED_MAX else "")
    if signature not in _logged:
        _logged.add(signature)
        log.error("An internal error while reading the annotations of %s.", where, exc_info=exc)
    return f"{INTERNAL_ERROR}: {type(exc).__name__}: {text} (a bug in quiesce; please report it)"


def cut(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters, marked where it was cut."""
    if len(text) <= limit:
        return text
    marker = f" … ({len(text) - limit} more characters)"
    return text[: max(0, limit - len(marker))] + marker
