"""Fixtures of the operator tests: the real ``quiesce operator`` against the rig's API server.

The operator runs as a subprocess (``python -m quiesce operator``) with the
rig's kubeconfig, as a user would run it, logging JSON to a file that is
printed when a test fails. The session's operator watches namespaces
``op-*``; tests that need another configuration (dry run, container sidecars)
start their own operator on another namespace pattern, so operators never
share an object.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from operator_rig import Cluster, OperatorProcess

from quiesce.rig import rig

_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def cluster(rig_instance: rig.Rig) -> Cluster:
    return Cluster(rig_instance)


@pytest.fixture(scope="session")
def operator_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("operator-logs")


@pytest.fixture(scope="session")
def make_operator(
    rig_instance: rig.Rig, operator_logs: Path
) -> Iterator[Callable[..., OperatorProcess]]:
    """Start an operator with extra arguments; every one is stopped at the end."""
    started: list[OperatorProcess] = []

    def make(*args: str, name: str = "operator") -> OperatorProcess:
        op = OperatorProcess(rig_instance.kubeconfig, operator_logs, list(args), name)
        started.append(op)
        op.start()
        return op

    yield make
    for op in started:
        op.stop()


@pytest.fixture(scope="session")
def operator(make_operator: Callable[..., OperatorProcess]) -> OperatorProcess:
    """The session's operator: all namespaces named op-*, metrics on a port of its own."""
    return make_operator("--namespace=op-*", "--metrics-port=0", name="operator")


@pytest.fixture
def namespace(
    cluster: Cluster, operator: OperatorProcess, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A fresh namespace the session's operator serves; deleted after the test."""
    yield from _namespace(cluster, operator, request, "op")


def _namespace(
    cluster: Cluster, op: OperatorProcess, request: pytest.FixtureRequest, prefix: str
) -> Iterator[str]:
    short = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower().removeprefix("test_"))[:30]
    name = f"{prefix}-{next(_numbers)}-{short}".strip("-")
    cluster.create_namespace(name)
    yield name
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        print(f"\n--- operator log ({op.log_path}) ---\n{op.log()[-6000:]}")
    cluster.delete_namespace(name)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
