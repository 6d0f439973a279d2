"""The plan on the wire: canonical JSON with a format version, read back strictly.

The operator writes a plan into the sidecar's ``QUIESCE_PLAN`` and hashes it for
idempotence; the sidecar reads it back and refuses anything but the format
version it knows (:data:`model.FORMAT_VERSION`), naming every bad field. Pure and
small: the sidecar loads this module and :mod:`quiesce.plan.model` only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any, Final

from quiesce.plan import model
from quiesce.plan.model import FieldError, KeptHook, PlanFormatError, ShutdownPlan


def to_dict(plan: ShutdownPlan) -> dict[str, Any]:
    """JSON-ready form, the one the sidecar reads (``notes`` are left out)."""
    data = dataclasses.asdict(plan)
    del data["notes"]
    data["containers"] = list(plan.containers)
    data["consul_services"] = list(plan.consul_services)
    data["long_lived_ports"] = list(plan.long_lived_ports)
    data["probe_ports"] = list(plan.probe_ports)
    for name in _OPTIONAL_FIELDS:
        if data[name] is None:
            del data[name]  # absent rather than null: plans without it keep their hash
    if plan.kept_hook is not None:
        data["kept_hook"]["headers"] = [
            {"name": name, "value": value} for name, value in plan.kept_hook.headers
        ]
    return data


def to_json(plan: ShutdownPlan) -> str:
    """Canonical JSON (sorted keys, compact): stable bytes for the env var and the hash."""
    return json.dumps(to_dict(plan), sort_keys=True, separators=(",", ":"))


def from_json(text: str | bytes) -> ShutdownPlan:
    """Read :func:`to_json` output; raise :class:`model.PlanFormatError` for anything else."""
    try:
        data = json.loads(text)
    except (ValueError, TypeError, RecursionError) as exc:
        # RecursionError: "[[[[...": json nests on the C stack.
        raise _format_error(
            "plan", str(text)[:80], "the JSON of ShutdownPlan.to_json()", f"is not JSON ({exc})"
        ) from None
    return from_dict(data)


def plan_hash(plan: ShutdownPlan) -> str:
    """Stable hex digest of the serialised plan (16 hex digits), for idempotence."""
    return hashlib.sha256(to_json(plan).encode()).hexdigest()[:16]


def from_dict(data: Any) -> ShutdownPlan:
    """Strictly typed reading of a serialised plan; every mismatch is a PlanFormatError."""
    if isinstance(data, dict):
        data = {**dict.fromkeys(_OPTIONAL_FIELDS), **data}  # absent means None
    fields = _check_shape(data)
    errors = _type_errors(data)
    hook = _read_kept_hook(data["kept_hook"], errors)
    if errors:
        raise PlanFormatError(errors)
    chosen = {name: data[name] for name in fields}
    chosen.update(
        kept_hook=hook,
        containers=tuple(data["containers"]),
        consul_services=tuple(data["consul_services"]),
        long_lived_ports=tuple(data["long_lived_ports"]),
        probe_ports=tuple(data["probe_ports"]),
    )
    for name in _FLOAT_FIELDS:
        chosen[name] = float(chosen[name])
    try:
        return ShutdownPlan(**chosen)
    except ValueError as exc:
        raise _format_error(
            "plan", "", "a plan whose budget adds up to its grace", str(exc)
        ) from None


#: Fields left out of the JSON when None (added after format 1; absent means None).
_OPTIONAL_FIELDS: Final = ("probe_grace_seconds",)

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


def _check_shape(data: Any) -> set[str]:
    """An object of the known version with exactly the plan's fields; returns their names."""
    if not isinstance(data, dict):
        raise _format_error("plan", model.show(data)[:80], "a JSON object", "is not an object")
    version = data.get("version")
    if version != model.FORMAT_VERSION or isinstance(version, bool):
        raise _format_error(
            "plan.version",
            model.show(version),
            f"{model.FORMAT_VERSION} (this quiesce "
            f"reads plan format {model.FORMAT_VERSION}; run the same quiesce version "
            "in the operator and the sidecar)",
            "is not a known plan format",
        )
    fields = {f.name for f in dataclasses.fields(ShutdownPlan)} - {"notes"}
    errors: list[FieldError] = []
    for name in sorted(set(data) - fields):
        errors.append(
            FieldError(
                f"plan.{name}", model.show(data[name]), "no such field", "is an unknown field"
            )
        )
    for name in sorted(fields - set(data)):
        errors.append(FieldError(f"plan.{name}", "", "the field to be present", "is missing"))
    if errors:
        raise PlanFormatError(errors)
    return fields


def _number(value: Any) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return 0 <= value <= _MAX_INTEGER  # a larger one overflows float()
    return isinstance(value, float) and value >= 0 and math.isfinite(value)


#: Largest integer a plan field may hold: Go's int64, and float() of it is exact enough.
_MAX_INTEGER: Final = 2**63 - 1


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) <= _MAX_INTEGER


def _type_errors(data: dict[str, Any]) -> list[FieldError]:
    """Every field of the wrong type or out of range, in the order the fields are checked."""
    errors: list[FieldError] = []

    def bad(name: str, expected: str, problem: str = "has the wrong type") -> None:
        errors.append(FieldError(f"plan.{name}", model.show(data[name]), expected, problem))

    for name in _FLOAT_FIELDS:
        if not _number(data[name]):
            bad(name, "a non-negative number of seconds")
    for name in ("grace_period_seconds", "port"):
        if not _integer(data[name]):
            bad(name, "an integer")
    for name in ("signal", "template_grace", "probe_grace_seconds"):
        if data[name] is not None and not _integer(data[name]):
            bad(name, "an integer or null")
    if data["shutdown_url"] is not None and not isinstance(data["shutdown_url"], str):
        bad("shutdown_url", "a string or null")
    for name, choices in (
        ("grace_source", model.GRACE_SOURCES),
        ("sidecar_mode", model.SIDECAR_MODES),
    ):
        if data[name] not in choices:
            bad(name, " or ".join(choices), "is not a choice")
    if _integer(data["port"]) and not 1 <= data["port"] <= 65535:
        bad("port", "a port from 1 to 65535", "is out of range")
    if _integer(data["signal"]) and not 1 <= data["signal"] <= model.MAX_SIGNAL:
        bad("signal", f"a signal number from 1 to {model.MAX_SIGNAL}", "is out of range")
    for name in ("exec_hook_replaced", "auto_upgrade"):
        if not isinstance(data[name], bool):
            bad(name, "true or false")
    for name in ("containers", "consul_services"):
        if not isinstance(data[name], list) or not all(isinstance(x, str) for x in data[name]):
            bad(name, "a list of strings")
    for name in ("long_lived_ports", "probe_ports"):
        if not isinstance(data[name], list) or not all(_integer(x) for x in data[name]):
            bad(name, "a list of integers")
    return errors


def _read_kept_hook(kept: Any, errors: list[FieldError]) -> KeptHook | None:
    if kept is None:
        return None
    try:
        return KeptHook(
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
        errors.append(
            FieldError(
                "plan.kept_hook",
                model.show(kept),
                "null or {container, path, port, scheme, host, headers}",
                "has the wrong type",
            )
        )
        return None


def _typed(value: Any, kind: type) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(value)
    return value


def _format_error(where: str, value: str, expected: str, problem: str) -> PlanFormatError:
    return PlanFormatError([FieldError(where, value, expected, problem)])
