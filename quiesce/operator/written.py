"""What the user wrote, as far as the API server tells: the last-applied configuration and
field ownership.

The API server defaults ``terminationGracePeriodSeconds`` to 30 s; a plan must not
take that 30 s for the user's choice, or the operator would keep a grace that
``quiesce plan`` on the manifest does not. Only appliers leave a trace of what was
written: ``kubectl apply``'s last-applied annotation, server-side appliers' managed
fields. Pure functions of the object.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from quiesce import template

#: Key quiesce adds to template.inject's record: the template's grace was the API server's
#: default (30 s), not the user's, so plans ignore it as ``quiesce plan`` on the manifest does.
GRACE_DEFAULTED: Final = "grace_defaulted"
GRACE: Final = "terminationGracePeriodSeconds"
DEFAULT_GRACE: Final = 30
LAST_APPLIED: Final = "kubectl.kubernetes.io/last-applied-configuration"


def last_applied(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The object as ``kubectl apply`` last wrote it (its last-applied configuration), or
    None when there is none or it is not a JSON object."""
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    if not isinstance(raw, str):
        return None
    try:
        parsed: Any = json.loads(raw)
    except ValueError:
        return None
    return parsed if isinstance(parsed, Mapping) else None


def written_spec(
    obj: Mapping[str, Any], path: tuple[str, ...] | None = None
) -> Mapping[str, Any] | None:
    """The pod spec as ``kubectl apply`` last wrote it; ``path`` says where it is (default:
    where the object's kind keeps it)."""
    spec: Any = last_applied(obj)
    for key in _path(obj, path):
        spec = spec.get(key) if isinstance(spec, Mapping) else None
    return spec if isinstance(spec, Mapping) else None


def grace_defaulted(
    obj: Mapping[str, Any], pod_spec: Mapping[str, Any], *, path: tuple[str, ...] | None = None
) -> bool:
    """Is the terminationGracePeriodSeconds of ``pod_spec`` (at ``path`` in ``obj``, default
    where its kind keeps its pod spec) the API server's default (30 s)?

    A manifest without it gets 30 s from the API server, and a plan would then keep
    30 s as if the user had asked for it (``quiesce plan`` on the manifest would not).
    What the user wrote is known from ``kubectl apply``'s last-applied configuration
    or from server-side appliers' field ownership (Update operations own defaults
    too, so they tell nothing). Without either, the 30 s counts as the user's: the
    safe side, a longer grace.
    """
    if pod_spec.get(GRACE) != DEFAULT_GRACE:
        return False
    if last_applied(obj) is not None:
        spec = written_spec(obj, path)
        return spec is not None and GRACE not in spec
    applied = [
        entry
        for entry in (obj.get("metadata") or {}).get("managedFields") or ()
        if isinstance(entry, Mapping) and entry.get("operation") == "Apply"
    ]
    if not applied:
        return False
    for entry in applied:
        fields = entry.get("fieldsV1")
        for key in _path(obj, path):
            fields = fields.get(f"f:{key}") if isinstance(fields, Mapping) else None
        if isinstance(fields, Mapping) and f"f:{GRACE}" in fields:
            return False
    return True


def without_grace(pod_spec: Mapping[str, Any], grace_defaulted: bool) -> Mapping[str, Any]:
    """The spec as the user wrote it: without a grace the API server defaulted."""
    if not grace_defaulted:
        return pod_spec
    return {key: value for key, value in pod_spec.items() if key != GRACE}


def foreign_hooks(pod_spec: Mapping[str, Any], targets: tuple[str, ...]) -> bool:
    """Does a target container carry a preStop hook that is not quiesce's?"""
    for container in pod_spec.get("containers") or ():
        if not (isinstance(container, Mapping) and container.get("name") in targets):
            continue
        lifecycle = container.get("lifecycle")
        hook = lifecycle.get("preStop") if isinstance(lifecycle, Mapping) else None
        if hook is not None and not template.is_our_hook(hook):
            return True
    return False


def manifest_conflicts(obj: Mapping[str, Any], targets: tuple[str, ...], grace: int) -> list[str]:
    """Fields of the user's manifest that quiesce replaces: every ``kubectl apply`` sends them
    again (a preStop of another handler type is then refused by the API server, a smaller grace
    rolls the workload twice)."""
    spec = written_spec(obj)
    if spec is None:
        return []
    found: list[str] = []
    for container in spec.get("containers") or ():
        if not isinstance(container, Mapping) or container.get("name") not in targets:
            continue
        lifecycle = container.get("lifecycle")
        if isinstance(lifecycle, Mapping) and "preStop" in lifecycle:
            found.append(f"containers[{container['name']}].lifecycle.preStop")
    written_grace = spec.get(GRACE)
    if written_grace is not None and written_grace != grace:
        found.append(f"{GRACE} {written_grace} (the plan needs {grace})")
    return found


def _path(obj: Mapping[str, Any], path: tuple[str, ...] | None) -> tuple[str, ...]:
    return template.pod_spec_path(str(obj.get("kind") or "")) if path is None else path
