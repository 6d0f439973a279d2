"""Fixtures of the node agent's tests: the session rig with its node agent running.

Every test gets its own namespace (deleted afterwards) and a directory the
containers' signal logs go to; the agent's log is in the rig's logs/.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from quiesce.rig import rig

from .helpers import Cluster

_names = itertools.count(1)


@pytest.fixture
def cluster(agent_rig: rig.Rig, tmp_path: Path) -> Iterator[Cluster]:
    namespace = f"na-{next(_names)}"
    agent_rig.kubectl("create", "namespace", namespace)
    c = Cluster(agent_rig, namespace, tmp_path)
    yield c
    agent_rig.kubectl(
        "delete", "namespace", namespace, "--wait=false", "--grace-period=1", check=False
    )


def read_log(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
