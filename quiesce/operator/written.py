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

#: Key quiesce adds to template.inject's record: the template's grace was the API server's
#: default (30 s), not the user's, so plans ignore it as ``quiesce plan`` on the manifest does.
GRACE_DEFAULTED: Final = "grace_defaulted"
GRACE: Final = "terminationGracePeriodSeconds"
DEFAULT_GRACE: Final = 30
LAST_APPLIED: Final = "kubectl.kubernetes.io/last-applied-configuration"


def written_spec(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The pod spec as ``kubectl apply`` last wrote it (its last-applied configuration)."""
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    if not isinstance(raw, str):
        return None
    try:
        spec: Any = json.loads(raw)
    except ValueError:
        return None
    for key in ("spec", "template", "spec"):
        spec = spec.get(key) if isinstance(spec, Mapping) else None
    return spec if isinstance(spec, Mapping) else None


def grace_defaulted(
    obj: Mapping[str, Any], original: Mapping[str, Any], record: Mapping[str, Any] | None
) -> bool:
    """Is the template's terminationGracePeriodSeconds the API server's default (30 s)?

    A manifest without it gets 30 s from the API server, and a plan would then keep
    30 s as if the user had asked for it (``quiesce plan`` on the manifest would not).
    What the user wrote is known from ``kubectl apply``'s last-applied configuration
    or from server-side appliers' field ownership (Update operations own defaults
    too, so they tell nothing). Without either, the 30 s counts as the user's: the
    safe side, a longer grace. Once quiesce has injected, its record remembers.
    """
    if original.get(GRACE) != DEFAULT_GRACE:
        return False
    if record is not None:
        return bool(record.get(GRACE_DEFAULTED))
    metadata = obj.get("metadata") or {}
    last_applied = (metadata.get("annotations") or {}).get(LAST_APPLIED)
    if isinstance(last_applied, str):
        try:
            written = json.loads(last_applied)
        except ValueError:
            written = None
        if isinstance(written, Mapping):
            spec: Any = written
            for key in ("spec", "template", "spec"):
                spec = spec.get(key) if isinstance(spec, Mapping) else None
            return isinstance(spec, Mapping) and GRACE not in spec
    applied = [
        entry
        for entry in metadata.get("managedFields") or ()
        if isinstance(entry, Mapping) and entry.get("operation") == "Apply"
    ]
    if not applied:
        return False
    for entry in applied:
        fields = entry.get("fieldsV1")
        for key in ("f:spec", "f:template", "f:spec"):
            fields = fields.get(key) if isinstance(fields, Mapping) else None
        if isinstance(fields, Mapping) and f"f:{GRACE}" in fields:
            return False
    return True


def without_grace(pod_spec: Mapping[str, Any], grace_defaulted: bool) -> Mapping[str, Any]:
    if not grace_defaulted:
        return pod_spec
    return {key: value for key, value in pod_spec.items() if key != GRACE}
