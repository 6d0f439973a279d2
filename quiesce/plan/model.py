"""What a ShutdownPlan is: the frozen values both sides share, and its error types.

The operator computes a plan (:mod:`quiesce.plan.build`) from a workload's
``quiesce.dev/*`` annotations and the facts of its pod template; the sidecar
receives the same plan (``QUIESCE_PLAN``, :mod:`quiesce.plan.codec`) and
enforces it. Every phase of a shutdown has a budget and the budgets add up to
the grace::

    grace = deregister_timeout + converge_max + kept_hook_timeout + drain_timeout + margin

This module is what the lean sidecar needs of the plan, so it stays small and
pure: standard library only, and it imports nothing of the plan's builder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import reprlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from quiesce import annotations as keys
from quiesce import contract, durations, values

#: Serialised plan format; the sidecar refuses a plan whose version it does not know.
FORMAT_VERSION: Final = 1

#: Name of the sidecar container; never a default target, never a plan input.
SIDECAR_NAME: Final = "quiesce-sidecar"

#: Header carrying the per-workload token on the kubelet's ``/prestop`` call.
TOKEN_HEADER: Final = contract.TOKEN_HEADER

#: Path of the sidecar's hook endpoint.
PRESTOP_PATH: Final = contract.PRESTOP_PATH

#: Longest value accepted for any single duration: a phase longer than this is a typo.
MAX_DURATION: Final = 6 * durations.HOUR

SIDECAR_MODES: Final = ("auto", "native", "container")
GRACE_SOURCES: Final = ("derived", "annotation", "template")

SIGNALS: Final = values.SIGNALS
UNGRACEFUL_SIGNALS: Final = values.UNGRACEFUL_SIGNALS
MAX_SIGNAL: Final = values.MAX_SIGNAL


# Short keys users may write under quiesce.dev/ (and, a subset, under the config's plan:).
USER_KEYS: Final = tuple(
    key.removeprefix(keys.PREFIX)
    for key in (
        keys.INJECT,
        keys.CONSUL_SERVICE,
        keys.DEREGISTER_TIMEOUT,
        keys.CONVERGE_MIN,
        keys.CONVERGE_MAX,
        keys.QUIET_WINDOW,
        keys.HOOK_TIMEOUT,
        keys.DRAIN_TIMEOUT,
        keys.MARGIN,
        keys.GRACE_PERIOD,
        keys.SIGNAL,
        keys.SHUTDOWN_URL,
        keys.CONTAINERS,
        keys.PORT,
        keys.EXEC_HOOK,
        keys.SIDECAR_MODE,
        keys.LONG_LIVED_PORTS,
        keys.AUTO_UPGRADE,
        keys.LINT_IGNORE,
    )
)


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


@dataclasses.dataclass(frozen=True)
class KeptHook:
    """An app's own ``preStop: httpGet``, called by the sidecar after convergence.

    ``host`` None means the pod IP, as the kubelet would call it.
    """

    container: str
    path: str
    port: int
    scheme: str = "HTTP"
    host: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def url(self) -> str:
        """The URL the sidecar calls, with ``<pod-ip>`` when no host is set."""
        host = self.host or "<pod-ip>"
        return f"{self.scheme.lower()}://{host}:{self.port}{self.path}"


@dataclasses.dataclass(frozen=True)
class PlanDefaults:
    """Cluster-wide defaults for every plan (the operator's configuration, ``plan:``).

    All durations in seconds. Each default is chosen so that a Consul-registered
    HTTP service with only ``quiesce.dev/inject: "true"`` loses no request and
    stops within 35 s (see the README's annotation table for the reasoning).
    """

    deregister_timeout: float = 5.0
    """Seconds for Consul maintenance + deregistration, retries included. Default 5:
    two agent calls take milliseconds; the rest bounds retries when Consul is slow."""

    converge_min: float = 2.0
    """Floor in seconds: never stop sooner, even when quiet at once. Default 2: the
    endpoints controller and kube-proxy (1 s min sync) need about that long."""

    converge_max: float = 20.0
    """Ceiling in seconds: the load balancers' worst-case lag. Default 20: HAProxy's
    ``hold valid`` 10 s + resolver interval + a few seconds of DNS TTL/agent lag."""

    quiet_window: float = 1.0
    """Seconds without new traffic that count as "load balancers stopped". Default 1;
    adaptively lengthened to ``ln(1/epsilon)/rate`` for sparse traffic."""

    drain_timeout: float = 0.0
    """Seconds to hold the hook for in-flight requests. Default 0 (off): most servers
    drain on their own stop signal within the margin."""

    margin: float = 10.0
    """Seconds left after the signal for the app to exit before SIGKILL. Default 10."""

    hook_timeout: float = 5.0
    """Seconds for an app's kept ``preStop: httpGet``; counted only when there is one."""

    port: int = 7979
    """The sidecar's port in the pod (shared network namespace)."""

    sidecar_mode: str = "auto"
    """``auto`` (native where the cluster supports it), ``native`` or ``container``."""

    auto_upgrade: bool = False
    """Adopt new sidecar images by itself? Default no: upgrades never roll the fleet."""

    epsilon: float = 1e-3
    """Accepted probability that the adaptive quiet window ends while traffic still comes."""


@dataclasses.dataclass(frozen=True)
class Phase:
    """One step of the shutdown timeline, in seconds after the kubelet calls the hook."""

    name: str
    start: float
    end: float
    what: str

    @property
    def budget(self) -> float:
        return self.end - self.start


@dataclasses.dataclass(frozen=True)
class ShutdownPlan:
    """Every budget of one pod's shutdown; durations are float seconds.

    ``notes`` are for humans (``quiesce plan``, Events): not serialised, not compared.
    """

    version: int
    """Serialised format version (:data:`FORMAT_VERSION`)."""
    deregister_timeout: float
    """Budget for Consul maintenance + deregistration, retries included."""
    converge_min: float
    """Floor: the sidecar never ends convergence sooner (includes ``sleep_absorbed``)."""
    converge_max: float
    """Ceiling: convergence ends here even if traffic never stops (its budget)."""
    quiet_window: float
    """Minimum silence that counts as "load balancers stopped"; lengthened by ``epsilon``."""
    kept_hook_timeout: float
    """Budget for calling ``kept_hook``; 0 when there is none."""
    drain_timeout: float
    """Budget for waiting on in-flight requests; 0 = no drain."""
    margin: float
    """What is left after the signal (and drain) for the app to exit before SIGKILL."""
    grace_period_seconds: int
    """terminationGracePeriodSeconds: exactly the sum of the five budgets above."""
    grace_source: str
    """Where the grace comes from: ``derived``, ``annotation`` or ``template`` (kept)."""
    template_grace: int | None
    """terminationGracePeriodSeconds the template had before injection, if any."""
    signal: int | None
    """Signal the sidecar sends to the app; None = return the hook, the kubelet signals."""
    shutdown_url: str | None
    """URL the sidecar POSTs to instead of signalling; None = not used."""
    containers: tuple[str, ...]
    """Target containers: the ones with the hook, and whose processes get ``signal``."""
    port: int
    """The sidecar's port (``/prestop``, ``/healthz``, ``/readyz``, ``/status``, ``/metrics``)."""
    consul_services: tuple[str, ...]
    """Consul service names or IDs to deregister; empty = every instance of this pod."""
    long_lived_ports: tuple[int, ...]
    """Ports where quiet means "no new connections" (streams never stop sending bytes)."""
    probe_ports: tuple[int, ...]
    """Ports named in the targets' probes: the node's connections to them are not traffic."""
    kept_hook: KeptHook | None
    """The app's own preStop httpGet, called by the sidecar after convergence."""
    sleep_absorbed: float
    """Seconds of an old preStop sleep folded into ``converge_min`` (0 = none)."""
    exec_hook_replaced: bool
    """An app preStop exec was dropped (``quiesce.dev/exec-hook: replace``)."""
    sidecar_mode: str
    """``auto``, ``native`` or ``container`` as asked; :mod:`quiesce.template` resolves auto."""
    auto_upgrade: bool
    """May a new quiesce release move this workload to its sidecar image?"""
    epsilon: float
    """Accepted miss probability of the adaptive quiet window: ``ln(1/epsilon)/rate``."""
    notes: tuple[str, ...] = dataclasses.field(default=(), compare=False)

    def __post_init__(self) -> None:
        # The identity is the point of the plan: refuse to exist without it.
        total = sum(self.budget().values())
        if abs(total - self.grace_period_seconds) > 1e-6:
            raise ValueError(
                f"budget {total}s does not add up to the grace {self.grace_period_seconds}s"
            )

    def budget(self) -> dict[str, float]:
        """Each phase's budget in seconds, in order; the values sum to the grace."""
        return {
            "deregister": self.deregister_timeout,
            "converge": self.converge_max,
            "kept_hook": self.kept_hook_timeout,
            "drain": self.drain_timeout,
            "margin": self.margin,
        }

    def returns_hook(self) -> bool:
        """True when the app is stopped by the kubelet's own stop signal after the hook."""
        return self.signal is None and self.shutdown_url is None

    def timeline(self) -> tuple[Phase, ...]:
        """The worst-case timeline: what happens at which second after the hook is called."""
        fmt = durations.format_seconds
        phases: list[Phase] = []
        t = 0.0

        def step(name: str, seconds: float, what: str) -> None:
            nonlocal t
            phases.append(Phase(name, t, t + seconds, what))
            t += seconds

        where = (
            "services " + ", ".join(self.consul_services)
            if self.consul_services
            else "every instance of this pod"
        )
        step("deregister", self.deregister_timeout, f"Consul: maintenance on, deregister {where}")
        quiet = f"no new traffic for {fmt(self.quiet_window)} (longer when traffic is sparse)"
        floor = fmt(self.converge_min)
        if self.sleep_absorbed and self.sleep_absorbed >= self.converge_min:
            floor += " (the app's old preStop sleep)"
        step(
            "converge",
            self.converge_max,
            f"wait for load balancers: at least {floor}, {quiet}, at most {fmt(self.converge_max)}",
        )
        if self.kept_hook is not None:
            step(
                "app hook",
                self.kept_hook_timeout,
                f"call the app's preStop GET {self.kept_hook.url()}",
            )
        drain = f"wait for in-flight requests, at most {fmt(self.drain_timeout)}"
        if self.returns_hook():
            if self.drain_timeout:
                step("drain", self.drain_timeout, drain)
            step("signal", 0.0, "return the hook: the kubelet sends the container's stop signal")
        else:
            if self.signal is not None:
                how = f"send {values.signal_name(self.signal)} to the app's main process"
            else:
                how = f"POST {self.shutdown_url}"
            step("signal", 0.0, how)
            if self.drain_timeout:
                step("drain", self.drain_timeout, drain + ", then return the hook")
        step("exit", self.margin, "the app exits; the kubelet waits for it")
        step("kill", 0.0, "the kubelet sends SIGKILL to whatever still runs")
        return tuple(phases)

    # The serialised form lives in quiesce.plan.codec; these delegates keep the
    # plan's own spelling (plan.to_json(), ShutdownPlan.from_json()) for callers.
    # codec imports this module, so the import is deferred to the call: importing
    # the model never loads the codec, and no import-time cycle exists.
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, the one the sidecar reads (see :func:`codec.to_dict`)."""
        from quiesce.plan import codec

        return codec.to_dict(self)

    def to_json(self) -> str:
        """Canonical JSON (see :func:`codec.to_json`)."""
        from quiesce.plan import codec

        return codec.to_json(self)

    @classmethod
    def from_json(cls, text: str | bytes) -> ShutdownPlan:
        """Read ``to_json()`` output (see :func:`codec.from_json`)."""
        from quiesce.plan import codec

        return codec.from_json(text)

    def plan_hash(self) -> str:
        """Stable hex digest of the serialised plan (see :func:`codec.plan_hash`)."""
        from quiesce.plan import codec

        return codec.plan_hash(self)


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
