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

import dataclasses
from typing import Any, Final

from quiesce import annotations as keys
from quiesce import contract, durations, hookurl, values
from quiesce.plan.errors import (
    MAX_ERRORS as MAX_ERRORS,
)
from quiesce.plan.errors import (
    MAX_ERRORS_PER_KEY as MAX_ERRORS_PER_KEY,
)
from quiesce.plan.errors import (
    MAX_LIST_ITEMS as MAX_LIST_ITEMS,
)
from quiesce.plan.errors import (
    MAX_MESSAGE_CHARS as MAX_MESSAGE_CHARS,
)
from quiesce.plan.errors import (
    MAX_TEXT_CHARS as MAX_TEXT_CHARS,
)

# The error types and their bounds live in quiesce.plan.errors; re-exported for callers.
from quiesce.plan.errors import (
    MAX_VALUE_CHARS as MAX_VALUE_CHARS,
)
from quiesce.plan.errors import (
    ErrorList as ErrorList,
)
from quiesce.plan.errors import (
    FieldError as FieldError,
)
from quiesce.plan.errors import (
    MoreErrors as MoreErrors,
)
from quiesce.plan.errors import (
    PlanError as PlanError,
)
from quiesce.plan.errors import (
    PlanFormatError as PlanFormatError,
)
from quiesce.plan.errors import (
    clip as clip,
)
from quiesce.plan.errors import (
    more_errors as more_errors,
)
from quiesce.plan.errors import (
    render_errors as render_errors,
)
from quiesce.plan.errors import (
    show as show,
)

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
        return hookurl.kept_hook_url(
            scheme=self.scheme, host=self.host or "<pod-ip>", port=self.port, path=self.path
        )


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
    probe_grace_seconds: int | None = None
    """The shortest ``terminationGracePeriodSeconds`` of the targets' liveness and startup
    probes, or None. A kill by such a probe gets that grace, not the pod's, so the
    sidecar's deadline for a container kill that is not a deletion is at most this.
    Left out of the JSON when None, so plans without it keep their hash."""
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
