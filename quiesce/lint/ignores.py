"""``quiesce.dev/lint-ignore``: the rules a user switched off on one object.

The annotation may sit on the object or on its pod template; an ID that is no rule
becomes a QL000 finding rather than being ignored in silence.
"""

from __future__ import annotations

from quiesce import annotations as keys
from quiesce import template as pod_template
from quiesce.lint import findings, loader, rules, workloads
from quiesce.lint.workloads import mapping, string_map, text


def ignored(manifest: loader.Manifest) -> tuple[frozenset[str], list[findings.Finding]]:
    """Rule IDs suppressed on this object; unknown IDs become QL000 findings."""
    obj = manifest.obj
    kind = text(obj.get("kind"))
    metadata = mapping(obj.get("metadata"))
    sources: list[tuple[loader.FieldPath, object]] = [
        (("metadata", "annotations"), metadata.get("annotations"))
    ]
    template_meta = (*pod_template.template_path(kind), "metadata")
    if kind != "Pod":
        node: object = obj
        for part in template_meta:
            node = mapping(node).get(part)
        sources.append(((*template_meta, "annotations"), mapping(node).get("annotations")))
    suppressed: set[str] = set()
    unknown: list[findings.Finding] = []
    ref = findings.ObjectRef(
        kind or "<no kind>",
        text(metadata.get("name")) or "<unnamed>",
        text(metadata.get("namespace")) or None,
    )
    for base, raw in sources:
        value = string_map(raw).get(keys.LINT_IGNORE)
        if value is None:
            continue
        path = (*base, keys.LINT_IGNORE)
        for item in (part.strip().upper() for part in value.split(",")):
            if not item:
                continue
            if item in rules.RULES and item != "QL000":
                suppressed.add(item)
                continue
            unknown.append(
                findings.Finding(
                    rule_id="QL000",
                    severity=rules.RULES["QL000"].severity,
                    obj=ref,
                    container=None,
                    field=workloads.field_name(path),
                    message=f"{item!r} is not a quiesce lint rule",
                    fix=rules.RULES["QL000"].fix,
                    location=findings.Location(manifest.location.path, manifest.line_of(path)),
                )
            )
    return frozenset(suppressed), unknown
