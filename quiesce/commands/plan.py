"""``quiesce plan``: print the shutdown plan of workload manifests before applying them.

For every workload carrying ``quiesce.dev/inject`` it shows the timeline of a
shutdown (which phase may take how long, at which second it ends), the
resulting grace period and the exact pod-template changes the operator would
make: the same :func:`quiesce.plan.build_plan` and :func:`quiesce.template.inject`
the operator runs, with the same configuration file (``--defaults``).
Exit status: 0 all planned, 1 some workload has errors, 2 unreadable input.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, TextIO

from quiesce import annotations as keys
from quiesce import durations
from quiesce.commands import configfile

if TYPE_CHECKING:
    from quiesce import config as configuration

#: Stands in for the random per-workload token the operator generates.
TOKEN_PLACEHOLDER: Final = "<token>"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="print the shutdown plan of workload manifests",
        description=(
            "Print the shutdown plan of every workload with quiesce.dev/inject in the given "
            "manifests: the timeline of a shutdown, each phase's budget, the grace period and "
            "the pod-template changes the operator would make. Exit status 1 when a workload "
            "has errors, 2 when a file cannot be read."
        ),
    )
    parser.add_argument(
        "-f",
        "--filename",
        action="append",
        required=True,
        metavar="FILE",
        help="manifest file, multi-document YAML; - reads stdin; may be repeated",
    )
    parser.add_argument(
        "--defaults",
        metavar="FILE",
        help="the operator's configuration file (plan defaults, sidecar, consul), as deployed",
    )
    parser.add_argument(
        "-o", "--output", choices=("table", "json", "yaml"), default="table", help="output format"
    )
    parser.add_argument(
        "--cluster-sidecars",
        choices=("native", "container"),
        default="native",
        help="what sidecar-mode auto becomes: native (Kubernetes >= 1.29; default) or container",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Plan every workload of the given files and print the result."""
    import yaml

    from quiesce import config as configuration
    from quiesce.lint import loader

    config = configuration.Config()
    if args.defaults:
        chosen = configfile.load("plan", "--defaults", args.defaults, stdin=True)
        if chosen is None:
            return 2
        config = chosen

    results: list[dict[str, Any]] = []
    for filename in args.filename:
        # quiesce lint's reader: bytes decoded strictly, nesting and aliases bounded,
        # every failure an InputError naming the file and line (never a traceback).
        if filename == "-":
            loaded = loader.load_bytes(sys.stdin.buffer.read(), loader.STDIN_NAME)
        else:
            loaded = loader.load_file(filename)
        if loaded.errors:
            for problem in loaded.errors:
                print(f"quiesce plan: {problem}", file=sys.stderr)
            return 2
        source = loader.STDIN_NAME if filename == "-" else filename
        for index, manifest in enumerate(loaded.manifests, start=1):
            result = plan_object(
                manifest.obj, config, native=args.cluster_sidecars == "native", source=source
            )
            if result is not None:
                result["source"] = f"{source}#{index}"
                results.append(result)

    public = [{k: v for k, v in r.items() if not k.startswith("_")} for r in results]
    try:
        if args.output == "json":
            json.dump(public, sys.stdout, indent=2)
            sys.stdout.write("\n")
        elif args.output == "yaml":
            yaml.safe_dump(public, sys.stdout, sort_keys=False, width=100, allow_unicode=True)
        else:
            print_table(results, sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:
        # `quiesce plan ... | head`: the reader left; exit quietly as other CLIs do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    failed = sum(1 for r in results if r["status"] == "error")
    if failed:
        print(f"quiesce plan: {failed} of {len(results)} workloads have errors", file=sys.stderr)
        return 1
    if not results:
        print("quiesce plan: no workload in the input", file=sys.stderr)
    return 0


def plan_object(
    obj: Mapping[str, Any], config: configuration.Config, *, native: bool, source: str = ""
) -> dict[str, Any] | None:
    """The plan of one manifest object as a JSON-ready dict; None when it is no workload."""
    from quiesce import plan as plans
    from quiesce import template
    from quiesce.plan import outer

    kind = str(obj.get("kind", ""))
    path = template.pod_spec_path(kind)
    pod_spec = template.pod_spec(obj)
    if pod_spec is None:
        return None
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    assert isinstance(metadata, Mapping)
    annotations = metadata.get("annotations") or {}
    result: dict[str, Any] = {
        "kind": kind,
        "namespace": metadata.get("namespace"),
        "name": metadata.get("name"),
    }
    raw_inject = annotations.get(keys.INJECT) if isinstance(annotations, Mapping) else None
    if raw_inject is None:
        return {**result, "status": "skipped", "reason": f"no {keys.INJECT} annotation"}
    if isinstance(raw_inject, str):
        try:
            if not plans.parse_bool(raw_inject):
                return {**result, "status": "skipped", "reason": f'{keys.INJECT} is "{raw_inject}"'}
        except ValueError:
            pass  # build_plan reports it with the other errors
    planned = template.plan_and_inject(
        annotations, pod_spec, config, cluster_native=native, token=TOKEN_PLACEHOLDER
    )
    plan, mode, injection = planned.plan, planned.native, planned.injection
    if plan is None or injection is None:
        errors = [_error(e) for e in planned.plan_errors]
        if planned.injection_error is not None:
            errors.append({"message": planned.injection_error})
        return {**result, "status": "error", "errors": errors}
    prefix = template.json_pointer(*path)
    return {
        **result,
        "status": "ok",
        "grace_period_seconds": plan.grace_period_seconds,
        "grace_source": plan.grace_source,
        "template_grace": plan.template_grace,
        "sidecar": "native" if mode else "container",
        "budget": plan.budget(),
        "timeline": [
            {"phase": p.name, "start": p.start, "end": p.end, "what": p.what}
            for p in plan.timeline()
        ],
        "notes": list(plan.notes),
        # Beside the plan, not in it: the cluster's budgets are no part of what the sidecar reads.
        "warnings": list(outer.warnings(plan, pod_spec, config.outer_budgets)),
        "plan": plan.to_dict(),
        "plan_hash": plan.plan_hash(),
        "changes": json_patch(pod_spec, injection.pod_spec, prefix),
        "_before": pod_spec,
        "_after": injection.pod_spec,
        "_path": ".".join(path),
    }


def print_table(results: list[dict[str, Any]], out: TextIO) -> None:
    """The human view: per workload, the timeline, notes, warnings and a diff of the pod spec."""
    import yaml

    fmt = durations.format_seconds
    for number, result in enumerate(results):
        if number:
            out.write("\n")
        name = "/".join(str(p) for p in (result["namespace"], result["name"]) if p)
        out.write(f"{result['kind']} {name} ({result['source']})\n")
        if result["status"] == "skipped":
            out.write(f"  skipped: {result['reason']}\n")
            continue
        if result["status"] == "error":
            for error in result["errors"]:
                out.write(f"  error: {error['message']}\n")
            continue
        grace = result["grace_period_seconds"]
        why = {
            "derived": "the sum of the phases",
            "annotation": f"set by {keys.GRACE_PERIOD}",
            "template": "the template's own, larger than the plan needs",
        }[result["grace_source"]]
        had = result["template_grace"]
        had_text = "none, Kubernetes' default 30s" if had is None else f"{had}s"
        out.write(f"  grace period {grace}s: {why} (template had {had_text})\n")
        plan = result["plan"]
        out.write(
            f"  sidecar: {result['sidecar']}, port {plan['port']}; "
            f"targets: {', '.join(plan['containers'])}\n"
        )
        out.write("  timeline (worst case, seconds after the kubelet calls the hook):\n")
        rows = [("at", "until", "budget", "phase", "what happens")]
        for phase in result["timeline"]:
            span = phase["end"] - phase["start"]
            rows.append(
                (
                    fmt(phase["start"]),
                    fmt(phase["end"]) if span else "",
                    fmt(span) if span else "",
                    phase["phase"],
                    phase["what"],
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        for row in rows:
            cells = [row[i].ljust(widths[i]) for i in range(4)]
            out.write(f"    {'  '.join(cells)}  {row[4]}\n".rstrip() + "\n")
        for note in result["notes"]:
            out.write(f"  note: {note}\n")
        for warning in result["warnings"]:
            out.write(f"  warning: {warning}\n")
        out.write(f"  template changes ({result['_path']}):\n")
        before = yaml.safe_dump(result["_before"], sort_keys=False, width=1000).splitlines()
        after = yaml.safe_dump(result["_after"], sort_keys=False, width=1000).splitlines()
        diff = difflib.unified_diff(before, after, "original", "injected", lineterm="", n=2)
        for line in diff:
            out.write(f"    {line}\n")


def json_patch(before: Any, after: Any, path: str = "") -> list[dict[str, Any]]:
    """RFC 6902 operations that turn ``before`` into ``after`` (adds, removes, replaces)."""
    from quiesce import template

    if before == after:
        return []
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        ops: list[dict[str, Any]] = []
        for key in before:
            if key not in after:
                ops.append({"op": "remove", "path": path + template.json_pointer(key)})
        for key, value in after.items():
            where = path + template.json_pointer(key)
            if key not in before:
                ops.append({"op": "add", "path": where, "value": value})
            else:
                ops.extend(json_patch(before[key], value, where))
        return ops
    if isinstance(before, list) and isinstance(after, list):
        ops = []
        common = min(len(before), len(after))
        for i in range(common):
            ops.extend(json_patch(before[i], after[i], f"{path}/{i}"))
        for i in range(common, len(after)):
            ops.append({"op": "add", "path": f"{path}/{i}", "value": after[i]})
        for i in reversed(range(common, len(before))):
            ops.append({"op": "remove", "path": f"{path}/{i}"})
        return ops
    return [{"op": "replace", "path": path, "value": after}]


def _error(error: Any) -> dict[str, str]:
    return {
        "annotation": error.annotation,
        "value": error.value,
        "problem": error.problem,
        "expected": error.expected,
        "message": str(error),
    }
