"""The sidecar loads the plan's model and codec only: never its builder, kopf or kubernetes.

The sidecar runs in every pod, so what it imports is memory and start-up time
paid fleet-wide; and a sidecar that could build a plan could drift from the
operator's. Each check runs in a fresh interpreter, so no other test's imports
count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SIDECAR_ENTRY_MODULES = (
    "quiesce.sidecar.server",
    "quiesce.sidecar.sequence",
    "quiesce.sidecar.settings",
    "quiesce.commands.sidecar",
)
NEVER_LOADED = (
    "quiesce.plan.build",
    "quiesce.plan.budget",
    "quiesce.plan.podspec",
    "quiesce.plan.fields",
    "quiesce.plan.defaults",
    "kopf",
    "kubernetes",
)


def loaded_after_importing(module: str) -> set[str]:
    """The names in sys.modules of a fresh interpreter that imported ``module``."""
    script = f"import json, sys\nimport {module}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(json.loads(out.stdout))


@pytest.mark.parametrize("module", SIDECAR_ENTRY_MODULES)
def test_sidecar_entry_module_loads_no_plan_builder_and_no_kubernetes_client(module: str) -> None:
    loaded = loaded_after_importing(module)
    assert sorted(loaded & set(NEVER_LOADED)) == []
    assert not any(name.startswith(("kopf.", "kubernetes.")) for name in loaded)


def test_sidecar_settings_load_the_plans_model_and_codec() -> None:
    loaded = loaded_after_importing("quiesce.sidecar.settings")
    assert {"quiesce.plan.model", "quiesce.plan.codec"} <= loaded
