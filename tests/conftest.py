"""Fixtures shared by every test: the real-component rig, started once.

The rig (etcd, kube-apiserver, controller-manager, scheduler, a Consul agent,
a bridge network) is started lazily by the first test that asks for it and
stopped at the end of the session. Its work directory, with every
component's log, is kept under ``rig-logs/`` when a test failed.
"""

from __future__ import annotations

import itertools
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from quiesce.rig import consul, network, rig

REPO = Path(__file__).resolve().parent.parent
RIG_LOGS = REPO / "rig-logs"
_failed = False


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Note any failure (rig logs are kept then) and each phase's report on the item
    (``item.rep_call``: fixtures keep an operator's log when its test failed)."""
    global _failed
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
    if report.failed:
        _failed = True


@pytest.fixture(scope="session")
def rig_instance() -> Iterator[rig.Rig]:
    """The whole rig, shared by the session. Missing binaries fail with how to build them."""
    # The pid keeps two sessions started in the same second apart.
    workdir = RIG_LOGS / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    r = rig.Rig.start(workdir)
    yield r
    r.stop()
    if not _failed:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"\nrig logs kept in {workdir}/logs")


@pytest.fixture(scope="session")
def agent_rig(rig_instance: rig.Rig) -> rig.Rig:
    """The session rig with its node agent running (restart back-off 1 s for speed): one
    agent for the whole session, whichever test starts it first."""
    rig_instance.start_node_agent(backoff=1.0)
    return rig_instance


@pytest.fixture(scope="session")
def rig_network(rig_instance: rig.Rig) -> network.RigNetwork:
    return rig_instance.network


@pytest.fixture(scope="session")
def consul_agent(rig_instance: rig.Rig) -> consul.ConsulAgent:
    assert rig_instance.consul is not None
    return rig_instance.consul


_sandbox_names = itertools.count(1)


@pytest.fixture
def pod_sandbox(rig_network: network.RigNetwork) -> Iterator[Callable[[str], network.PodSandbox]]:
    """A factory of pod sandboxes (netns + IP); every one is removed after the test."""
    made: list[network.PodSandbox] = []

    def make(name: str = "pod") -> network.PodSandbox:
        sandbox = rig_network.sandbox(f"{name}{next(_sandbox_names)}")
        made.append(sandbox)
        return sandbox

    yield make
    for sandbox in made:
        if sandbox.name in rig_network.namespaces:
            sandbox.remove()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run tests/install first: they need a cluster with no quiesce installed yet.

    Later tests (operator, webhook, e2e) leave quiesce's namespace and cluster-wide
    RBAC on the shared rig; the install tests compare the cluster before and after
    an install, so they go before anything else touches it.
    """
    items.sort(key=lambda item: 0 if "/tests/install/" in str(item.path) else 1)
