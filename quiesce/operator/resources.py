"""The workload kinds the operator serves, with where each keeps its pod template."""

from __future__ import annotations

import dataclasses
from typing import Final

from quiesce import template


@dataclasses.dataclass(frozen=True)
class Kind:
    """One served workload kind: its API coordinates (as kopf and the REST paths need them)."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str, name: str | None = None) -> str:
        """The REST path of the collection in ``namespace``, or of one object in it."""
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        base = f"{root}/namespaces/{namespace}/{self.plural}"
        return base if name is None else f"{base}/{name}"


DEPLOYMENTS: Final = Kind("apps", "v1", "deployments", "Deployment")
STATEFULSETS: Final = Kind("apps", "v1", "statefulsets", "StatefulSet")
DAEMONSETS: Final = Kind("apps", "v1", "daemonsets", "DaemonSet")

#: Every kind with ``spec.template.spec`` the operator watches.
WORKLOADS: Final = (DEPLOYMENTS, STATEFULSETS, DAEMONSETS)

#: Where a workload keeps its pod spec, as a JSON pointer.
POD_SPEC_POINTER: Final = template.json_pointer(*template.pod_spec_path("Deployment"))
