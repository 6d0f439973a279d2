"""What the linter reports: findings against rules, and errors in its input.

Both are plain frozen values so every output format (table, JSON, SARIF) and
every test reads the same thing. A finding always names the object, the
container and the field, because a user fixing a manifest needs all three.
"""

from __future__ import annotations

import dataclasses
import enum


class Severity(enum.Enum):
    """How bad a finding is; ``--fail-on`` compares against this order."""

    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return 1 if self is Severity.ERROR else 0


@dataclasses.dataclass(frozen=True)
class Location:
    """Where in the input something is: a file (or ``<stdin>``) and a 1-based line."""

    path: str
    line: int | None = None

    def __str__(self) -> str:
        return self.path if self.line is None else f"{self.path}:{self.line}"


@dataclasses.dataclass(frozen=True)
class ObjectRef:
    """The object a finding is about: a Kubernetes object or a Dockerfile."""

    kind: str
    name: str
    namespace: str | None = None

    def __str__(self) -> str:
        if self.namespace:
            return f"{self.kind} {self.namespace}/{self.name}"
        return f"{self.kind} {self.name}"


@dataclasses.dataclass(frozen=True)
class Finding:
    """One hazard: which rule, where, what is wrong and how to fix it."""

    rule_id: str
    severity: Severity
    obj: ObjectRef
    container: str | None
    field: str
    message: str
    fix: str
    location: Location

    def text(self) -> str:
        """The message as one sentence naming object, container and field."""
        where = f"{self.obj}"
        if self.container is not None:
            where += f", container {self.container!r}"
        return f"{where}, {self.field}: {self.message}"


@dataclasses.dataclass(frozen=True)
class InputError:
    """Input the linter could not read; the rest of the input is still linted."""

    location: Location
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


@dataclasses.dataclass(frozen=True)
class Report:
    """Everything one run found, in input order."""

    findings: tuple[Finding, ...]
    errors: tuple[InputError, ...]
    objects: int
    """Kubernetes objects and Dockerfiles that were checked."""
    skipped: int = 0
    """YAML documents that are not Kubernetes objects (e.g. Helm values files)."""

    def worst(self) -> Severity | None:
        """The highest severity among the findings, or None when clean."""
        if not self.findings:
            return None
        return max((f.severity for f in self.findings), key=lambda s: s.rank)
