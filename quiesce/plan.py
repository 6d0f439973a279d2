"""The ShutdownPlan: one shutdown budget that the operator and the sidecar agree on.

The operator computes a plan from a workload's ``quiesce.dev/*`` annotations and
the facts of its pod template (containers, existing preStop hooks, current
grace); the sidecar receives the same plan (``QUIESCE_PLAN``) and enforces it.
Keeping the computation in one pure module means the two sides cannot drift:
every phase of a shutdown has a budget and the budgets add up to the grace::

    grace = deregister_timeout + converge_max + kept_hook_timeout + drain_timeout + margin

Pure on purpose: standard library only (no kopf, kubernetes, aiohttp, consul,
yaml, no I/O), because the lean sidecar imports it.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import re
import shlex
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Final

from quiesce import annotations as keys
from quiesce import durations, values

#: Serialised plan format; the sidecar refuses a plan whose version it does not know.
FORMAT_VERSION: Final = 1

#: Name of the sidecar container; never a default target, never a plan input.
SIDECAR_NAME: Final = "quiesce-sidecar"

#: Header carrying the per-workload token on the kubelet's ``/prestop`` call.
TOKEN_HEADER: Final = "X-Quiesce-Token"

#: Path of the sidecar's hook endpoint.
PRESTOP_PATH: Final = "/prestop"

#: Longest value accepted for any single duration: a phase longer than this is a typo.
MAX_DURATION: Final = 6 * durations.HOUR

SIDECAR_MODES: Final = ("auto", "native", "container")
GRACE_SOURCES: Final = ("derived", "annotation", "template")

SIGNALS: Final = values.SIGNALS
UNGRACEFUL_SIGNALS: Final = values.UNGRACEFUL_SIGNALS
MAX_SIGNAL: Final = values.MAX_SIGNAL

_DURATION_EXPECTED: Final = "Go syntax such as 500ms, 10s, 1m30s"
_SLEEP_BINARIES: Final = frozenset({"sleep", "/bin/sleep", "/usr/bin/sleep"})
_SHELLS: Final = frozenset(
    {"sh", "/bin/sh", "/usr/bin/sh", "bash", "/bin/bash", "/usr/bin/bash", "ash", "/bin/ash"}
)
_SLEEP_ARG: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smh]?)")
_SLEEP_SCRIPT: Final = re.compile(r"\s*(?:exec\s+)?sleep\s+([0-9]+(?:\.[0-9]+)?[smh]?)\s*;?\s*")
_HTTP_URL: Final = re.compile(r"https?://[^\s/?#]+(?:[/?#]\S*)?")


@dataclasses.dataclass(frozen=True)
class FieldError:
    """One bad input: which annotation, the raw value, what was wrong, what is expected."""

    annotation: str
    value: str
    expected: str
    problem: str = "is invalid"

    def __str__(self) -> str:
        return f"{self.annotation}: {_quote(self.value)} {self.problem}; expected {self.expected}"


class PlanError(ValueError):
    """The annotations (or pod template) cannot make a plan; ``errors`` lists every reason."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors: tuple[FieldError, ...] = tuple(errors)
        super().__init__("\n".join(str(error) for error in self.errors))


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
                how = f"send {signal_name(self.signal)} to the app's main process"
            else:
                how = f"POST {self.shutdown_url}"
            step("signal", 0.0, how)
            if self.drain_timeout:
                step("drain", self.drain_timeout, drain + ", then return the hook")
        step("exit", self.margin, "the app exits; the kubelet waits for it")
        step("kill", 0.0, "the kubelet sends SIGKILL to whatever still runs")
        return tuple(phases)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, the one the sidecar reads (``notes`` are left out)."""
        data = dataclasses.asdict(self)
        del data["notes"]
        data["containers"] = list(self.containers)
        data["consul_services"] = list(self.consul_services)
        data["long_lived_ports"] = list(self.long_lived_ports)
        data["probe_ports"] = list(self.probe_ports)
        if self.kept_hook is not None:
            data["kept_hook"]["headers"] = [
                {"name": name, "value": value} for name, value in self.kept_hook.headers
            ]
        return data

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, compact): stable bytes for the env var and the hash."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> ShutdownPlan:
        """Read ``to_json()`` output; raise :class:`PlanFormatError` for anything else."""
        try:
            data = json.loads(text)
        except (ValueError, TypeError) as exc:
            raise _format_error(
                "plan", str(text)[:80], "the JSON of ShutdownPlan.to_json()", f"is not JSON ({exc})"
            ) from None
        return _plan_from_dict(data)

    def plan_hash(self) -> str:
        """Stable hex digest of the serialised plan (16 hex digits), for idempotence."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


# --- value parsers (public: the operator and the config loader reuse them) ----------


parse_bool = values.parse_bool
parse_signal = values.parse_signal
signal_name = values.signal_name


# --- build_plan ------------------------------------------------------------------------

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

DEFAULTS_KEYS: Final = (
    "deregister-timeout",
    "converge-min",
    "converge-max",
    "quiet-window",
    "hook-timeout",
    "drain-timeout",
    "margin",
    "port",
    "sidecar-mode",
    "auto-upgrade",
    "quiet-epsilon",
)


def build_plan(
    annotations: Mapping[str, str],
    pod_spec: Mapping[str, Any],
    defaults: PlanDefaults | None = None,
) -> ShutdownPlan:
    """Compute the plan of one workload; raise :class:`PlanError` listing every problem."""
    reader = _Reader(annotations, defaults or PlanDefaults())
    return reader.build(pod_spec)


def parse_defaults(mapping: Mapping[str, Any], *, where: str = "plan") -> PlanDefaults:
    """Cluster-wide defaults from the configuration's ``plan:`` mapping (annotation short keys).

    YAML scalars are accepted as written (``port: 7979``, ``auto-upgrade: false``);
    errors name ``<where>.<key>``.
    """
    errors: list[FieldError] = []
    if not isinstance(mapping, Mapping):
        raise PlanError(
            [
                FieldError(
                    where, _show(mapping), "a mapping of annotation short keys", "is not a mapping"
                )
            ]
        )
    base = PlanDefaults()
    values: dict[str, Any] = {}
    for raw_key, raw in mapping.items():
        name = f"{where}.{raw_key}"
        if raw_key not in DEFAULTS_KEYS:
            errors.append(_unknown_key(name, raw, str(raw_key), DEFAULTS_KEYS, f"{where}."))
            continue
        text = _scalar_text(raw)
        if text is None:
            errors.append(FieldError(name, _show(raw), "a string", "is not a scalar"))
            continue
        field = str(raw_key).replace("-", "_")
        if raw_key in ("port",):
            port = _parse_port(name, text, errors)
            if port is not None:
                values[field] = port
        elif raw_key == "sidecar-mode":
            if text in SIDECAR_MODES:
                values[field] = text
            else:
                errors.append(FieldError(name, text, " or ".join(SIDECAR_MODES), "is not a mode"))
        elif raw_key == "auto-upgrade":
            flag = _parse_bool_field(name, text, errors)
            if flag is not None:
                values[field] = flag
        elif raw_key == "quiet-epsilon":
            try:
                epsilon = float(text)
            except ValueError:
                epsilon = math.nan
            if 0 < epsilon < 1:
                values["epsilon"] = epsilon
            else:
                errors.append(
                    FieldError(name, text, "a probability such as 0.001", "is not between 0 and 1")
                )
        else:
            if raw_key == "hook-timeout":
                field = "hook_timeout"
            ns = _parse_duration_field(name, text, errors)
            if ns is not None:
                values[field] = durations.to_seconds(ns)
    result = dataclasses.replace(base, **values)
    if not errors and result.converge_min > result.converge_max:
        errors.append(
            FieldError(
                f"{where}.converge-min",
                durations.format_seconds(result.converge_min),
                f"at most {where}.converge-max ({durations.format_seconds(result.converge_max)})",
                "is above the convergence ceiling",
            )
        )
    if errors:
        raise PlanError(errors)
    return result


class _Reader:
    """Collects every error while reading annotations and the pod template."""

    def __init__(self, annotations: Mapping[str, str], defaults: PlanDefaults) -> None:
        self.annotations = annotations if isinstance(annotations, Mapping) else {}
        self.defaults = defaults
        self.errors: list[FieldError] = []
        self.notes: list[str] = []
        self.present: set[str] = set()
        if not isinstance(annotations, Mapping):
            self.errors.append(
                FieldError(
                    "metadata.annotations",
                    _show(annotations),
                    "a mapping of strings",
                    "is not a mapping",
                )
            )

    # -- raw access ------------------------------------------------------------------
    def _raw(self, key: str) -> str | None:
        if key not in self.annotations:
            return None
        value = self.annotations[key]
        self.present.add(key)
        if not isinstance(value, str):
            self.errors.append(
                FieldError(
                    key,
                    _show(value),
                    f'a quoted string in YAML, e.g. "{_show(value)}"',
                    "is not a string",
                )
            )
            return None
        return value

    def duration(self, key: str, default: float, *, positive: bool = False) -> int | None:
        raw = self._raw(key)
        if raw is None:
            return durations.from_seconds(default)
        ns = _parse_duration_field(key, raw, self.errors)
        if ns is not None and positive and ns == 0:
            self.errors.append(FieldError(key, raw, "a duration above 0", "is zero"))
            return None
        return ns

    def boolean(self, key: str, default: bool) -> bool:
        raw = self._raw(key)
        if raw is None:
            return default
        value = _parse_bool_field(key, raw, self.errors)
        return default if value is None else value

    def items(self, key: str) -> tuple[str, ...] | None:
        """Comma-separated list; None when absent or malformed (error recorded)."""
        raw = self._raw(key)
        if raw is None:
            return None
        parts = [part.strip() for part in raw.split(",")]
        if not raw.strip() or any(not part for part in parts):
            self.errors.append(
                FieldError(key, raw, "comma-separated names such as a,b", "has an empty item")
            )
            return None
        return tuple(dict.fromkeys(parts))  # de-duplicated, order kept

    # -- the whole plan --------------------------------------------------------------
    def build(self, pod_spec: Mapping[str, Any]) -> ShutdownPlan:
        d = self.defaults
        self._check_keys()
        self.boolean(keys.INJECT, True)  # validated here; the operator decides on it
        self._raw(keys.LINT_IGNORE)  # quiesce lint owns its values; only a string is required
        dereg = self.duration(keys.DEREGISTER_TIMEOUT, d.deregister_timeout)
        cmin = self.duration(keys.CONVERGE_MIN, d.converge_min)
        cmax = self.duration(keys.CONVERGE_MAX, d.converge_max)
        quiet = self.duration(keys.QUIET_WINDOW, d.quiet_window)
        hook_timeout = self.duration(keys.HOOK_TIMEOUT, d.hook_timeout)
        drain = self.duration(keys.DRAIN_TIMEOUT, d.drain_timeout)
        margin = self.duration(keys.MARGIN, d.margin)
        grace = self._grace()
        signal = self._signal()
        shutdown_url = self._shutdown_url()
        if signal is not None and shutdown_url is not None:
            self.errors.append(
                FieldError(
                    keys.SIGNAL,
                    self.annotations[keys.SIGNAL],
                    f"either {keys.SIGNAL} or {keys.SHUTDOWN_URL}",
                    f"conflicts with {keys.SHUTDOWN_URL}",
                )
            )
        exec_replace = self._exec_hook()
        mode = self._sidecar_mode()
        auto_upgrade = self.boolean(keys.AUTO_UPGRADE, d.auto_upgrade)
        services = self.items(keys.CONSUL_SERVICE) or ()

        spec = _Spec(pod_spec, self.errors)
        targets = self._targets(spec)
        port = self._port(spec)
        long_lived = self._long_lived_ports(spec, targets)
        probe_ports = tuple(sorted({p for name in targets for p in spec.probe_ports(name)}))
        facts = self._hooks(spec, targets, exec_replace)

        values = (dereg, cmin, cmax, quiet, hook_timeout, drain, margin)
        if self.errors or any(v is None for v in values) or facts is None:
            raise PlanError(self.errors)
        assert dereg is not None and cmin is not None and cmax is not None  # for mypy
        assert quiet is not None and hook_timeout is not None and drain is not None
        assert margin is not None
        sleep_ns, kept_hook = facts
        if kept_hook is None:
            if keys.HOOK_TIMEOUT in self.present:
                self.notes.append(
                    f"{keys.HOOK_TIMEOUT} is unused: no target has an httpGet preStop"
                )
            hook_timeout = 0

        cmin, cmax = self._converge(cmin, cmax, quiet, sleep_ns)
        budget = self._budget(
            dereg=dereg,
            cmin=cmin,
            cmax=cmax,
            quiet=quiet,
            hook=hook_timeout,
            drain=drain,
            margin=margin,
            grace=grace,
            template_grace=spec.grace(),
        )
        if self.errors or budget is None:
            raise PlanError(self.errors)
        cmax, margin, grace_seconds, source = budget
        if signal is not None and signal == 15:
            self.notes.append(
                "the sidecar sends SIGTERM itself; leaving quiesce.dev/signal out "
                "lets the kubelet send the container's own stop signal"
            )
        s = durations.to_seconds
        return ShutdownPlan(
            version=FORMAT_VERSION,
            deregister_timeout=s(dereg),
            converge_min=s(cmin),
            converge_max=s(cmax),
            quiet_window=s(quiet),
            kept_hook_timeout=s(hook_timeout),
            drain_timeout=s(drain),
            margin=s(margin),
            grace_period_seconds=grace_seconds,
            grace_source=source,
            template_grace=spec.grace(),
            signal=signal,
            shutdown_url=shutdown_url,
            containers=targets,
            port=port,
            consul_services=services,
            long_lived_ports=long_lived,
            probe_ports=probe_ports,
            kept_hook=kept_hook,
            sleep_absorbed=s(sleep_ns),
            exec_hook_replaced=exec_replace and spec.has_exec_hook(targets),
            sidecar_mode=mode,
            auto_upgrade=auto_upgrade,
            epsilon=d.epsilon,
            notes=tuple(self.notes),
        )

    # -- single annotations ------------------------------------------------------------
    def _check_keys(self) -> None:
        for key, value in self.annotations.items():
            if not isinstance(key, str):
                self.errors.append(
                    FieldError(
                        "metadata.annotations", _show(key), "string keys", "is not a string key"
                    )
                )
                continue
            if key.startswith(keys.STATE_PREFIX) or not key.startswith(keys.PREFIX):
                continue
            short = key.removeprefix(keys.PREFIX)
            if short not in USER_KEYS:
                self.errors.append(_unknown_key(key, value, short, USER_KEYS, keys.PREFIX))

    def _grace(self) -> int | None:
        raw = self._raw(keys.GRACE_PERIOD)
        if raw is None:
            return None
        ns = _parse_duration_field(keys.GRACE_PERIOD, raw, self.errors)
        if ns is None:
            return None
        if ns % durations.SECOND:
            self.errors.append(
                FieldError(
                    keys.GRACE_PERIOD,
                    raw,
                    "whole seconds such as 45s (terminationGracePeriodSeconds is an integer)",
                    "is not a whole number of seconds",
                )
            )
            return None
        if ns == 0:
            self.errors.append(
                FieldError(keys.GRACE_PERIOD, raw, "at least 1s (0 kills at once)", "is zero")
            )
            return None
        return ns // durations.SECOND

    def _signal(self) -> int | None:
        raw = self._raw(keys.SIGNAL)
        if raw is None:
            return None
        try:
            number = parse_signal(raw)
        except ValueError:
            self.errors.append(
                FieldError(
                    keys.SIGNAL,
                    raw,
                    "a signal name or number such as SIGQUIT, QUIT or 3",
                    "is not a signal",
                )
            )
            return None
        if number in UNGRACEFUL_SIGNALS:
            self.errors.append(
                FieldError(
                    keys.SIGNAL,
                    raw,
                    "a signal the app handles to stop "
                    "gracefully, such as SIGTERM, SIGQUIT or SIGINT",
                    "cannot stop an app gracefully",
                )
            )
            return None
        return number

    def _shutdown_url(self) -> str | None:
        raw = self._raw(keys.SHUTDOWN_URL)
        if raw is None:
            return None
        if not _HTTP_URL.fullmatch(raw):
            self.errors.append(
                FieldError(
                    keys.SHUTDOWN_URL,
                    raw,
                    "an absolute http(s) URL such as http://127.0.0.1:8080/shutdown",
                    "is not a URL",
                )
            )
            return None
        return raw

    def _exec_hook(self) -> bool:
        raw = self._raw(keys.EXEC_HOOK)
        if raw is None:
            return False
        if raw == "replace":
            return True
        self.errors.append(
            FieldError(
                keys.EXEC_HOOK,
                raw,
                '"replace" (leave the annotation out to refuse exec hooks)',
                "is not a choice",
            )
        )
        return False

    def _sidecar_mode(self) -> str:
        raw = self._raw(keys.SIDECAR_MODE)
        if raw is None:
            return self.defaults.sidecar_mode
        if raw in SIDECAR_MODES:
            return raw
        self.errors.append(
            FieldError(keys.SIDECAR_MODE, raw, "auto, native or container", "is not a mode")
        )
        return self.defaults.sidecar_mode

    def _targets(self, spec: _Spec) -> tuple[str, ...]:
        names = spec.container_names()
        listed = self.items(keys.CONTAINERS)
        if listed is None:
            if not names and spec.ok:
                self.errors.append(
                    FieldError(
                        "spec.containers",
                        "",
                        f"at least one container besides {SIDECAR_NAME}",
                        "has no container",
                    )
                )
            return names
        for name in listed:
            if name not in names:
                hint = difflib.get_close_matches(name, names, n=1)
                expected = "one of the pod's containers: " + ", ".join(names)
                if hint:
                    expected += f' (did you mean "{hint[0]}"?)'
                self.errors.append(
                    FieldError(
                        keys.CONTAINERS,
                        self.annotations[keys.CONTAINERS],
                        expected,
                        f'names no container "{name}"',
                    )
                )
        return tuple(name for name in listed if name in names)

    def _port(self, spec: _Spec) -> int:
        raw = self._raw(keys.PORT)
        port = self.defaults.port
        key = f"{keys.PORT} (default)"
        if raw is not None:
            key = keys.PORT
            parsed = _parse_port(keys.PORT, raw, self.errors)
            if parsed is None:
                return port
            port = parsed
        owner = spec.port_owner(port)
        if owner is not None:
            self.errors.append(
                FieldError(
                    key,
                    str(port),
                    f"a port no container uses (set {keys.PORT})",
                    f'is already a port of container "{owner}"',
                )
            )
        return port

    def _long_lived_ports(self, spec: _Spec, targets: tuple[str, ...]) -> tuple[int, ...]:
        listed = self.items(keys.LONG_LIVED_PORTS)
        if not listed:
            return ()
        ports: set[int] = set()
        for item in listed:
            if item.isdigit() and item.isascii():
                number = int(item)
                if 1 <= number <= 65535:
                    ports.add(number)
                    continue
            resolved = spec.named_port(item, targets)
            if resolved is None:
                self.errors.append(
                    FieldError(
                        keys.LONG_LIVED_PORTS,
                        self.annotations[keys.LONG_LIVED_PORTS],
                        "port numbers (1-65535) or port names of the target "
                        "containers, comma-separated",
                        f'names no port "{item}"',
                    )
                )
            else:
                ports.add(resolved)
        return tuple(sorted(ports))

    def _hooks(
        self, spec: _Spec, targets: tuple[str, ...], exec_replace: bool
    ) -> tuple[int, KeptHook | None] | None:
        """Existing preStop hooks of the targets: (sleep absorbed in ns, kept httpGet)."""
        sleep_ns = 0
        kept: KeptHook | None = None
        ok = True
        for name in targets:
            hook = spec.prestop(name)
            if hook is None:
                continue
            if "sleep" in hook:
                seconds = (
                    hook["sleep"].get("seconds") if isinstance(hook["sleep"], Mapping) else None
                )
                if isinstance(seconds, int) and not isinstance(seconds, bool) and seconds >= 0:
                    sleep_ns = max(sleep_ns, min(seconds * durations.SECOND, MAX_DURATION))
                    self.notes.append(
                        f"container {name}: preStop sleep {seconds}s is folded "
                        "into the convergence floor"
                    )
                else:
                    ok = False
                    self.errors.append(
                        FieldError(
                            f"spec.containers[{name}].lifecycle.preStop",
                            _show(hook["sleep"]),
                            "sleep.seconds: <integer>",
                            "is not a valid sleep hook",
                        )
                    )
            elif "exec" in hook:
                command = hook["exec"].get("command") if isinstance(hook["exec"], Mapping) else None
                slept = _exec_sleep(command)
                if slept is not None:
                    sleep_ns = max(sleep_ns, min(slept, MAX_DURATION))
                    self.notes.append(
                        f"container {name}: preStop exec {_show(command)} is a sleep, "
                        "folded into the convergence floor"
                    )
                elif exec_replace:
                    self.notes.append(
                        f"container {name}: preStop exec {_show(command)} is replaced "
                        f"({keys.EXEC_HOOK}: replace) and restored on un-inject"
                    )
                else:
                    ok = False
                    self.errors.append(
                        FieldError(
                            keys.EXEC_HOOK,
                            _command(command),
                            f'{keys.EXEC_HOOK}: "replace" to drop it (it is '
                            "restored on un-inject), or an httpGet or sleep "
                            "hook",
                            f"is the preStop exec of container "
                            f'"{name}", which the sidecar cannot run',
                        )
                    )
            elif "httpGet" in hook:
                http = _kept_hook(name, hook["httpGet"], spec, self.errors)
                if http is None:
                    ok = False
                elif any(h[0].lower() == TOKEN_HEADER.lower() for h in http.headers):
                    ok = False
                    self.errors.append(
                        FieldError(
                            keys.INJECT,
                            "true",
                            "the original template (quiesce's template.restore gives it back)",
                            f"meets a template already injected: container "
                            f'"{name}" calls the sidecar',
                        )
                    )
                elif kept is not None:
                    ok = False
                    self.errors.append(
                        FieldError(
                            keys.CONTAINERS,
                            ",".join(targets),
                            "targets of which at most one has an httpGet preStop",
                            f'includes "{kept.container}" and '
                            f'"{name}", both with an httpGet preStop',
                        )
                    )
                else:
                    kept = http
                    self.notes.append(
                        f"container {name}: preStop GET {http.url()} is kept; the "
                        "sidecar calls it after convergence"
                    )
            elif "tcpSocket" in hook:
                self.notes.append(
                    f"container {name}: preStop tcpSocket does nothing in Kubernetes "
                    "and is replaced (restored on un-inject)"
                )
            else:
                ok = False
                self.errors.append(
                    FieldError(
                        f"spec.containers[{name}].lifecycle.preStop",
                        _show(hook),
                        "one of sleep, exec or httpGet",
                        "is not a hook quiesce knows",
                    )
                )
        return (sleep_ns, kept) if ok else None

    def _converge(self, cmin: int, cmax: int, quiet: int, sleep_ns: int) -> tuple[int, int]:
        """The convergence floor and ceiling, with an old sleep folded into the floor."""
        if cmin > cmax:
            blame = keys.CONVERGE_MIN if keys.CONVERGE_MIN in self.present else keys.CONVERGE_MAX
            self.errors.append(
                FieldError(
                    blame,
                    self._shown(blame, cmin if blame == keys.CONVERGE_MIN else cmax),
                    f"{keys.CONVERGE_MIN} <= "
                    f"{keys.CONVERGE_MAX} ({durations.format(cmin)} > "
                    f"{durations.format(cmax)})",
                    "contradicts the other bound",
                )
            )
        if quiet > cmax:
            blame = keys.QUIET_WINDOW if keys.QUIET_WINDOW in self.present else keys.CONVERGE_MAX
            self.errors.append(
                FieldError(
                    blame,
                    self._shown(blame, quiet if blame == keys.QUIET_WINDOW else cmax),
                    f"{keys.QUIET_WINDOW} <= "
                    f"{keys.CONVERGE_MAX} ({durations.format(quiet)} > "
                    f"{durations.format(cmax)}): quiet can never be observed",
                    "contradicts the other bound",
                )
            )
        if sleep_ns > cmin:
            cmin = sleep_ns
            if sleep_ns > cmax:
                if keys.CONVERGE_MAX in self.present:
                    self.errors.append(
                        FieldError(
                            keys.CONVERGE_MAX,
                            self.annotations[keys.CONVERGE_MAX],
                            f"at least {durations.format(sleep_ns)}, the "
                            "existing preStop sleep that quiesce folds into the convergence floor",
                            "is shorter than the existing preStop sleep",
                        )
                    )
                else:
                    self.notes.append(
                        f"{keys.CONVERGE_MAX} raised to {durations.format(sleep_ns)}"
                        ", the existing preStop sleep"
                    )
                    cmax = sleep_ns
        return cmin, cmax

    def _shown(self, key: str, ns: int) -> str:
        value = self.annotations.get(key)
        return value if isinstance(value, str) else durations.format(ns) + " (default)"

    def _budget(
        self,
        *,
        dereg: int,
        cmin: int,
        cmax: int,
        quiet: int,
        hook: int,
        drain: int,
        margin: int,
        grace: int | None,
        template_grace: int | None,
    ) -> tuple[int, int, int, str] | None:
        """(converge_max, margin, grace seconds, grace source) so the identity holds exactly."""
        fmt = durations.format
        second = durations.SECOND
        fixed = dereg + hook + drain + margin
        parts = [
            ("deregister", dereg),
            ("converge", cmax),
            ("app hook", hook),
            ("drain", drain),
            ("margin", margin),
        ]
        if grace is not None:
            total_ns = grace * second
            need = fixed + cmax
            least = need
            if keys.CONVERGE_MAX not in self.present and cmax <= self.defaults_ns("converge_max"):
                # converge-max was not chosen: the ceiling may shrink to what the grace leaves,
                # never below the floor or the quiet window.
                least = fixed + max(cmin, quiet)
                if need > total_ns >= least:
                    cmax = total_ns - fixed
                    need = total_ns
                    self.notes.append(
                        f"{keys.CONVERGE_MAX} is {fmt(cmax)}: what the {grace}s grace leaves"
                    )
            if need > total_ns:
                shown = " + ".join(
                    f"{fmt(v)} {n}" for n, v in parts if v and (n != "converge" or least == need)
                )
                if least != need:
                    shown += f" + converge of at least {fmt(least - fixed)}"
                self.errors.append(
                    FieldError(
                        keys.GRACE_PERIOD,
                        self.annotations[keys.GRACE_PERIOD],
                        f"at least {_ceil_seconds(least)}s ({shown}), or shorter phases",
                        "cannot fit the phases",
                    )
                )
                return None
            if total_ns > need:
                self.notes.append(
                    f"{fmt(total_ns - need)} of the {grace}s grace left over go to the margin"
                )
            margin += total_ns - need
            if template_grace is not None and template_grace != grace:
                self.notes.append(
                    f"terminationGracePeriodSeconds {template_grace} is replaced by "
                    f"{keys.GRACE_PERIOD} ({grace}s)"
                )
            return cmax, margin, grace, "annotation"
        need = fixed + cmax
        # Rounding up to whole seconds (at least 1: 0 means "kill now") goes to the margin.
        seconds = max(1, _ceil_seconds(need))
        margin += seconds * second - need
        source = "derived"
        if template_grace is not None and template_grace > seconds:
            self.notes.append(
                f"the template's terminationGracePeriodSeconds {template_grace} is "
                f"kept (the plan needs {seconds}); the extra "
                f"{template_grace - seconds}s go to the margin"
            )
            margin += (template_grace - seconds) * second
            seconds = template_grace
            source = "template"
        elif template_grace is not None and template_grace < seconds:
            self.notes.append(
                f"terminationGracePeriodSeconds raised from {template_grace} to {seconds}"
            )
        return cmax, margin, seconds, source

    def defaults_ns(self, field: str) -> int:
        return durations.from_seconds(getattr(self.defaults, field))


class _Spec:
    """Read-only, defensive view of a pod spec (it may come from any YAML)."""

    def __init__(self, pod_spec: Mapping[str, Any], errors: list[FieldError]) -> None:
        self.ok = True
        self.errors = errors
        self.spec: Mapping[str, Any] = pod_spec if isinstance(pod_spec, Mapping) else {}
        if not isinstance(pod_spec, Mapping):
            self._fail("spec", pod_spec, "a pod spec mapping", "is not a mapping")
        self.containers = self._list("containers")
        self.init_containers = self._list("initContainers")

    def _fail(self, where: str, value: Any, expected: str, problem: str) -> None:
        self.ok = False
        self.errors.append(FieldError(where, _show(value), expected, problem))

    def _list(self, key: str) -> list[Mapping[str, Any]]:
        value = self.spec.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self._fail(f"spec.{key}", value, "a list of containers", "is not a list")
            return []
        result = []
        for item in value:
            if isinstance(item, Mapping) and isinstance(item.get("name"), str):
                if item["name"] != SIDECAR_NAME:
                    result.append(item)
            else:
                self._fail(f"spec.{key}", item, "containers with a name", "has a bad container")
        return result

    def container_names(self) -> tuple[str, ...]:
        return tuple(c["name"] for c in self.containers)

    def container(self, name: str) -> Mapping[str, Any]:
        for c in self.containers:
            if c["name"] == name:
                return c
        return {}

    def ports(self, container: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        ports = container.get("ports")
        if not isinstance(ports, list):
            return []
        return [p for p in ports if isinstance(p, Mapping)]

    def port_owner(self, number: int) -> str | None:
        for c in self.containers + self.init_containers:
            for p in self.ports(c):
                if p.get("containerPort") == number:
                    return str(c["name"])
        return None

    def named_port(self, name: str, containers: Sequence[str]) -> int | None:
        for cname in containers:
            for p in self.ports(self.container(cname)):
                number = p.get("containerPort")
                if p.get("name") == name and _is_port(number):
                    return int(number)
        return None

    def resolve_port(self, value: Any, container: str) -> int | None:
        if _is_port(value):
            return int(value)
        if isinstance(value, str):
            if value.isdigit() and value.isascii() and _is_port(int(value)):
                return int(value)
            return self.named_port(value, (container,))
        return None

    def probe_ports(self, name: str) -> set[int]:
        c = self.container(name)
        found: set[int] = set()
        for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
            probe = c.get(kind)
            if not isinstance(probe, Mapping):
                continue
            for handler in ("httpGet", "tcpSocket", "grpc"):
                action = probe.get(handler)
                if isinstance(action, Mapping):
                    port = self.resolve_port(action.get("port"), name)
                    if port is not None:
                        found.add(port)
        return found

    def prestop(self, name: str) -> Mapping[str, Any] | None:
        lifecycle = self.container(name).get("lifecycle")
        if not isinstance(lifecycle, Mapping):
            return None
        hook = lifecycle.get("preStop")
        if hook is None:
            return None
        if not isinstance(hook, Mapping):
            return {"unknown": hook}
        return hook

    def has_exec_hook(self, targets: Sequence[str]) -> bool:
        for name in targets:
            hook = self.prestop(name)
            if hook is not None and "exec" in hook:
                command = hook["exec"].get("command") if isinstance(hook["exec"], Mapping) else None
                if _exec_sleep(command) is None:
                    return True
        return False

    def grace(self) -> int | None:
        value = self.spec.get("terminationGracePeriodSeconds")
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if not any(e.annotation == "spec.terminationGracePeriodSeconds" for e in self.errors):
            self._fail(
                "spec.terminationGracePeriodSeconds",
                value,
                "a non-negative integer",
                "is not a number of seconds",
            )
        return None


# --- helpers ---------------------------------------------------------------------------


def _quote(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _show(value: Any) -> str:
    """A value as the user wrote it, for messages (JSON for structures)."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(value)


def _command(command: Any) -> str:
    """An exec command as a shell line when it is a list of strings (for messages)."""
    if isinstance(command, list) and all(isinstance(part, str) for part in command):
        return shlex.join(command)
    return _show(command)


def _scalar_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


def _is_port(value: Any) -> typing.TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def _ceil_seconds(ns: int) -> int:
    return -(-ns // durations.SECOND)


def _unknown_key(
    name: str, value: Any, short: str, known: Sequence[str], prefix: str
) -> FieldError:
    hint = difflib.get_close_matches(short, known, n=1, cutoff=0.6)
    if hint:
        expected = f"{prefix}{hint[0]} (the closest known key)"
    else:
        expected = "one of " + ", ".join(prefix + key for key in known)
    return FieldError(name, _show(value), expected, "is set on an unknown key")


def _parse_duration_field(name: str, raw: str, errors: list[FieldError]) -> int | None:
    try:
        ns = durations.parse(raw.strip())
    except durations.DurationError:
        text = raw.strip()
        expected = _DURATION_EXPECTED
        if re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):
            expected += f' (did you mean "{text}s"?)'
        errors.append(FieldError(name, raw, expected, "is not a duration"))
        return None
    if ns < 0:
        errors.append(FieldError(name, raw, "a duration of 0s or more", "is negative"))
        return None
    if ns > MAX_DURATION:
        errors.append(
            FieldError(name, raw, f"at most {durations.format(MAX_DURATION)}", "is out of range")
        )
        return None
    return ns


def _parse_bool_field(name: str, raw: str, errors: list[FieldError]) -> bool | None:
    try:
        return parse_bool(raw)
    except ValueError:
        errors.append(FieldError(name, raw, '"true" or "false"', "is not a boolean"))
        return None


def _parse_port(name: str, raw: str, errors: list[FieldError]) -> int | None:
    try:
        return values.parse_port(raw)
    except ValueError:
        errors.append(FieldError(name, raw, values.PORT_EXPECTED, "is not a port"))
        return None


def _exec_sleep(command: Any) -> int | None:
    """Nanoseconds slept by an exec hook that only sleeps (``sleep 5``, ``sh -c "sleep 5"``)."""
    if not isinstance(command, list) or not all(isinstance(part, str) for part in command):
        return None
    argument: str | None = None
    if len(command) == 2 and command[0] in _SLEEP_BINARIES:
        argument = command[1]
    elif len(command) == 3 and command[0] in _SHELLS and command[1] == "-c":
        match = _SLEEP_SCRIPT.fullmatch(command[2])
        argument = match.group(1) if match else None
    if argument is None:
        return None
    match = _SLEEP_ARG.fullmatch(argument)
    if match is None:
        return None
    scale = {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]
    seconds = float(match.group(1)) * scale
    if seconds > MAX_DURATION / durations.SECOND:
        return MAX_DURATION
    return durations.from_seconds(seconds)


def _kept_hook(
    container: str, action: Any, spec: _Spec, errors: list[FieldError]
) -> KeptHook | None:
    where = f"spec.containers[{container}].lifecycle.preStop.httpGet"
    if not isinstance(action, Mapping):
        errors.append(FieldError(where, _show(action), "a mapping", "is not a mapping"))
        return None
    port = spec.resolve_port(action.get("port"), container)
    if port is None:
        errors.append(
            FieldError(
                f"{where}.port",
                _show(action.get("port")),
                "a port number or a name in the container's ports",
                "is not a port of the container",
            )
        )
        return None
    path = action.get("path", "/")
    scheme = action.get("scheme", "HTTP")
    host = action.get("host")
    raw_headers = action.get("httpHeaders") or []
    headers: list[tuple[str, str]] = []
    valid = isinstance(path, str) and scheme in ("HTTP", "HTTPS")
    valid = valid and (host is None or isinstance(host, str)) and isinstance(raw_headers, list)
    if valid:
        for header in raw_headers:
            if (
                isinstance(header, Mapping)
                and isinstance(header.get("name"), str)
                and isinstance(header.get("value"), str)
            ):
                headers.append((header["name"], header["value"]))
            else:
                valid = False
    if not valid:
        errors.append(
            FieldError(
                where,
                _show(action),
                "path, port, scheme (HTTP or HTTPS), "
                "host and httpHeaders as Kubernetes defines them",
                "is not a valid httpGet hook",
            )
        )
        return None
    assert isinstance(path, str) and isinstance(scheme, str)
    return KeptHook(
        container=container,
        path=path or "/",
        port=port,
        scheme=scheme,
        host=host or None,
        headers=tuple(headers),
    )


def _format_error(where: str, value: str, expected: str, problem: str) -> PlanFormatError:
    return PlanFormatError([FieldError(where, value, expected, problem)])


_FLOAT_FIELDS: Final = (
    "deregister_timeout",
    "converge_min",
    "converge_max",
    "quiet_window",
    "kept_hook_timeout",
    "drain_timeout",
    "margin",
    "sleep_absorbed",
    "epsilon",
)


def _plan_from_dict(data: Any) -> ShutdownPlan:
    """Strictly typed reading of a serialised plan; every mismatch is a PlanFormatError."""
    if not isinstance(data, dict):
        raise _format_error("plan", _show(data)[:80], "a JSON object", "is not an object")
    version = data.get("version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise _format_error(
            "plan.version",
            _show(version),
            f"{FORMAT_VERSION} (this quiesce "
            f"reads plan format {FORMAT_VERSION}; run the same quiesce version "
            "in the operator and the sidecar)",
            "is not a known plan format",
        )
    fields = {f.name for f in dataclasses.fields(ShutdownPlan)} - {"notes"}
    errors: list[FieldError] = []
    for name in sorted(set(data) - fields):
        errors.append(
            FieldError(f"plan.{name}", _show(data[name]), "no such field", "is an unknown field")
        )
    for name in sorted(fields - set(data)):
        errors.append(FieldError(f"plan.{name}", "", "the field to be present", "is missing"))
    if errors:
        raise PlanFormatError(errors)

    def bad(name: str, expected: str, problem: str = "has the wrong type") -> None:
        errors.append(FieldError(f"plan.{name}", _show(data[name]), expected, problem))

    def number(value: Any) -> bool:
        return (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and value >= 0
            and math.isfinite(value)
        )

    def integer(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    for name in _FLOAT_FIELDS:
        if not number(data[name]):
            bad(name, "a non-negative number of seconds")
    for name in ("grace_period_seconds", "port"):
        if not integer(data[name]):
            bad(name, "an integer")
    for name in ("signal", "template_grace"):
        if data[name] is not None and not integer(data[name]):
            bad(name, "an integer or null")
    for name in ("shutdown_url",):
        if data[name] is not None and not isinstance(data[name], str):
            bad(name, "a string or null")
    for name, choices in (("grace_source", GRACE_SOURCES), ("sidecar_mode", SIDECAR_MODES)):
        if data[name] not in choices:
            bad(name, " or ".join(choices), "is not a choice")
    if integer(data["port"]) and not 1 <= data["port"] <= 65535:
        bad("port", "a port from 1 to 65535", "is out of range")
    if integer(data["signal"]) and not 1 <= data["signal"] <= MAX_SIGNAL:
        bad("signal", f"a signal number from 1 to {MAX_SIGNAL}", "is out of range")
    for name in ("exec_hook_replaced", "auto_upgrade"):
        if not isinstance(data[name], bool):
            bad(name, "true or false")
    for name in ("containers", "consul_services"):
        if not isinstance(data[name], list) or not all(isinstance(x, str) for x in data[name]):
            bad(name, "a list of strings")
    for name in ("long_lived_ports", "probe_ports"):
        if not isinstance(data[name], list) or not all(integer(x) for x in data[name]):
            bad(name, "a list of integers")
    kept = data["kept_hook"]
    hook: KeptHook | None = None
    if kept is not None:
        try:
            hook = KeptHook(
                container=_typed(kept["container"], str),
                path=_typed(kept["path"], str),
                port=_typed(kept["port"], int),
                scheme=_typed(kept["scheme"], str),
                host=None if kept["host"] is None else _typed(kept["host"], str),
                headers=tuple(
                    (_typed(h["name"], str), _typed(h["value"], str)) for h in kept["headers"]
                ),
            )
        except (KeyError, TypeError):
            bad("kept_hook", "null or {container, path, port, scheme, host, headers}")
    if errors:
        raise PlanFormatError(errors)
    values = {name: data[name] for name in fields}
    values.update(
        kept_hook=hook,
        containers=tuple(data["containers"]),
        consul_services=tuple(data["consul_services"]),
        long_lived_ports=tuple(data["long_lived_ports"]),
        probe_ports=tuple(data["probe_ports"]),
    )
    for name in _FLOAT_FIELDS:
        values[name] = float(values[name])
    try:
        return ShutdownPlan(**values)
    except ValueError as exc:
        raise _format_error(
            "plan", "", "a plan whose budget adds up to its grace", str(exc)
        ) from None


def _typed(value: Any, kind: type) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(value)
    return value
