"""Fixtures and helpers of the webhook and GitOps tests: operators in webhook mode on the rig.

The rig has no kube-proxy, so the API server reaches each operator by URL on the
bridge address (``https://<host_ip>:<port>/inject``); every operator gets a port,
a MutatingWebhookConfiguration and a certificate Secret of its own, so tests with
different settings never share one. Operators run as the shipped service account
with the webhook's extra RBAC (``rbac-webhook.yaml``).
"""

from __future__ import annotations

import contextlib
import itertools
import re
import socket
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from operator_rig import Cluster, OperatorProcess, wait_for

from quiesce import annotations as keys
from quiesce.rig import kubeapi, rig

HERE = Path(__file__).resolve().parent
RBAC = HERE.parents[1] / "manifests" / "rbac"
WEBHOOK_LABEL = "quiesce.dev/webhook"
ROLE_PATH = "/apis/rbac.authorization.k8s.io/v1/clusterroles"
_numbers = itertools.count(1)


def free_port(address: str) -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


class WebhookOperator(OperatorProcess):
    """An operator in webhook mode; ``start`` waits until it serves admissions."""

    def __init__(
        self, kubeconfig: Path, logdir: Path, args: list[str], name: str, *, host: str
    ) -> None:
        self.port = free_port(host)
        self.host = host
        self.name = name
        self.secret = f"quiesce-system/{name}-cert"
        self.config_name = f"quiesce-{name}"
        self.url = f"https://{host}:{self.port}"
        self.metrics_port = free_port("0.0.0.0")
        webhook_args = [
            f"--metrics-port={self.metrics_port}",
            "--webhook",
            f"--webhook-url={self.url}",
            f"--webhook-host={host}",
            f"--webhook-port={self.port}",
            f"--webhook-name={self.config_name}",
            f"--webhook-cert-secret={self.secret}",
        ]
        super().__init__(kubeconfig, logdir, [*webhook_args, *args], name)

    def start(self) -> None:
        served = self.log().count("The webhook listens on")
        super().start()
        wait_for(
            lambda: self.log().count("The webhook listens on") > served,
            timeout=30,
            what=f"the webhook of {self.name} to listen ({self.log_path})",
        )


@pytest.fixture(scope="session")
def cluster(rig_instance: rig.Rig) -> Cluster:
    return Cluster(rig_instance)


@pytest.fixture(scope="session")
def operator_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("webhook-operator-logs")


@pytest.fixture(scope="session")
def operator_kubeconfig(cluster: Cluster, operator_logs: Path) -> Path:
    """The shipped RBAC plus the webhook's, and a kubeconfig of the operator's account."""
    for path in (
        RBAC / "operator.yaml",
        RBAC / "sidecar-clusterrole.yaml",
        HERE / "rbac-webhook.yaml",
    ):
        cluster.kubectl("apply", "-f", str(path))
    return cluster.rig.service_account_kubeconfig(
        "quiesce-system", "quiesce-operator", operator_logs / "operator.kubeconfig"
    )


@pytest.fixture(scope="session")
def make_webhook_operator(
    cluster: Cluster, operator_kubeconfig: Path, operator_logs: Path
) -> Iterator[Callable[..., WebhookOperator]]:
    """Start an operator in webhook mode; each one, its configuration and Secret go at the end."""
    started: list[WebhookOperator] = []
    host = cluster.rig.network.host_ip

    def make(*args: str, name: str = "webhook", start: bool = True) -> WebhookOperator:
        op = WebhookOperator(operator_kubeconfig, operator_logs, list(args), name, host=host)
        allow_configuration(cluster, op.config_name)
        started.append(op)
        if start:
            op.start()
        return op

    yield make
    for op in started:
        op.stop()
        with contextlib.suppress(kubeapi.ApiError):
            cluster.api.request(
                "DELETE",
                "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/"
                + op.config_name,
            )
        namespace, _, secret = op.secret.partition("/")
        with contextlib.suppress(kubeapi.ApiError):
            cluster.api.request("DELETE", f"/api/v1/namespaces/{namespace}/secrets/{secret}")


def allow_configuration(cluster: Cluster, name: str) -> None:
    """Let the operator's account write the MutatingWebhookConfiguration ``name`` too.

    The shipped rule names one configuration (the chart's ``quiesce``); each test
    operator writes its own, so its name is added to that rule, as a chart installed
    under another release name would render it.
    """
    role = cluster.api.get(f"{ROLE_PATH}/quiesce-operator-webhook")
    names = role["rules"][0].setdefault("resourceNames", [])
    if name in names:
        return
    names.append(name)
    cluster.api.request("PUT", f"{ROLE_PATH}/quiesce-operator-webhook", role)


def make_namespace(
    cluster: Cluster,
    op: OperatorProcess,
    request: pytest.FixtureRequest,
    prefix: str,
    *,
    webhook: bool = True,
) -> Iterator[str]:
    """A fresh namespace, labelled for the webhook unless told not to; deleted afterwards."""
    short = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower().removeprefix("test_"))[:30]
    name = f"{prefix}-{next(_numbers)}-{short}".strip("-")
    cluster.create_namespace(name, {WEBHOOK_LABEL: "enabled"} if webhook else {})
    yield name
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        print(f"\n--- operator log ({op.log_path}) ---\n{op.log()[-8000:]}")
    cluster.delete_namespace(name)


# --- pods as the tests write and read them --------------------------------------------


def pod(
    namespace: str,
    name: str,
    *,
    annotations: dict[str, str] | None = None,
    spec: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": {keys.INJECT: "true"} if annotations is None else annotations,
        },
        "spec": spec
        or {
            "containers": [
                {
                    "name": "app",
                    "image": "registry.example/web:1",
                    "ports": [{"name": "http", "containerPort": 8080}],
                }
            ]
        },
    }


def create_pod(cluster: Cluster, body: dict[str, Any]) -> dict[str, Any]:
    namespace = body["metadata"]["namespace"]
    created: dict[str, Any] = cluster.api.create(f"/api/v1/namespaces/{namespace}/pods", body)
    return created


def has_sidecar(pod_: dict[str, Any]) -> bool:
    spec = pod_["spec"]
    return any(
        c["name"] == "quiesce-sidecar"
        for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])
    )


def prestop(pod_: dict[str, Any], container: str = "app") -> dict[str, Any] | None:
    for c in pod_["spec"]["containers"]:
        if c["name"] == container:
            hook: dict[str, Any] | None = (c.get("lifecycle") or {}).get("preStop")
            return hook
    return None


def metric(op: WebhookOperator, name: str, labels: str = "") -> float:
    """One sample of the operator's ``/metrics`` (0 when absent)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{op.metrics_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


def events(cluster: Cluster, namespace: str, reason: str) -> list[dict[str, Any]]:
    return [e for e in cluster.events(namespace) if e.get("reason") == reason]
