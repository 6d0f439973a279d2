"""Building a ShutdownPlan from a workload's annotations and its pod template.

:func:`build_plan` is what the operator, the webhook and ``quiesce plan`` call:
it reads every ``quiesce.dev/*`` annotation (:mod:`quiesce.plan.fields`), the
pod template's facts (:mod:`quiesce.plan.podspec`), fits the phases into the
grace (:mod:`quiesce.plan.budget`) and returns the frozen plan, or raises one
:class:`model.PlanError` listing every problem at once.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Mapping
from typing import Any, Final

from quiesce import annotations as keys
from quiesce import durations, values
from quiesce.plan import budget, fields, model, podspec
from quiesce.plan.model import FieldError, KeptHook, PlanDefaults, PlanError, ShutdownPlan

_HTTP_URL: Final = re.compile(r"https?://[^\s/?#]+(?:[/?#]\S*)?")
#: Pod containers beyond which a "did you mean" hint is not computed (difflib's cost).
_HINT_CANDIDATES: Final = 256
#: Names an error lists before "and K more".
_SHOWN_NAMES: Final = 10


def _some(names: tuple[str, ...]) -> str:
    """The first few names, comma-separated, then how many more."""
    shown = ", ".join(model.clip(name, 63) for name in names[:_SHOWN_NAMES])
    if len(names) > _SHOWN_NAMES:
        shown += f" and {len(names) - _SHOWN_NAMES} more"
    return shown


def build_plan(
    annotations: Mapping[str, str],
    pod_spec: Mapping[str, Any],
    defaults: PlanDefaults | None = None,
) -> ShutdownPlan:
    """Compute the plan of one workload; raise :class:`PlanError` listing every problem."""
    reader = _Reader(annotations, defaults or PlanDefaults())
    return reader.build(pod_spec)


class _Reader:
    """Collects every error while reading annotations and the pod template."""

    def __init__(self, annotations: Mapping[str, str], defaults: PlanDefaults) -> None:
        self.annotations = annotations if isinstance(annotations, Mapping) else {}
        self.defaults = defaults
        self.errors = model.ErrorList()
        self.notes: list[str] = []
        self.present: set[str] = set()
        if not isinstance(annotations, Mapping):
            self.errors.append(
                FieldError(
                    "metadata.annotations",
                    model.show(annotations),
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
                    model.show(value),
                    f'a quoted string in YAML, e.g. "{model.show(value)}"',
                    "is not a string",
                )
            )
            return None
        return value

    def duration(self, key: str, default: float, *, positive: bool = False) -> int | None:
        raw = self._raw(key)
        if raw is None:
            return durations.from_seconds(default)
        ns = fields.duration(key, raw, self.errors)
        if ns is not None and positive and ns == 0:
            self.errors.append(FieldError(key, raw, "a duration above 0", "is zero"))
            return None
        return ns

    def boolean(self, key: str, default: bool) -> bool:
        raw = self._raw(key)
        if raw is None:
            return default
        value = fields.boolean(key, raw, self.errors)
        return default if value is None else value

    def items(self, key: str) -> tuple[str, ...] | None:
        """Comma-separated list; None when absent or malformed (error recorded)."""
        raw = self._raw(key)
        if raw is None:
            return None
        # Count before splitting: 256 KiB of commas must not become 256 Ki strings.
        count = raw.count(",") + 1
        if count > model.MAX_LIST_ITEMS:
            self.errors.append(
                FieldError(
                    key,
                    raw,
                    f"at most {model.MAX_LIST_ITEMS} comma-separated items",
                    f"lists {count} items",
                )
            )
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
        phases = _Phases.of(
            dereg=self.duration(keys.DEREGISTER_TIMEOUT, d.deregister_timeout),
            cmin=self.duration(keys.CONVERGE_MIN, d.converge_min),
            cmax=self.duration(keys.CONVERGE_MAX, d.converge_max),
            quiet=self.duration(keys.QUIET_WINDOW, d.quiet_window),
            hook=self.duration(keys.HOOK_TIMEOUT, d.hook_timeout),
            drain=self.duration(keys.DRAIN_TIMEOUT, d.drain_timeout),
            margin=self.duration(keys.MARGIN, d.margin),
        )
        grace = self._grace()
        signal, shutdown_url = self._stop()
        exec_replace = self._exec_hook()
        mode = self._sidecar_mode()
        auto_upgrade = self.boolean(keys.AUTO_UPGRADE, d.auto_upgrade)
        services = self.items(keys.CONSUL_SERVICE) or ()

        spec = podspec.Spec(pod_spec, self.errors)
        targets = self._targets(spec)
        port = self._port(spec)
        long_lived = self._long_lived_ports(spec, targets)
        probe_ports = tuple(sorted({p for name in targets for p in spec.probe_ports(name)}))
        probe_grace = spec.probe_grace(targets)
        facts = podspec.read_hooks(
            spec, targets, exec_replace=exec_replace, errors=self.errors, notes=self.notes
        )

        if self.errors or phases is None or facts is None:
            raise PlanError(self.errors)
        sleep_ns, kept_hook = facts
        fitted = self._fit(phases, grace=grace, sleep_ns=sleep_ns, kept_hook=kept_hook, spec=spec)
        self.notes.extend(budget.probe_grace_notes(probe_grace, fitted.grace_seconds))
        if signal is not None and signal == 15:
            self.notes.append(
                "the sidecar sends SIGTERM itself; leaving quiesce.dev/signal out "
                "lets the kubelet send the container's own stop signal"
            )
        s = durations.to_seconds
        return ShutdownPlan(
            version=model.FORMAT_VERSION,
            deregister_timeout=s(fitted.dereg),
            converge_min=s(fitted.cmin),
            converge_max=s(fitted.cmax),
            quiet_window=s(fitted.quiet),
            kept_hook_timeout=s(fitted.hook),
            drain_timeout=s(fitted.drain),
            margin=s(fitted.margin),
            grace_period_seconds=fitted.grace_seconds,
            grace_source=fitted.grace_source,
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
            probe_grace_seconds=probe_grace,
            notes=tuple(self.notes),
        )

    def _fit(
        self,
        phases: _Phases,
        *,
        grace: int | None,
        sleep_ns: int,
        kept_hook: KeptHook | None,
        spec: podspec.Spec,
    ) -> _Fitted:
        """Fold the old sleep into convergence and fit the phases into the grace."""
        dereg, quiet, drain, hook = phases.dereg, phases.quiet, phases.drain, phases.hook
        if kept_hook is None:
            if keys.HOOK_TIMEOUT in self.present:
                self.notes.append(
                    f"{keys.HOOK_TIMEOUT} is unused: no target has an httpGet preStop"
                )
            hook = 0
        bounds = budget.converge(
            cmin=phases.cmin,
            cmax=phases.cmax,
            quiet=quiet,
            sleep_ns=sleep_ns,
            annotations=self.annotations,
        )
        self.notes.extend(bounds.notes)
        self.errors.extend(bounds.errors)
        fitted = budget.fit(
            dereg=dereg,
            cmin=bounds.floor,
            cmax=bounds.ceiling,
            quiet=quiet,
            hook=hook,
            drain=drain,
            margin=phases.margin,
            grace=grace,
            template_grace=spec.grace(),
            default_converge_max=durations.from_seconds(self.defaults.converge_max),
            annotations=self.annotations,
        )
        self.notes.extend(fitted.notes)
        self.errors.extend(fitted.errors)
        if self.errors:
            raise PlanError(self.errors)
        return _Fitted(
            dereg=dereg,
            cmin=bounds.floor,
            cmax=fitted.converge_max,
            quiet=quiet,
            hook=hook,
            drain=drain,
            margin=fitted.margin,
            grace_seconds=fitted.grace_seconds,
            grace_source=fitted.grace_source,
        )

    # -- single annotations ------------------------------------------------------------
    def _stop(self) -> tuple[int | None, str | None]:
        """How the sidecar stops the app: a signal, a shutdown URL, or neither (never both)."""
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
        return signal, shutdown_url

    def _check_keys(self) -> None:
        for key, value in self.annotations.items():
            if not isinstance(key, str):
                self.errors.append(
                    FieldError(
                        "metadata.annotations",
                        model.show(key),
                        "string keys",
                        "is not a string key",
                    )
                )
                continue
            if key.startswith(keys.STATE_PREFIX) or not key.startswith(keys.PREFIX):
                continue
            short = key.removeprefix(keys.PREFIX)
            if short not in model.USER_KEYS:
                self.errors.append(
                    fields.unknown_key(key, value, short, model.USER_KEYS, keys.PREFIX)
                )

    def _grace(self) -> int | None:
        raw = self._raw(keys.GRACE_PERIOD)
        if raw is None:
            return None
        ns = fields.duration(keys.GRACE_PERIOD, raw, self.errors)
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
            number = values.parse_signal(raw)
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
        if number in model.UNGRACEFUL_SIGNALS:
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
        if raw in model.SIDECAR_MODES:
            return raw
        self.errors.append(
            FieldError(keys.SIDECAR_MODE, raw, "auto, native or container", "is not a mode")
        )
        return self.defaults.sidecar_mode

    def _targets(self, spec: podspec.Spec) -> tuple[str, ...]:
        names = spec.container_names()
        listed = self.items(keys.CONTAINERS)
        if listed is None:
            if not names and spec.ok:
                self.errors.append(
                    FieldError(
                        "spec.containers",
                        "",
                        f"at least one container besides {model.SIDECAR_NAME}",
                        "has no container",
                    )
                )
            return names
        known = set(names)
        choices = "one of the pod's containers: " + _some(names)
        for name in listed:
            if name not in known:
                expected = choices
                # difflib is quadratic in effect: only while the error is still listed.
                small = len(names) <= _HINT_CANDIDATES and not self.errors.full(keys.CONTAINERS)
                hint = difflib.get_close_matches(name, names, n=1) if small else []
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
        return tuple(name for name in listed if name in known)

    def _port(self, spec: podspec.Spec) -> int:
        raw = self._raw(keys.PORT)
        port = self.defaults.port
        key = f"{keys.PORT} (default)"
        if raw is not None:
            key = keys.PORT
            parsed = fields.port(keys.PORT, raw, self.errors)
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

    def _long_lived_ports(self, spec: podspec.Spec, targets: tuple[str, ...]) -> tuple[int, ...]:
        listed = self.items(keys.LONG_LIVED_PORTS)
        if not listed:
            return ()
        ports: set[int] = set()
        for item in listed:
            try:
                ports.add(values.parse_port(item))
                continue
            except ValueError:
                pass
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


@dataclasses.dataclass(frozen=True)
class _Phases:
    """The phases' durations as the annotations (or defaults) give them, in nanoseconds."""

    dereg: int
    cmin: int
    cmax: int
    quiet: int
    hook: int
    drain: int
    margin: int

    @classmethod
    def of(cls, **read: int | None) -> _Phases | None:
        """The phases, or None when an annotation was bad (its error is recorded)."""
        found = {name: ns for name, ns in read.items() if ns is not None}
        return cls(**found) if len(found) == len(read) else None


@dataclasses.dataclass(frozen=True)
class _Fitted:
    """Every budget in nanoseconds once fitted, and the grace in whole seconds."""

    dereg: int
    cmin: int
    cmax: int
    quiet: int
    hook: int
    drain: int
    margin: int
    grace_seconds: int
    grace_source: str
