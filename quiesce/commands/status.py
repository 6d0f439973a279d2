"""``quiesce status``: recent terminations per workload, and the operator's view of it.

The terminations come from the Events the sidecars post on their pods at the end
of each shutdown sequence (:mod:`quiesce.sidecar.podevent`; their names in
:mod:`quiesce.contract`), which outlive the pods for the API server's event TTL
(an hour by default). A workload's Events are found the way the workload finds
its pods: by its own label selector (the Event carries the pod's labels); with no
workload named, by the Event's ``related`` controller (a ReplicaSet is resolved
to its Deployment through the ReplicaSet's ``ownerReferences``). The operator's
view is the workload's ``state.quiesce.dev/*`` annotations (:mod:`quiesce.annotations`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote

from quiesce import annotations as keys
from quiesce import contract

#: ``KIND/NAME`` spellings, as kubectl takes them.
KINDS: Final = {
    "deployment": "deployments",
    "deployments": "deployments",
    "deploy": "deployments",
    "statefulset": "statefulsets",
    "statefulsets": "statefulsets",
    "sts": "statefulsets",
    "daemonset": "daemonsets",
    "daemonsets": "daemonsets",
    "ds": "daemonsets",
}
SINGULAR: Final = {
    "deployments": "deployment",
    "statefulsets": "statefulset",
    "daemonsets": "daemonset",
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "status",
        help="recent terminations per workload (from the sidecars' Events) and the operator's view",
        description="Show the recent terminations of quiesce-injected pods, per workload, from "
        "the Events their sidecars posted (pod, when, result, convergence reason and time, "
        "connections after deregistration), and the operator's view of each workload "
        "(injected, plan hash, errors) from its state.quiesce.dev/* annotations. Events "
        "live as long as the API server keeps them (an hour by default).",
    )
    parser.add_argument("target", nargs="?", metavar="KIND/NAME", help="e.g. deployment/web")
    parser.add_argument("-n", "--namespace", default="default", help="default: default")
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")
    parser.add_argument("--kubeconfig", metavar="FILE", help="default: in-cluster, $KUBECONFIG")
    parser.set_defaults(func=run)


# --- reading ------------------------------------------------------------------------------


def parse_target(target: str) -> tuple[str, str]:
    """``deployment/web`` -> (``deployments``, ``web``); ValueError names what is accepted."""
    kind, _, name = target.partition("/")
    plural = KINDS.get(kind.lower())
    if plural is None or not name:
        raise ValueError(
            f"{target!r}: expected KIND/NAME with KIND one of deployment, statefulset, daemonset"
        )
    return plural, name


def selector_string(selector: Mapping[str, Any]) -> str:
    """A ``labelSelector`` query from a workload's ``spec.selector``."""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], ",".join(expr.get("values") or [])
        if op == "In":
            parts.append(f"{key} in ({values})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def operator_view(workload: Mapping[str, Any]) -> dict[str, Any]:
    """What the operator recorded on the workload (``state.quiesce.dev/*``)."""
    from quiesce.operator import reconcile  # its status grammar; not paid by ``--help``

    ok, error = reconcile.OK_PREFIX, reconcile.ERROR_PREFIX
    meta = workload.get("metadata") or {}
    notes = meta.get("annotations") or {}
    status = str(notes.get(keys.STATE_STATUS) or "")
    errors = [status.removeprefix(error)] if status.startswith(error) else []
    return {
        "kind": workload.get("kind"),
        "name": meta.get("name"),
        "inject": notes.get(keys.INJECT),
        "injected": keys.STATE_PLAN_HASH in notes and not errors,
        "planHash": notes.get(keys.STATE_PLAN_HASH),
        "status": status.removeprefix(ok),
        "errors": errors,
    }


def termination(event: Mapping[str, Any]) -> dict[str, Any]:
    """One termination from one of the sidecar's Events."""
    meta = event.get("metadata") or {}
    try:
        facts = json.loads((meta.get("annotations") or {}).get(contract.EVENT_FACTS_ANNOTATION, ""))
    except ValueError:
        facts = {}
    facts = facts if isinstance(facts, dict) else {}
    convergence = facts.get("convergence") or {}
    return {
        "pod": (event.get("involvedObject") or {}).get("name"),
        "when": event.get("lastTimestamp")
        or event.get("eventTime")
        or meta.get("creationTimestamp"),
        "type": event.get("type"),
        "reason": event.get("reason"),
        "kind": facts.get("kind"),
        "convergence": convergence.get("reason"),
        "convergenceSeconds": convergence.get("seconds"),
        "connectionsAfterDeregistration": facts.get("connections_after_deregistration"),
        "deregisterSeconds": (facts.get("deregister") or {}).get("seconds"),
        "removed": (facts.get("deregister") or {}).get("removed") or [],
        "errors": facts.get("errors") or [],
        "message": event.get("message"),
        "related": event.get("related"),
    }


def sidecar_events(client: Any, namespace: str, *, selector: str = "") -> list[dict[str, Any]]:
    """The sidecars' Events in ``namespace`` (of pods matching ``selector``), oldest first."""
    query = [("fieldSelector", f"source={contract.EVENT_SOURCE}")]
    if selector:
        query.append(("labelSelector", selector))
    listed = client.request("GET", f"/api/v1/namespaces/{namespace}/events", query=query)
    items = [e for e in listed.get("items") or [] if e.get("reason") in contract.EVENT_REASONS]
    return sorted(items, key=lambda e: str(termination(e)["when"] or ""))


def workload_of(
    client: Any, namespace: str, related: Mapping[str, Any] | None, cache: dict[str, str]
) -> str:
    """``kind/name`` of the workload an Event's ``related`` controller belongs to."""
    if not related:
        return "-"
    kind, name = str(related.get("kind") or ""), str(related.get("name") or "")
    if kind == "ReplicaSet":
        key = f"replicaset/{name}"
        if key not in cache:
            cache[key] = key
            try:
                rs = client.request(
                    "GET", f"/apis/apps/v1/namespaces/{namespace}/replicasets/{quote(name)}"
                )
            except Exception:  # gone, or no right to read it: the ReplicaSet it is
                rs = {}
            for ref in (rs.get("metadata") or {}).get("ownerReferences") or []:
                if ref.get("controller"):
                    cache[key] = f"{str(ref.get('kind')).lower()}/{ref.get('name')}"
        return cache[key]
    return f"{kind.lower()}/{name}"


def collect(client: Any, namespace: str, target: str | None) -> dict[str, Any]:
    """The report: each workload's operator view and its terminations."""
    workloads: dict[str, dict[str, Any]] = {}
    if target is not None:
        plural, name = parse_target(target)
        obj = client.request("GET", f"/apis/apps/v1/namespaces/{namespace}/{plural}/{quote(name)}")
        ref = f"{SINGULAR[plural]}/{name}"
        workloads[ref] = {**operator_view(obj), "terminations": []}
        selector = selector_string((obj.get("spec") or {}).get("selector") or {})
        for event in sidecar_events(client, namespace, selector=selector):
            workloads[ref]["terminations"].append(termination(event))
        return {"namespace": namespace, "workloads": list(workloads.values())}
    for plural in ("deployments", "statefulsets", "daemonsets"):
        listed = client.request("GET", f"/apis/apps/v1/namespaces/{namespace}/{plural}")
        for obj in listed.get("items") or []:
            notes = (obj.get("metadata") or {}).get("annotations") or {}
            if any(k.startswith((keys.PREFIX, keys.STATE_PREFIX)) for k in notes):
                obj.setdefault("kind", SINGULAR[plural].capitalize())
                view = operator_view(obj)
                workloads[f"{SINGULAR[plural]}/{view['name']}"] = {**view, "terminations": []}
    cache: dict[str, str] = {}
    for event in sidecar_events(client, namespace):
        ref = workload_of(client, namespace, event.get("related"), cache)
        if ref not in workloads:
            kind, _, name = ref.partition("/")
            workloads[ref] = {"kind": kind, "name": name, "injected": None, "planHash": None,
                              "status": "", "errors": [], "terminations": []}  # fmt: skip
        workloads[ref]["terminations"].append(termination(event))
    return {"namespace": namespace, "workloads": list(workloads.values())}


# --- printing -------------------------------------------------------------------------------


def _table(rows: Sequence[Sequence[str]]) -> str:
    """Columns separated by three spaces, as kubectl prints them."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _ref(w: Mapping[str, Any]) -> str:
    return f"{str(w.get('kind') or '').lower()}/{w.get('name')}"


def render_table(report: Mapping[str, Any]) -> str:
    workloads = report["workloads"]
    if not workloads:
        return f"No quiesce workloads or terminations in namespace {report['namespace']}."
    rows = [["WORKLOAD", "INJECTED", "PLAN", "STATUS"]]
    for w in workloads:
        injected = {True: "yes", False: "no", None: "-"}[w.get("injected")]
        status = "; ".join(w["errors"]) if w.get("errors") else (w.get("status") or "-")
        rows.append([_ref(w), injected, w.get("planHash") or "-", status])
    out = [_table(rows), ""]
    terms = [["WORKLOAD", "POD", "WHEN", "RESULT", "CONVERGENCE", "TIME", "CONNS-AFTER-DEREG"]]
    for w in workloads:
        for t in w["terminations"]:
            seconds = t.get("convergenceSeconds")
            conns = t.get("connectionsAfterDeregistration")
            terms.append([
                _ref(w), str(t.get("pod")), str(t.get("when") or "-"), str(t.get("reason")),
                str(t.get("convergence") or "-"), "-" if seconds is None else f"{seconds:.2f}s",
                "-" if conns is None else str(conns),
            ])  # fmt: skip
    if len(terms) == 1:
        out.append("No terminations recorded (Events live an hour by default).")
    else:
        out.append(_table(terms))
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    from quiesce.operator import apply, metrics

    if args.target is not None:
        try:
            parse_target(args.target)
        except ValueError as exc:
            print(f"quiesce status: {exc}", file=sys.stderr)
            return 2
    client = apply.Client.load(args.kubeconfig, metrics.Metrics())
    try:
        report = collect(client, args.namespace, args.target)
    except apply.ApiError as exc:
        print(f"quiesce status: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    if args.output == "json":
        print(json.dumps(report, indent=2, default=str))
    else:
        print(render_table(report))
    return 0
