"""Render a lint report: a table for people, JSON for scripts, SARIF for CI.

SARIF 2.1.0 is what GitHub code scanning, GitLab and Azure DevOps read, so a
finding shows up on the line of the manifest that causes it. Input errors go
into the SARIF run's tool notifications and mark it unsuccessful, so CI
cannot mistake unreadable input for a clean result.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterable
from typing import Any, Final

from quiesce import __version__
from quiesce.lint import findings, loader, rules

FORMATS: Final = ("table", "json", "sarif")
SARIF_SCHEMA: Final = "https://json.schemastore.org/sarif-2.1.0.json"


def render(report: findings.Report, fmt: str) -> str:
    if fmt == "json":
        return to_json(report)
    if fmt == "sarif":
        return json.dumps(to_sarif(report), indent=2) + "\n"
    return to_table(report)


def to_table(report: findings.Report) -> str:
    """Findings grouped by object, each with its rule, field, message and fix."""
    lines: list[str] = []
    groups: dict[tuple[str, findings.ObjectRef], list[findings.Finding]] = {}
    for finding in report.findings:
        groups.setdefault((finding.location.path, finding.obj), []).append(finding)
    for (_, obj), group in groups.items():
        group.sort(key=lambda f: (f.location.line or 0, f.rule_id))
        lines.append(f"{obj}  ({group[0].location})")
        for f in group:
            where = f"container {f.container!r}, " if f.container is not None else ""
            line = f"  line {f.location.line}" if f.location.line is not None else ""
            lines.append(f"  {f.severity.value.upper():<8}{f.rule_id}{line}")
            lines.append(f"      {where}{f.field}")
            lines.append(f"      {f.message}")
            lines.append(f"      fix: {f.fix}")
        lines.append("")
    for error in report.errors:
        lines.append(f"input error: {error}")
    if report.errors:
        lines.append("")
    lines.append(_summary(report))
    return "\n".join(lines) + "\n"


def _summary(report: findings.Report) -> str:
    errors = sum(1 for f in report.findings if f.severity is findings.Severity.ERROR)
    warnings = len(report.findings) - errors
    text = (
        f"{_count(report.objects, 'object')} checked: "
        f"{_count(errors, 'error')}, {_count(warnings, 'warning')}"
    )
    if report.errors:
        text += f", {_count(len(report.errors), 'input error')}"
    if report.skipped:
        text += f" ({_count(report.skipped, 'non-Kubernetes document')} skipped)"
    return text


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def to_json(report: findings.Report) -> str:
    document = {
        "findings": [
            {
                "rule": f.rule_id,
                "severity": f.severity.value,
                "kind": f.obj.kind,
                "namespace": f.obj.namespace,
                "name": f.obj.name,
                "container": f.container,
                "field": f.field,
                "message": f.message,
                "fix": f.fix,
                "file": f.location.path,
                "line": f.location.line,
            }
            for f in report.findings
        ],
        "errors": [
            {"file": e.location.path, "line": e.location.line, "message": e.message}
            for e in report.errors
        ],
        "summary": {
            "objects": report.objects,
            "skipped": report.skipped,
            "errors": sum(1 for f in report.findings if f.severity is findings.Severity.ERROR),
            "warnings": sum(1 for f in report.findings if f.severity is findings.Severity.WARNING),
            "input_errors": len(report.errors),
        },
    }
    return json.dumps(document, indent=2) + "\n"


def to_sarif(report: findings.Report) -> dict[str, Any]:
    """A SARIF 2.1.0 log with one run; rules carry their help text and default level."""
    rule_ids = list(rules.RULES)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "quiesce lint",
                        "version": __version__,
                        "rules": [_sarif_rule(rules.RULES[r]) for r in rule_ids],
                    }
                },
                "invocations": [
                    {
                        "executionSuccessful": not report.errors,
                        "toolExecutionNotifications": [
                            {
                                "level": "error",
                                "message": {"text": e.message},
                                "locations": [_sarif_location(e.location)],
                            }
                            for e in report.errors
                        ],
                    }
                ],
                "results": [
                    {
                        "ruleId": f.rule_id,
                        "ruleIndex": rule_ids.index(f.rule_id),
                        "level": f.severity.value,
                        "message": {"text": f"{f.text()} Fix: {f.fix}."},
                        "locations": [_sarif_location(f.location, f)],
                    }
                    for f in report.findings
                ],
            }
        ],
    }


def _sarif_rule(rule: rules.Rule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": f"{rule.summary}: {rule.why}."},
        "help": {"text": f"Fix: {rule.fix}."},
        "defaultConfiguration": {"level": rule.severity.value},
    }


def _sarif_location(
    location: findings.Location, finding: findings.Finding | None = None
) -> dict[str, Any]:
    physical: dict[str, Any] = {"artifactLocation": {"uri": _uri(location.path)}}
    if location.line is not None:
        physical["region"] = {"startLine": location.line}
    out: dict[str, Any] = {"physicalLocation": physical}
    if finding is not None:
        out["logicalLocations"] = [{"fullyQualifiedName": str(finding.obj), "kind": "object"}]
    return out


def _uri(path: str) -> str:
    """Relative paths stay relative (SARIF viewers resolve them against the repo root)."""
    if path == loader.STDIN_NAME:
        return "stdin"
    return urllib.parse.quote(path.replace("\\", "/").removeprefix("./"))


def rule_table(selected: Iterable[rules.Rule] | None = None) -> str:
    """The ``--list-rules`` text: ID, severity, summary."""
    items = list(selected) if selected is not None else list(rules.RULES.values())
    return "\n".join(f"{r.id}  {r.severity.value:<7}  {r.name}: {r.summary}" for r in items) + "\n"
