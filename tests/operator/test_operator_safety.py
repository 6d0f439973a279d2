"""Safety switches, HA and observability of the real operator on the rig.

Each test that needs its own operator configuration runs it on a namespace
pattern nobody else serves (``dry-*``, ``off-*``, ``ha-*``), so it never
competes with the session's operator on ``op-*``.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_rig import (
    Cluster,
    OperatorProcess,
    deployment,
    injected,
    make_namespace,
    template_spec,
    wait_for,
)

from quiesce import annotations as keys

pytestmark = pytest.mark.rig

SETTLE = 3.0


@pytest.fixture
def own_namespace(
    cluster: Cluster, operator: OperatorProcess, request: pytest.FixtureRequest
) -> Iterator[Callable[[str], str]]:
    """A fresh namespace with a prefix of the test's choice; deleted after the test."""
    made: list[Iterator[str]] = []

    def make(prefix: str) -> str:
        gen = make_namespace(cluster, operator, request, prefix)
        made.append(gen)
        return next(gen)

    yield make
    for gen in made:
        next(gen, None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_dry_run_reports_as_events_and_writes_nothing(
    cluster: Cluster,
    make_operator: Callable[..., OperatorProcess],
    own_namespace: Callable[[str], str],
) -> None:
    ns = own_namespace("dry")
    make_operator(f"--namespace={ns}", "--dry-run", name="dry-run")
    cluster.apply(yaml.safe_dump(deployment(ns)))
    before = cluster.get("Deployment", ns, "web")

    events = wait_for(
        lambda: [e for e in cluster.events(ns, "web") if "dry run" in e["message"]],
        what="the dry-run Event",
    )
    assert events[0]["reason"] == "Injected"
    assert "would inject" in events[0]["message"]
    time.sleep(SETTLE)
    after = cluster.get("Deployment", ns, "web")
    assert not [k for k in after["metadata"].get("annotations", {}) if k.startswith("state.")]
    assert template_spec(after) == template_spec(before)
    assert "quiesce" not in {m["manager"] for m in after["metadata"]["managedFields"]}
    assert len([e for e in cluster.events(ns, "web") if "dry run" in e["message"]]) == 1


def test_the_global_kill_switch_changes_nothing(
    cluster: Cluster,
    make_operator: Callable[..., OperatorProcess],
    own_namespace: Callable[[str], str],
) -> None:
    ns = own_namespace("off")
    op = make_operator(f"--namespace={ns}", "--disabled", name="disabled")
    cluster.apply(yaml.safe_dump(deployment(ns)))
    time.sleep(SETTLE)
    obj = cluster.get("Deployment", ns, "web")
    assert keys.STATE_STATUS not in obj["metadata"]["annotations"]
    assert not [e for e in cluster.events(ns, "web") if "quiesce" in e["message"]]
    assert op.alive()


def test_a_namespace_label_switches_the_operator_off_there_and_back_on(
    cluster: Cluster, namespace: str
) -> None:
    cluster.kubectl("label", "namespace", namespace, f"{keys.DISABLED_LABEL}=true")
    time.sleep(1.0)  # the index learns the label from its watch
    cluster.apply(yaml.safe_dump(deployment(namespace)))
    time.sleep(SETTLE)
    obj = cluster.get("Deployment", namespace, "web")
    assert keys.STATE_STATUS not in obj["metadata"]["annotations"]

    cluster.kubectl("label", "namespace", namespace, f"{keys.DISABLED_LABEL}-")
    injected(cluster, namespace)


def test_the_operator_logs_json_and_serves_metrics_and_liveness(
    cluster: Cluster,
    make_operator: Callable[..., OperatorProcess],
    own_namespace: Callable[[str], str],
) -> None:
    ns = own_namespace("obs")
    metrics_port, liveness_port = free_port(), free_port()
    op = make_operator(
        f"--namespace={ns}",
        f"--metrics-port={metrics_port}",
        f"--liveness=http://127.0.0.1:{liveness_port}/healthz",
        name="observed",
    )
    cluster.apply(yaml.safe_dump(deployment(ns)))
    injected(cluster, ns)

    lines = [json.loads(line) for line in op.log().splitlines() if line.startswith("{")]
    injections = [line for line in lines if line["message"].startswith(f"Injected {ns}/web")]
    assert injections
    # kopf's per-object logger: the line names the object it is about.
    assert {"kind": "Deployment", "namespace": ns, "name": "web"}.items() <= injections[0][
        "object"
    ].items()
    assert all({"message", "timestamp", "severity"} <= set(line) for line in lines)

    def scrape() -> str | None:
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics").read().decode()
        return (
            text
            if 'quiesce_operator_patches_total{action="inject",kind="Deployment"} 1.0' in text
            else None
        )

    text = wait_for(scrape, what="the inject to be counted")
    assert 'quiesce_operator_objects_managed{kind="Deployment"} 1.0' in text
    assert "quiesce_operator_reconcile_seconds_count" in text
    assert 'quiesce_operator_api_requests_total{verb="patch"}' in text
    with urllib.request.urlopen(f"http://127.0.0.1:{liveness_port}/healthz") as response:
        assert response.status == 200


def test_ha_peering_one_replica_works_the_other_takes_over(
    cluster: Cluster,
    make_operator: Callable[..., OperatorProcess],
    own_namespace: Callable[[str], str],
) -> None:
    ns = own_namespace("ha")
    cluster.apply(
        yaml.safe_dump(
            {
                "apiVersion": "kopf.dev/v1",
                "kind": "KopfPeering",
                "metadata": {"name": "quiesce", "namespace": ns},
            }
        )
    )
    high = make_operator(f"--namespace={ns}", "--peering=quiesce", "--priority=200", name="ha-high")
    low = make_operator(f"--namespace={ns}", "--peering=quiesce", "--priority=100", name="ha-low")
    cluster.apply(yaml.safe_dump(deployment(ns, "first")))
    injected(cluster, ns, "first")
    assert "Injected" in high.log() and f"Injected {ns}/first" not in low.log()

    assert "Resuming operations" not in low.log(), "the lower priority waits"
    high.stop()
    wait_for(lambda: "Resuming operations" in low.log(), what="the low one to take over")
    cluster.apply(yaml.safe_dump(deployment(ns, "second")))
    injected(cluster, ns, "second")
    assert f"Injected {ns}/second" in low.log()
    assert len([e for e in cluster.events(ns, "first") if e["reason"] == "Injected"]) == 1


def write_config(path: Path, image: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "sidecar": {"image": image},
                "consul": {
                    "address": "https://$(HOST_IP):8501",
                    "tokenSecret": {"name": "consul-acl", "key": "token"},
                    "caSecret": {"name": "consul-ca", "key": "ca.crt"},
                },
            }
        )
    )
    return path


def sidecar_of(obj: dict[str, Any]) -> dict[str, Any]:
    (sidecar,) = [
        c for c in template_spec(obj).get("initContainers", ()) if c["name"] == "quiesce-sidecar"
    ]
    return sidecar


def test_the_configuration_reaches_the_sidecar_and_upgrades_never_roll_the_fleet(
    cluster: Cluster,
    make_operator: Callable[..., OperatorProcess],
    own_namespace: Callable[[str], str],
    tmp_path: Path,
) -> None:
    ns = own_namespace("cfg")
    old = write_config(tmp_path / "old.yaml", "quiesce:1.0")
    op = make_operator(f"--namespace={ns}", f"--config={old}", name="config")
    cluster.apply(
        yaml.safe_dump_all(
            [
                deployment(ns, "pinned"),
                deployment(
                    ns, "eager", annotations={keys.INJECT: "true", keys.AUTO_UPGRADE: "true"}
                ),
            ]
        )
    )
    pinned = injected(cluster, ns, "pinned")
    injected(cluster, ns, "eager")
    sidecar = sidecar_of(pinned)
    assert sidecar["image"] == "quiesce:1.0"
    env = {e["name"]: e.get("value") for e in sidecar["env"]}
    assert env["CONSUL_HTTP_ADDR"] == "https://$(HOST_IP):8501"
    assert env["CONSUL_HTTP_TOKEN_FILE"].endswith("/token")
    assert env["CONSUL_CACERT"].endswith("/ca.crt")
    secrets = {v["name"]: v["secret"]["secretName"] for v in template_spec(pinned)["volumes"]}
    assert sorted(secrets.values()) == ["consul-acl", "consul-ca"]

    # A new release of quiesce: the operator restarts with a new sidecar image.
    time.sleep(SETTLE)  # the controller's status writes after the rollout settle first
    pinned = cluster.get("Deployment", ns, "pinned")
    op.stop()
    op.args = [
        f"--namespace={ns}",
        f"--config={write_config(tmp_path / 'new.yaml', 'quiesce:2.0')}",
    ]
    op.start()

    def upgraded() -> dict[str, Any] | None:
        obj = cluster.get("Deployment", ns, "eager")
        return obj if sidecar_of(obj)["image"] == "quiesce:2.0" else None

    wait_for(upgraded, what="the auto-upgrade opt-in to move to the new image")
    time.sleep(SETTLE)
    still = cluster.get("Deployment", ns, "pinned")
    assert sidecar_of(still)["image"] == "quiesce:1.0", "no opt-in: the fleet is not rolled"
    assert still["metadata"]["resourceVersion"] == pinned["metadata"]["resourceVersion"]
    assert [e["reason"] for e in cluster.events(ns, "eager")].count("Upgraded") == 1

    # The workload's own next change carries the new image along, in one rollout.
    manifest = deployment(ns, "pinned")
    manifest["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.example/web:2"
    cluster.apply(yaml.safe_dump(manifest))

    def moved() -> dict[str, Any] | None:
        obj = cluster.get("Deployment", ns, "pinned")
        return obj if sidecar_of(obj)["image"] == "quiesce:2.0" else None

    obj = wait_for(moved, what="the user's change to bring the new image")
    assert template_spec(obj)["containers"][0]["image"] == "registry.example/web:2"
