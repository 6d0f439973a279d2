"""Pure reconciliation: one workload as the API server has it in, the one write it needs out.

Level-triggered and idempotent: the decision depends only on the object (its
annotations, its pod template and quiesce's own ``state.quiesce.dev/*``
bookkeeping), the configuration and whether the cluster has native sidecars.
An object already in the desired state gives :data:`NOTHING`, so re-listing,
restarts and the controller's status updates write nothing and roll nothing.

Why two hashes: ``plan-hash`` (the plan, as ``quiesce plan`` prints it)
changes when the user's annotations change; ``template-hash`` (the pod spec
with quiesce's changes undone) changes when the user's own template changes.
A new operator configuration or release (a new sidecar image) changes
neither, so it rolls no workload (design: "upgrades never roll the fleet")
unless ``quiesce.dev/auto-upgrade`` asks for it; it rides along with the
user's next template change instead.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final, Literal

from quiesce import annotations as keys
from quiesce import config as configuration
from quiesce import plan as plans
from quiesce import template
from quiesce.operator import refusals, writes, written
from quiesce.plan import outer

Action = Literal["none", "inject", "update", "upgrade", "restore", "status", "forget"]

OK_PREFIX: Final = "ok: "
ERROR_PREFIX: Final = "error: "


@dataclasses.dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the workload."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclasses.dataclass(frozen=True)
class Decision:
    """What one reconciliation wants: at most one write, events to post, why (for logs)."""

    action: Action
    why: str
    write: writes.Write | None = None
    events: tuple[Event, ...] = ()
    plan: plans.ShutdownPlan | None = None
    native: bool | None = None
    service_account: str | None = None
    errors: tuple[str, ...] = ()

    @property
    def changes_template(self) -> bool:
        return self.action in ("inject", "update", "upgrade", "restore")


NOTHING: Final = Decision(action="none", why="up to date")


def reconcile(
    obj: Mapping[str, Any],
    *,
    config: configuration.Config,
    cluster_native: bool,
    new_token: str,
    pod_security: str | None = None,
) -> Decision:
    """The decision for one workload; ``new_token`` is used only for a first injection.

    ``pod_security``: the enforced Pod Security level of its namespace, when known.

    Total: whatever the object holds, the answer is a decision. An exception other than
    the plan's own errors (a parser that is not total yet, a bug) becomes a refusal that
    names it, with a Warning Event and a status, like invalid annotations: the operator
    never dies on one object and never leaves it without a word.
    """
    try:
        return _reconcile(
            obj,
            config=config,
            cluster_native=cluster_native,
            new_token=new_token,
            pod_security=pod_security,
        )
    except Exception as exc:  # the boundary: nothing but a decision leaves reconcile
        metadata = obj.get("metadata") if isinstance(obj, Mapping) else None
        annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
        safe = annotations if isinstance(annotations, Mapping) else {}
        error = refusals.internal_error(exc, _name(obj))
        return _refuse(obj, safe, [error], reason="InternalError")


def _name(obj: Any) -> str:
    metadata = obj.get("metadata") if isinstance(obj, Mapping) else None
    if not isinstance(metadata, Mapping):
        return "an object without metadata"
    kind = obj.get("kind") or "object"
    name = metadata.get("name") or metadata.get("generateName") or "?"
    return f"{kind} {metadata.get('namespace') or ''}/{name}"


def _reconcile(
    obj: Mapping[str, Any],
    *,
    config: configuration.Config,
    cluster_native: bool,
    new_token: str,
    pod_security: str | None,
) -> Decision:
    metadata: Mapping[str, Any] = obj.get("metadata") or {}
    annotations: Mapping[str, str] = metadata.get("annotations") or {}
    pod_spec = template.pod_spec(obj)
    if pod_spec is None:
        return Decision(action="none", why="no spec.template.spec")

    record, record_error = _record(annotations)
    if not wants_injection(annotations):
        return _undo(obj, annotations, pod_spec, record)

    errors: list[str] = []
    if record_error:
        errors.append(record_error)
    elif record is None and template.is_injected(pod_spec):
        errors.append(
            f"the pod template already has a {template.SIDECAR_NAME} container that quiesce did "
            f"not inject (no {keys.STATE_REPLACED} annotation); remove it"
        )
    original = pod_spec
    token = new_token
    if record is not None and not errors:
        try:
            original = template.restore(pod_spec, record)
        except template.InjectionError as exc:
            errors.append(f"{keys.STATE_REPLACED}: {exc}")
        token = current_token(pod_spec) or new_token

    if record is not None:  # once quiesce has injected, its record remembers
        defaulted = original.get(written.GRACE) == written.DEFAULT_GRACE and bool(
            record.get(written.GRACE_DEFAULTED)
        )
    else:
        defaulted = written.grace_defaulted(obj, original)
    if errors:
        return _refuse(obj, annotations, errors)
    planned = template.plan_and_inject(
        annotations,
        original,
        config,
        cluster_native=cluster_native,
        token=token,
        written=written.without_grace(original, defaulted),
        pod_security=pod_security,
    )
    plan, native, injection = planned.plan, planned.native, planned.injection
    if plan is None or injection is None:
        return _refuse(obj, annotations, list(planned.errors))

    plan_hash = plan.plan_hash()
    template_hash = spec_hash(original)
    status = ok_status(plan, native=native, plan_hash=plan_hash)
    service_account = str(original.get("serviceAccountName") or "default")
    if record is not None:
        same = (
            annotations.get(keys.STATE_PLAN_HASH) == plan_hash
            and annotations.get(keys.STATE_TEMPLATE_HASH) == template_hash
        )
        if same:
            if plan.auto_upgrade and not contains(pod_spec, injection.pod_spec):
                action: Action = "upgrade"
                why = "quiesce.dev/auto-upgrade: the configuration's sidecar changed"
            elif annotations.get(keys.STATE_STATUS) != status:
                return Decision(
                    action="status",
                    why="template up to date, status stale",
                    write=writes.merge_patch(obj, {keys.STATE_STATUS: status}),
                    plan=plan,
                    native=native,
                )
            else:
                return dataclasses.replace(NOTHING, plan=plan, native=native)
        else:
            action = "update"
            why = (
                "the annotations changed"
                if annotations.get(keys.STATE_PLAN_HASH) != plan_hash
                else "the workload's own template changed"
            )
    else:
        action, why = "inject", f"{keys.INJECT} is set"

    replaced = {**injection.replaced, written.GRACE_DEFAULTED: defaulted}
    state = {
        keys.STATE_PLAN_HASH: plan_hash,
        keys.STATE_TEMPLATE_HASH: template_hash,
        keys.STATE_REPLACED: json.dumps(replaced, sort_keys=True, separators=(",", ":")),
        keys.STATE_STATUS: status,
    }
    if written.foreign_hooks(pod_spec, plan.containers):
        write = writes.json_patch_injection(obj, injection.pod_spec, annotations, state)
    else:
        write = writes.apply(obj, injection, state)
    verb = {"inject": "Injected", "update": "Updated", "upgrade": "Upgraded"}[action]
    mode = "native sidecar" if native else "sidecar container"
    message = (
        f"{verb} the quiesce {mode} and preStop hook on {', '.join(plan.containers)}; "
        f"terminationGracePeriodSeconds {plan.grace_period_seconds} ({plan.grace_source}); "
        f"plan {plan_hash} ({why})"
    )
    return Decision(
        action=action,
        why=why,
        write=write,
        events=(
            Event("Normal", verb, message),
            *_manifest_warnings(obj, plan),
            *_outer_warnings(original, plan, config),
        ),
        plan=plan,
        native=native,
        service_account=service_account,
    )


# --- the pieces --------------------------------------------------------------------------


def restore(obj: Mapping[str, Any]) -> Decision:
    """The decision that gives ``obj`` its original template back, whatever it asks for.

    ``quiesce uninject`` uses it when the operator is being removed: the same
    write as when ``quiesce.dev/inject`` is removed, without touching that
    annotation (it is the user's).
    """
    metadata: Mapping[str, Any] = obj.get("metadata") or {}
    annotations: Mapping[str, str] = metadata.get("annotations") or {}
    pod_spec = template.pod_spec(obj)
    if pod_spec is None:
        return Decision(action="none", why="no spec.template.spec")
    record, record_error = _record(annotations)
    if record_error:
        return _refuse(obj, annotations, [record_error])
    return _undo(obj, annotations, pod_spec, record)


def wants_injection(annotations: Mapping[str, str]) -> bool:
    """``quiesce.dev/inject`` present and not false; an unparsable value counts as asked
    (the plan then reports it as an error rather than silently undoing an injection)."""
    raw = annotations.get(keys.INJECT)
    if raw is None:
        return False
    try:
        return plans.parse_bool(str(raw))
    except ValueError:
        return True


def is_relevant(annotations: Mapping[str, str]) -> bool:
    """Does the operator need to look at an object with these annotations at all?"""
    return keys.INJECT in annotations or any(key in annotations for key in keys.STATE_KEYS)


def spec_hash(pod_spec: Mapping[str, Any]) -> str:
    """Stable 16-hex digest of a pod spec (canonical JSON)."""
    text = json.dumps(pod_spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def ok_status(plan: plans.ShutdownPlan, *, native: bool, plan_hash: str | None = None) -> str:
    """``state.quiesce.dev/status`` of an injected workload or pod (both modes write it).

    ``plan_hash`` saves serialising the plan again (~0.3 ms) when the caller has it.
    """
    mode = "native" if native else "container"
    return (
        f"{OK_PREFIX}injected plan {plan_hash or plan.plan_hash()}, "
        f"grace {plan.grace_period_seconds}s, {mode} sidecar"
    )


def current_token(pod_spec: Mapping[str, Any]) -> str | None:
    """The ``/prestop`` token of an injected spec, so updates keep it (pods stay valid)."""
    for key in ("initContainers", "containers"):
        for container in pod_spec.get(key) or ():
            if not (
                isinstance(container, Mapping) and container.get("name") == template.SIDECAR_NAME
            ):
                continue
            for env in container.get("env") or ():
                if isinstance(env, Mapping) and env.get("name") == "QUIESCE_TOKEN":
                    value = env.get("value")
                    if isinstance(value, str) and value:
                        return value.replace("$$", "$")
    return None


def _undo(
    obj: Mapping[str, Any],
    annotations: Mapping[str, str],
    pod_spec: Mapping[str, Any],
    record: Mapping[str, Any] | None,
) -> Decision:
    present = [key for key in keys.STATE_KEYS if key in annotations]
    if record is None:
        if not present:
            return NOTHING
        return Decision(
            action="forget",
            why=f"{keys.INJECT} is gone; dropping quiesce's bookkeeping",
            write=writes.merge_patch(obj, dict.fromkeys(present)),
        )
    try:
        restored = template.restore(pod_spec, record)
    except template.InjectionError as exc:
        return _refuse(obj, annotations, [f"{keys.STATE_REPLACED}: {exc}"])
    return Decision(
        action="restore",
        why=f"{keys.INJECT} was removed or set to false",
        write=writes.restore(obj, restored if restored != pod_spec else None, present),
        events=(
            Event(
                "Normal",
                "Restored",
                "Removed the quiesce sidecar and preStop hook; the pod template is the "
                "original again",
            ),
        ),
    )


def _refuse(
    obj: Mapping[str, Any],
    annotations: Mapping[str, str],
    errors: list[str],
    *,
    reason: str = "InvalidAnnotations",
) -> Decision:
    status = refusals.cut(ERROR_PREFIX + "; ".join(errors), refusals.STATUS_MAX)
    if annotations.get(keys.STATE_STATUS) == status:
        return Decision(action="none", why="still invalid, already reported", errors=tuple(errors))
    listing = "\n".join(f"- {error}" for error in errors)
    count = f"{len(errors)} error{'s' if len(errors) != 1 else ''}"
    return Decision(
        action="status",
        why="invalid annotations" if reason == "InvalidAnnotations" else refusals.INTERNAL_ERROR,
        write=writes.merge_patch(obj, {keys.STATE_STATUS: status}),
        events=(
            Event(
                "Warning",
                reason,
                refusals.cut(
                    f"quiesce left the pod template unchanged: {count}:\n{listing}",
                    refusals.EVENT_MESSAGE_MAX,
                ),
            ),
        ),
        errors=tuple(errors),
    )


def _record(annotations: Mapping[str, str]) -> tuple[dict[str, Any] | None, str | None]:
    raw = annotations.get(keys.STATE_REPLACED)
    if raw is None:
        return None, None
    try:
        record = json.loads(raw)
    except ValueError:
        record = None
    if not isinstance(record, dict) or not isinstance(record.get("fields"), dict):
        return None, (
            f"{keys.STATE_REPLACED} is not the record quiesce wrote; it cannot restore the "
            "original template (remove the sidecar and the annotation by hand)"
        )
    return record, None


def _manifest_warnings(obj: Mapping[str, Any], plan: plans.ShutdownPlan) -> tuple[Event, ...]:
    """Said once, when quiesce writes: see :func:`written.manifest_conflicts`."""
    found = written.manifest_conflicts(obj, plan.containers, plan.grace_period_seconds)
    if not found:
        return ()
    return (
        Event(
            "Warning",
            "ManifestConflict",
            "The manifest sets what quiesce replaces: "
            + "; ".join(found)
            + ". Re-applying it with kubectl will fail or roll the workload twice: remove these "
            "from the manifest (quiesce keeps the hook's work and the budget), or set "
            f"{keys.GRACE_PERIOD}.",
        ),
    )


def _outer_warnings(
    pod_spec: Mapping[str, Any], plan: plans.ShutdownPlan, config: configuration.Config
) -> tuple[Event, ...]:
    """Said once, when quiesce writes: a cluster budget that cuts the sequence short."""
    return tuple(
        Event("Warning", "OuterBudget", warning[0].upper() + warning[1:] + ".")
        for warning in outer.warnings(plan, pod_spec, config.outer_budgets)
    )


def contains(live: Any, wanted: Any) -> bool:
    """Is everything in ``wanted`` present, equal, in ``live``? (Server defaults may add more.)"""
    if isinstance(wanted, Mapping):
        return isinstance(live, Mapping) and all(
            key in live and contains(live[key], value) for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(live, list)
            and len(live) == len(wanted)
            and all(contains(a, b) for a, b in zip(live, wanted, strict=True))
        )
    return bool(live == wanted)
