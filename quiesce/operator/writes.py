"""The requests a decision makes: a server-side apply body, RFC 6902 JSON patches and a
merge patch, built from the object as the API server has it. Pure functions.

Server-side apply (field manager ``quiesce``) owning only what
quiesce adds. Two changes cannot be expressed as an apply, because apply
merges into fields other managers own: replacing an app's own preStop hook of
another shape (the API refuses two handler types in one hook) and restoring
the original template byte for byte. Those are one JSON patch each, guarded by
a ``test`` of the resourceVersion so a concurrent change makes them fail and
retry instead of overwriting it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from quiesce import template
from quiesce.operator import resources

WriteKind = Literal["apply", "json-patch", "merge-patch"]


@dataclasses.dataclass(frozen=True)
class Write:
    """One request to the workload: an apply body, RFC 6902 operations or a merge patch."""

    kind: WriteKind
    body: Any


def apply(obj: Mapping[str, Any], injection: template.Injection, state: Mapping[str, str]) -> Write:
    """The server-side apply configuration: only the fields quiesce sets, plus its state.

    Owning nothing else matters: a field in this body becomes quiesce's, and a later
    apply that leaves it out would delete it.
    """
    record = injection.replaced
    desired = injection.pod_spec
    ours: dict[str, Any] = {}
    for key, field in record["fields"].items():
        if "set" in field:
            ours[key] = desired[key]
    by_name = {c.get("name"): c for c in desired.get("containers", ()) if isinstance(c, Mapping)}
    containers = [
        {"name": name, "lifecycle": {"preStop": by_name[name]["lifecycle"]["preStop"]}}
        for name in record["lifecycles"]
    ]
    sidecar = next(
        c
        for c in desired["initContainers" if record["native"] else "containers"]
        if c.get("name") == template.SIDECAR_NAME
    )
    if record["native"]:
        ours["initContainers"] = [sidecar]
    else:
        containers.append(sidecar)
    ours["containers"] = containers
    volumes = [v for v in desired.get("volumes", ()) if v.get("name") in set(record["volumes"])]
    if volumes:
        ours["volumes"] = volumes
    metadata = obj.get("metadata") or {}
    body = {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": {
            "name": metadata.get("name"),
            "namespace": metadata.get("namespace"),
            # A precondition: a stale copy of the object makes the apply fail (409), not win.
            "resourceVersion": metadata.get("resourceVersion"),
            "annotations": dict(state),
        },
        "spec": {"template": {"spec": ours}},
    }
    return Write("apply", body)


def json_patch_injection(
    obj: Mapping[str, Any],
    desired: Mapping[str, Any],
    annotations: Mapping[str, str],
    state: Mapping[str, str],
) -> Write:
    """The injected pod spec as one replace, for when apply cannot merge it (another hook)."""
    ops: list[dict[str, Any]] = [_test_version(obj)]
    ops.append({"op": "replace", "path": resources.POD_SPEC_POINTER, "value": desired})
    for key, value in state.items():
        op = "replace" if key in annotations else "add"
        ops.append({"op": op, "path": _annotation_pointer(key), "value": value})
    return Write("json-patch", ops)


def restore(
    obj: Mapping[str, Any], restored: Mapping[str, Any] | None, state_keys: Sequence[str]
) -> Write:
    """The original pod spec back byte for byte (None: it is already), the state removed."""
    ops: list[dict[str, Any]] = [_test_version(obj)]
    if restored is not None:
        ops.append({"op": "replace", "path": resources.POD_SPEC_POINTER, "value": restored})
    ops.extend({"op": "remove", "path": _annotation_pointer(key)} for key in state_keys)
    return Write("json-patch", ops)


def merge_patch(obj: Mapping[str, Any], annotations: Mapping[str, str | None]) -> Write:
    """Annotations only (no rollout); the resourceVersion makes it a precondition."""
    version = (obj.get("metadata") or {}).get("resourceVersion")
    return Write(
        "merge-patch",
        {"metadata": {"resourceVersion": version, "annotations": dict(annotations)}},
    )


def _test_version(obj: Mapping[str, Any]) -> dict[str, Any]:
    version = (obj.get("metadata") or {}).get("resourceVersion")
    return {"op": "test", "path": "/metadata/resourceVersion", "value": version}


def _annotation_pointer(key: str) -> str:
    return template.json_pointer("metadata", "annotations", key)
