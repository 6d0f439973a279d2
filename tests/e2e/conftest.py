"""The e2e tests' operator: the real ``quiesce operator`` on the rig with its node agent."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from quiesce.rig import process, rig, rollout


@pytest.fixture(scope="module")
def operator(agent_rig: rig.Rig) -> Iterator[process.ManagedProcess]:
    op = rollout.start_operator(agent_rig)
    yield op
    op.stop()
