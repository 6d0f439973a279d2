"""A typed view of "something that runs pods", read defensively from raw YAML.

Rules should not each re-learn where a CronJob keeps its pod template or what
to do when ``containers`` is a string; this module answers that once. Every
accessor tolerates any shape (the input is arbitrary YAML) and returns empty
values instead of raising.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Final

from quiesce import annotations as keys

# Where a kind keeps its pod template, as the operator and `quiesce plan` read it; costs
# ~45 ms the first time (template pulls in the plan and the configuration), measured.
from quiesce import template as pod_template
from quiesce import values
from quiesce.lint import findings, loader

DEFAULT_GRACE: Final = 30
"""Kubernetes' default terminationGracePeriodSeconds."""

BATCH_KINDS: Final = frozenset({"Job", "CronJob"})
"""Kinds whose pods run to completion and serve no traffic."""

"""``quiesce.dev/inject`` values that mean no (as the plan parses booleans)."""


@dataclasses.dataclass(frozen=True)
class Container:
    """One container of a pod template, with its path from the object's root."""

    index: int
    name: str
    spec: Mapping[str, Any]
    path: loader.FieldPath

    @property
    def image(self) -> str:
        return text(self.spec.get("image"))

    def strings(self, key: str) -> list[str]:
        """``command`` or ``args`` as strings (numbers become text, other items are dropped)."""
        return string_list(self.spec.get(key))

    def env(self) -> list[tuple[int, str, str | None]]:
        """``(index, name, value)`` of each env entry; value is None for ``valueFrom``."""
        out: list[tuple[int, str, str | None]] = []
        for index, item in enumerate(sequence(self.spec.get("env"))):
            item = mapping(item)
            name = item.get("name")
            if isinstance(name, str):
                value = item.get("value")
                out.append((index, name, text(value) if "value" in item else None))
        return out

    def pre_stop(self) -> Mapping[str, Any]:
        return mapping(mapping(self.spec.get("lifecycle")).get("preStop"))

    def port_numbers_and_names(self) -> tuple[set[int], set[str]]:
        numbers: set[int] = set()
        names: set[str] = set()
        for port in sequence(self.spec.get("ports")):
            port = mapping(port)
            number, name = port.get("containerPort"), port.get("name")
            if isinstance(number, int) and not isinstance(number, bool):
                numbers.add(number)
            if isinstance(name, str):
                names.add(name)
        return numbers, names


@dataclasses.dataclass(frozen=True)
class Workload:
    """A Kubernetes object with a pod template (or a bare Pod)."""

    manifest: loader.Manifest
    ref: findings.ObjectRef
    annotations: Mapping[str, str]
    """The object's own metadata annotations."""
    pod_annotations: Mapping[str, str]
    """The pod template's annotations (the Pod's own, for a bare Pod)."""
    pod_labels: Mapping[str, str]
    pod_spec: Mapping[str, Any]
    pod_path: loader.FieldPath
    containers: tuple[Container, ...]
    grace: int
    """terminationGracePeriodSeconds, or Kubernetes' default of 30 when unset."""
    grace_explicit: bool

    @property
    def kind(self) -> str:
        return self.ref.kind

    @property
    def grace_path(self) -> loader.FieldPath:
        return (*self.pod_path, "terminationGracePeriodSeconds")

    def annotation(self, key: str) -> str | None:
        """A pod-template annotation, else the object's own (pods see the template's)."""
        value = self.pod_annotations.get(key)
        return value if value is not None else self.annotations.get(key)

    @property
    def injected(self) -> bool:
        """True when quiesce will inject its sidecar.

        As the operator decides: ``quiesce.dev/inject`` present and not false (an
        unparsable value counts as asked; ``quiesce plan`` reports it).
        """
        raw = self.annotation(keys.INJECT)
        return raw is not None and not is_false(raw)


def is_false(raw: str) -> bool:
    """Explicitly false in quiesce's one boolean grammar (:func:`quiesce.values.parse_bool`).

    A value outside the grammar is not false: for ``quiesce.dev/inject`` it is what the
    plan says it is, an error ``quiesce plan`` and the operator report.
    """
    try:
        return not values.parse_bool(raw)
    except ValueError:
        return False


def workload_of(manifest: loader.Manifest, errors: list[findings.InputError]) -> Workload | None:
    """The workload view of an object, or None when it has no pod template."""
    obj = manifest.obj
    kind = text(obj.get("kind"))
    metadata = mapping(obj.get("metadata"))
    keys_to_template = pod_template.template_path(kind)
    template: Mapping[str, Any] = obj
    for key in keys_to_template:
        template = mapping(template.get(key))
    template_path: loader.FieldPath = keys_to_template
    pod_spec = mapping(template.get("spec"))
    pod_path = (*template_path, "spec")
    if "containers" not in pod_spec:
        return None
    ref = findings.ObjectRef(
        kind=kind,
        name=text(metadata.get("name")) or "<unnamed>",
        namespace=text(metadata.get("namespace")) or None,
    )
    raw_containers = pod_spec.get("containers")
    if not isinstance(raw_containers, list):
        errors.append(_shape_error(manifest, (*pod_path, "containers"), ref, "must be a list"))
        raw_containers = []
    containers = tuple(
        Container(
            index=i,
            name=text(mapping(c).get("name")) or f"#{i}",
            spec=mapping(c),
            path=(*pod_path, "containers", i),
        )
        for i, c in enumerate(raw_containers)
    )
    grace, explicit = DEFAULT_GRACE, False
    raw_grace = pod_spec.get("terminationGracePeriodSeconds")
    if raw_grace is not None:
        if isinstance(raw_grace, int) and not isinstance(raw_grace, bool):
            grace, explicit = raw_grace, True
        else:
            path = (*pod_path, "terminationGracePeriodSeconds")
            errors.append(
                _shape_error(manifest, path, ref, f"must be an integer, not {raw_grace!r}")
            )
    template_meta = mapping(template.get("metadata"))
    return Workload(
        manifest=manifest,
        ref=ref,
        annotations=string_map(metadata.get("annotations")),
        pod_annotations=string_map(template_meta.get("annotations")),
        pod_labels=string_map(template_meta.get("labels")),
        pod_spec=pod_spec,
        pod_path=pod_path,
        containers=containers,
        grace=grace,
        grace_explicit=explicit,
    )


def field_name(path: loader.FieldPath) -> str:
    """``spec.template.spec.containers[0].command`` from a path tuple."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(object)"


def mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def sequence(value: object) -> Sequence[Any]:
    return value if isinstance(value, list) else []


def text(value: object) -> str:
    """Scalars as text (YAML turns `name: 123` into an int), anything else as empty."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def string_list(value: object) -> list[str]:
    """Scalar items as text; nested lists or mappings (invalid there) are dropped."""
    return [text(v) for v in sequence(value) if text(v) or v == ""]


def string_map(value: object) -> dict[str, str]:
    """Annotations or labels; non-string keys are dropped, scalar values become text."""
    out: dict[str, str] = {}
    for key, val in mapping(value).items():
        if isinstance(key, str):
            out[key] = text(val) if not isinstance(val, bool) else str(val).lower()
    return out


def _shape_error(
    manifest: loader.Manifest, path: loader.FieldPath, ref: findings.ObjectRef, problem: str
) -> findings.InputError:
    location = findings.Location(manifest.location.path, manifest.line_of(path))
    return findings.InputError(location, f"{ref}: {field_name(path)} {problem}")
