"""A defensive, read-only view of a pod spec, and what its preStop hooks are.

The plan is computed from whatever YAML a user applies, so nothing here
trusts a shape: a bad container, port or hook is a :class:`model.FieldError`
naming its place in the spec, never an exception. The hook readers classify
an app's existing ``preStop``: a sleep (``sleep``, or an ``exec`` that only
sleeps) folds into the convergence floor, an ``httpGet`` is kept and called
by the sidecar, anything else is replaced or refused by :mod:`quiesce.plan.build`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from quiesce import annotations as keys
from quiesce import contract, durations, values
from quiesce.plan import fields, model
from quiesce.plan.model import FieldError, KeptHook

_SLEEP_BINARIES: Final = frozenset({"sleep", "/bin/sleep", "/usr/bin/sleep"})
_SHELLS: Final = frozenset(
    {"sh", "/bin/sh", "/usr/bin/sh", "bash", "/bin/bash", "/usr/bin/bash", "ash", "/bin/ash"}
)
#: terminationGracePeriodSeconds the plan accepts: its nanoseconds fit Go's int64.
_MAX_GRACE: Final = durations.MAX_NANOSECONDS // durations.SECOND
_SLEEP_ARG: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smh]?)")
_SLEEP_SCRIPT: Final = re.compile(r"\s*(?:exec\s+)?sleep\s+([0-9]+(?:\.[0-9]+)?[smh]?)\s*;?\s*")


class Spec:
    """Read-only, defensive view of a pod spec (it may come from any YAML)."""

    def __init__(self, pod_spec: Mapping[str, Any], errors: list[FieldError]) -> None:
        self.ok = True
        self.errors = errors
        self.spec: Mapping[str, Any] = pod_spec if isinstance(pod_spec, Mapping) else {}
        if not isinstance(pod_spec, Mapping):
            self._fail("spec", pod_spec, "a pod spec mapping", "is not a mapping")
        self.containers = self._list("containers")
        self.init_containers = self._list("initContainers")
        # By name, first one wins: targets are looked up once per hook, probe and port,
        # so a linear search is quadratic in a pod of thousands of containers.
        self._by_name: dict[str, Mapping[str, Any]] = {}
        for c in self.containers:
            self._by_name.setdefault(c["name"], c)

    def _fail(self, where: str, value: Any, expected: str, problem: str) -> None:
        self.ok = False
        self.errors.append(FieldError(where, model.show(value), expected, problem))

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
                if item["name"] != model.SIDECAR_NAME:
                    result.append(item)
            else:
                self._fail(f"spec.{key}", item, "containers with a name", "has a bad container")
        return result

    def container_names(self) -> tuple[str, ...]:
        return tuple(c["name"] for c in self.containers)

    def container(self, name: str) -> Mapping[str, Any]:
        return self._by_name.get(name, {})

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
                if p.get("name") == name and fields.is_port(number):
                    return int(number)
        return None

    def resolve_port(self, value: Any, container: str) -> int | None:
        if fields.is_port(value):
            return int(value)
        if isinstance(value, str):
            try:
                return values.parse_port(value)
            except ValueError:
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

    def probe_grace(self, targets: Sequence[str]) -> int | None:
        """The shortest ``terminationGracePeriodSeconds`` of the targets' liveness and
        startup probes (the kubelet uses it instead of the pod's when that probe kills)."""
        found: list[int] = []
        for name, kind in itertools.product(targets, ("livenessProbe", "startupProbe")):
            c = self.container(name)
            probe = c.get(kind)
            if not isinstance(probe, Mapping):
                continue
            value = probe.get("terminationGracePeriodSeconds")
            if value is None:
                continue
            if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= _MAX_GRACE:
                found.append(value)
            else:
                self._fail(
                    f"spec.containers[{name}].{kind}.terminationGracePeriodSeconds",
                    value,
                    "a positive integer",
                    "is not a number of seconds",
                )
        return min(found) if found else None

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
            if (
                hook is not None
                and "exec" in hook
                and exec_sleep(exec_command(hook["exec"])) is None
            ):
                return True
        return False

    def grace(self) -> int | None:
        value = self.spec.get("terminationGracePeriodSeconds")
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_GRACE:
            return value
        if not any(e.annotation == "spec.terminationGracePeriodSeconds" for e in self.errors):
            self._fail(
                "spec.terminationGracePeriodSeconds",
                value,
                "a non-negative integer"
                if not isinstance(value, int) or value < _MAX_GRACE
                else f"at most {_MAX_GRACE} (int64 nanoseconds)",
                "is not a number of seconds",
            )
        return None


def sleep_seconds(action: Any) -> int | None:
    """Seconds of a ``preStop: sleep`` action; None when it is not ``{seconds: <int >= 0>}``."""
    seconds = action.get("seconds") if isinstance(action, Mapping) else None
    if isinstance(seconds, int) and not isinstance(seconds, bool) and seconds >= 0:
        return seconds
    return None


def exec_command(action: Any) -> Any:
    """The ``command`` of a ``preStop: exec`` action (None when the action is no mapping)."""
    return action.get("command") if isinstance(action, Mapping) else None


def exec_sleep(command: Any) -> int | None:
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
    if seconds > model.MAX_DURATION / durations.SECOND:
        return model.MAX_DURATION
    return durations.from_seconds(seconds)


def http_hook(container: str, action: Any, spec: Spec, errors: list[FieldError]) -> KeptHook | None:
    """A ``preStop: httpGet`` action as the hook the sidecar calls; None (error recorded)."""
    where = f"spec.containers[{container}].lifecycle.preStop.httpGet"
    if not isinstance(action, Mapping):
        errors.append(FieldError(where, model.show(action), "a mapping", "is not a mapping"))
        return None
    port = spec.resolve_port(action.get("port"), container)
    if port is None:
        errors.append(
            FieldError(
                f"{where}.port",
                model.show(action.get("port")),
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
                model.show(action),
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


def read_hooks(
    spec: Spec,
    targets: tuple[str, ...],
    *,
    exec_replace: bool,
    errors: list[FieldError],
    notes: list[str],
) -> tuple[int, KeptHook | None] | None:
    """Existing preStop hooks of the targets: (sleep absorbed in ns, kept httpGet)."""
    sleep_ns = 0
    kept: KeptHook | None = None
    ok = True
    for name in targets:
        hook = spec.prestop(name)
        if hook is None:
            continue
        slept: int | None = 0
        if "sleep" in hook:
            slept = _sleep_hook(name, hook["sleep"], errors=errors, notes=notes)
        elif "exec" in hook:
            slept = _exec_hook(
                name, hook["exec"], exec_replace=exec_replace, errors=errors, notes=notes
            )
        elif "httpGet" in hook:
            http = _http_prestop(
                name, hook["httpGet"], spec, targets, kept=kept, errors=errors, notes=notes
            )
            if http is None:
                slept = None
            else:
                kept = http
        elif "tcpSocket" in hook:
            notes.append(
                f"container {name}: preStop tcpSocket does nothing in Kubernetes "
                "and is replaced (restored on un-inject)"
            )
        else:
            slept = None
            errors.append(
                FieldError(
                    f"spec.containers[{name}].lifecycle.preStop",
                    model.show(hook),
                    "one of sleep, exec or httpGet",
                    "is not a hook quiesce knows",
                )
            )
        if slept is None:
            ok = False
        else:
            sleep_ns = max(sleep_ns, slept)
    return (sleep_ns, kept) if ok else None


def _sleep_hook(
    name: str, action: Any, *, errors: list[FieldError], notes: list[str]
) -> int | None:
    """A ``sleep`` hook: its nanoseconds, folded into the floor; None when malformed."""
    seconds = sleep_seconds(action)
    if seconds is None:
        errors.append(
            FieldError(
                f"spec.containers[{name}].lifecycle.preStop",
                model.show(action),
                "sleep.seconds: <integer>",
                "is not a valid sleep hook",
            )
        )
        return None
    notes.append(f"container {name}: preStop sleep {seconds}s is folded into the convergence floor")
    return min(seconds * durations.SECOND, model.MAX_DURATION)


def _exec_hook(
    name: str, action: Any, *, exec_replace: bool, errors: list[FieldError], notes: list[str]
) -> int | None:
    """An ``exec`` hook: a sleep folds in, anything else is replaced if asked, else refused."""
    command = exec_command(action)
    slept = exec_sleep(command)
    if slept is not None:
        notes.append(
            f"container {name}: preStop exec {model.show(command)} is a sleep, "
            "folded into the convergence floor"
        )
        return min(slept, model.MAX_DURATION)
    if exec_replace:
        notes.append(
            f"container {name}: preStop exec {model.show(command)} is replaced "
            f"({keys.EXEC_HOOK}: replace) and restored on un-inject"
        )
        return 0
    errors.append(
        FieldError(
            keys.EXEC_HOOK,
            fields.command(command),
            f'{keys.EXEC_HOOK}: "replace" to drop it (it is '
            "restored on un-inject), or an httpGet or sleep "
            "hook",
            f'is the preStop exec of container "{name}", which the sidecar cannot run',
        )
    )
    return None


def _http_prestop(
    name: str,
    action: Any,
    spec: Spec,
    targets: tuple[str, ...],
    *,
    kept: KeptHook | None,
    errors: list[FieldError],
    notes: list[str],
) -> KeptHook | None:
    """An ``httpGet`` hook: the one kept hook, or None (error recorded)."""
    http = http_hook(name, action, spec, errors)
    if http is None:
        return None
    if any(contract.is_token_header(h[0]) for h in http.headers):
        errors.append(
            FieldError(
                keys.INJECT,
                "true",
                "the original template (quiesce's template.restore gives it back)",
                f'meets a template already injected: container "{name}" calls the sidecar',
            )
        )
        return None
    if kept is not None:
        errors.append(
            FieldError(
                keys.CONTAINERS,
                ",".join(targets),
                "targets of which at most one has an httpGet preStop",
                f'includes "{kept.container}" and "{name}", both with an httpGet preStop',
            )
        )
        return None
    notes.append(
        f"container {name}: preStop GET {http.url()} is kept; the "
        "sidecar calls it after convergence"
    )
    return http
