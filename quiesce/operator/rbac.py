"""The RoleBinding that lets an injected sidecar read its EndpointSlices and its own pod,
and post the Event of each shutdown sequence on it.

The sidecar runs as the workload's service account; the operator binds that
account, in each namespace it injects into, to the shipped ClusterRole
``quiesce-sidecar`` (``manifests/rbac/sidecar-clusterrole.yaml``). Bindings are
never removed on un-injection: other workloads of the namespace may share the
service account, and a binding to a role that reads and only creates Events is
harmless. Each binding is owned by that ClusterRole (an ownerReference by uid), so
uninstalling quiesce, which deletes the ClusterRole, lets Kubernetes' garbage
collector remove every binding with it: no list-and-delete rights on RoleBindings are needed.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

CLUSTER_ROLE: Final = "quiesce-sidecar"
MANAGED_BY: Final = "quiesce"


def binding_name(service_account: str) -> str:
    """``quiesce-sidecar-<sa>``, shortened with a hash when it would exceed 253 characters."""
    name = f"{CLUSTER_ROLE}-{service_account}"
    if len(name) <= 253:
        return name
    digest = hashlib.sha256(service_account.encode()).hexdigest()[:10]
    return f"{name[:242]}-{digest}"


def role_binding(namespace: str, service_account: str, *, role_uid: str) -> dict[str, Any]:
    """The apply configuration of the binding (server-side apply, field manager quiesce).

    ``role_uid`` is the ClusterRole's current uid: an owner whose uid does not match
    counts as gone, and the garbage collector would delete the binding at once.
    """
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {
            "name": binding_name(service_account),
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": MANAGED_BY},
            "ownerReferences": [
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRole",
                    "name": CLUSTER_ROLE,
                    "uid": role_uid,
                }
            ],
        },
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": CLUSTER_ROLE,
        },
        "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
    }
