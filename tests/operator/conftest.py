"""Fixtures of the operator tests: the real ``quiesce operator`` against the rig's API server.

The operator runs as a subprocess (``python -m quiesce operator``) with the
rig's kubeconfig, as a user would run it, logging JSON to a file that is
printed when a test fails. The session's operator watches namespaces
``op-*``; tests that need another configuration (dry run, container sidecars)
start their own operator on another namespace pattern, so operators never
share an object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from operator_rig import Cluster, OperatorProcess, make_namespace

from quiesce.rig import rig

RBAC = Path(__file__).resolve().parents[2] / "manifests" / "rbac"


@pytest.fixture(scope="session")
def cluster(rig_instance: rig.Rig) -> Cluster:
    return Cluster(rig_instance)


@pytest.fixture(scope="session")
def operator_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("operator-logs")


@pytest.fixture(scope="session")
def operator_kubeconfig(cluster: Cluster, operator_logs: Path) -> Path:
    """The shipped RBAC (manifests/rbac/) applied, and a kubeconfig of its service account.

    Every operator of the tests runs as that account, so each test also checks that the
    least-privilege rules are enough.
    """
    for name in ("operator.yaml", "sidecar-clusterrole.yaml", "peering.yaml"):
        cluster.kubectl("apply", "-f", str(RBAC / name))
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=30s",
        "crd/clusterkopfpeerings.kopf.dev", "crd/kopfpeerings.kopf.dev",
    )  # fmt: skip
    return cluster.rig.service_account_kubeconfig(
        "quiesce-system", "quiesce-operator", operator_logs / "operator.kubeconfig"
    )


@pytest.fixture(scope="session")
def make_operator(
    operator_kubeconfig: Path, operator_logs: Path
) -> Iterator[Callable[..., OperatorProcess]]:
    """Start an operator with extra arguments; every one is stopped at the end."""
    started: list[OperatorProcess] = []

    def make(*args: str, name: str = "operator") -> OperatorProcess:
        op = OperatorProcess(operator_kubeconfig, operator_logs, list(args), name)
        started.append(op)
        op.start()
        return op

    yield make
    for op in started:
        op.stop()


@pytest.fixture(scope="session")
def operator(make_operator: Callable[..., OperatorProcess]) -> OperatorProcess:
    """The session's operator: all namespaces named op-*, metrics on a port of its own."""
    # --verbose: kopf's debug lines, so a failing test's log shows where the operator was.
    return make_operator("--namespace=op-*", "--metrics-port=0", "--verbose", name="operator")


@pytest.fixture
def namespace(
    cluster: Cluster, operator: OperatorProcess, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A fresh namespace the session's operator serves; deleted after the test."""
    yield from make_namespace(cluster, operator, request, "op")
