"""The sidecar reads exactly what the template writes (quiesce.contract, both sides).

The environment below is the injected sidecar container's own, resolved as the
kubelet resolves it (downward-API fields filled in, ``$(VAR)`` expanded), and
read by the sidecar's real settings loader: nothing here copies a name.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from quiesce import config, contract, plan, template
from quiesce.sidecar import settings

SPEC: dict[str, Any] = {"containers": [{"name": "app", "image": "web:1"}]}
POD_FIELDS = {
    "metadata.name": "web-7d4f",
    "metadata.namespace": "shop",
    "metadata.uid": "0f9c1c2e",
    "status.podIP": "10.1.2.3",
    "status.hostIP": "192.168.0.7",
}


def kubelet_env(container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the kubelet hands it to the process."""
    env: dict[str, str] = {}
    for item in container["env"]:
        if "valueFrom" in item:
            value = POD_FIELDS[item["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            value = re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), item["value"])
        env[item["name"]] = value
    return env


@pytest.mark.parametrize("native", [True, False])
def test_the_sidecar_reads_the_plan_token_and_pod_facts_the_template_writes(native: bool) -> None:
    p = plan.build_plan({"quiesce.dev/signal": "SIGQUIT"}, SPEC)
    spec = template.inject(SPEC, p, config.Config(), token="s3cret", native=native).pod_spec
    (sidecar,) = [
        c
        for c in spec.get("initContainers", []) + spec["containers"]
        if c["name"] == template.SIDECAR_NAME
    ]
    read = settings.from_env(kubelet_env(sidecar))
    assert read.plan == p
    assert read.token == "s3cret"
    assert read.mode == ("native" if native else "container")
    assert (read.pod_name, read.pod_namespace, read.pod_uid) == ("web-7d4f", "shop", "0f9c1c2e")
    assert (read.pod_ip, read.host_ip) == ("10.1.2.3", "192.168.0.7")
    assert read.consul.address == "192.168.0.7:8500"


def test_the_app_hook_calls_the_path_and_header_the_sidecar_serves() -> None:
    p = plan.build_plan({}, SPEC)
    hook = template.prestop_hook(p, "s3cret")["httpGet"]
    assert hook["path"] == contract.PRESTOP_PATH
    assert hook["httpHeaders"] == [{"name": contract.TOKEN_HEADER, "value": "s3cret"}]
