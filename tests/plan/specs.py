"""Shared pod specs for plan tests: small, realistic templates."""

from __future__ import annotations

import copy
from typing import Any

WEB: dict[str, Any] = {
    "containers": [
        {
            "name": "app",
            "image": "ghcr.io/example/web:1.4.2",
            "ports": [
                {"name": "http", "containerPort": 8080},
                {"name": "grpc", "containerPort": 9090},
            ],
            "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}},
            "livenessProbe": {"tcpSocket": {"port": 8081}},
        }
    ]
}


def web(**changes: Any) -> dict[str, Any]:
    """A copy of WEB with top-level pod-spec fields changed."""
    spec = copy.deepcopy(WEB)
    spec.update(changes)
    return spec


def web_with_prestop(hook: Any) -> dict[str, Any]:
    """WEB whose app container already has the given preStop hook."""
    spec = web()
    spec["containers"][0]["lifecycle"] = {"preStop": hook}
    return spec
