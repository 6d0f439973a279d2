"""The chart's opt-in NetworkPolicy for the sidecar's port, rendered by the real helm."""

from __future__ import annotations

from typing import Any

import pytest

from install import chartkit

ON = (
    "--set", "sidecarNetworkPolicy.enabled=true",
    "--set", "sidecarNetworkPolicy.namespaces={shop,pay}",
    "--set", "sidecarNetworkPolicy.nodeCIDRs={10.0.0.0/16,fd00::/64}",
)  # fmt: skip


def policies(*args: str) -> list[dict[str, Any]]:
    return [d for d in chartkit.documents(chartkit.template(*args)) if d["kind"] == "NetworkPolicy"]


def test_off_by_default() -> None:
    assert policies() == []


def test_one_policy_per_workload_namespace_admits_the_nodes_and_monitoring_only() -> None:
    docs = policies(*ON, "--set", "sidecarNetworkPolicy.otherPorts=unmanaged")
    assert [(d["metadata"]["namespace"], d["metadata"]["name"]) for d in docs] == [
        ("shop", "quiesce-sidecar"),
        ("pay", "quiesce-sidecar"),
    ]
    spec = docs[0]["spec"]
    assert spec["podSelector"] == {} and spec["policyTypes"] == ["Ingress"]
    (rule,) = spec["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 7979}]
    assert rule["from"] == [
        {"ipBlock": {"cidr": "10.0.0.0/16"}},
        {"ipBlock": {"cidr": "fd00::/64"}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
    ]


@pytest.mark.parametrize("port", [1, 7979, 65535])
def test_other_ports_open_admit_everyone_on_every_port_but_the_sidecars(port: int) -> None:
    (doc, _) = policies(
        *ON,
        "--set", "sidecarNetworkPolicy.otherPorts=open",
        "--set", f"sidecarNetworkPolicy.port={port}",
        "--set", "sidecarNetworkPolicy.podSelector.app=web",
    )  # fmt: skip
    spec = doc["spec"]
    assert spec["podSelector"] == {"matchLabels": {"app": "web"}}
    sidecar, others = spec["ingress"]
    assert sidecar["ports"] == [{"protocol": "TCP", "port": port}]
    assert "from" not in others  # everyone
    tcp = [(p["port"], p["endPort"]) for p in others["ports"] if p["protocol"] == "TCP"]
    opened = {n for start, end in tcp for n in (start, port, end) if start <= n <= end}
    assert port not in opened and {1, 65535} - {port} <= opened
    assert sum(end - start + 1 for start, end in tcp) == 65534
    assert {p["protocol"] for p in others["ports"]} == {"TCP", "UDP", "SCTP"}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (ON, "otherPorts must be chosen"),
        ((*ON[:2], "--set", "sidecarNetworkPolicy.otherPorts=open"), "needs sidecarNetworkPolicy"),
        ((*ON, "--set", "sidecarNetworkPolicy.otherPorts=all"), "otherPorts"),
    ],
)
def test_a_policy_that_would_cut_or_widen_traffic_by_surprise_is_refused(
    values: tuple[str, ...], message: str
) -> None:
    result = chartkit.helm(
        "template", "quiesce", str(chartkit.CHART), "--kube-version", chartkit.KUBE_VERSION,
        *values, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert message in result.stderr
