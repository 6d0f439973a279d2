"""quiesce.plan re-exports every name callers use, lazily: one submodule loads no other."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from quiesce import plan as plans


def loaded_after(statement: str) -> set[str]:
    """The quiesce.plan modules a fresh interpreter holds after ``statement``."""
    script = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return {name for name in json.loads(out.stdout) if name.startswith("quiesce.plan")}


@pytest.mark.parametrize("name", plans.__all__)
def test_every_re_exported_name_is_its_home_modules_object(name: str) -> None:
    value = getattr(plans, name)
    home = sys.modules[plans._HOMES[name]]
    assert getattr(home, name) is value


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="ShutdwonPlan"):
        _ = plans.ShutdwonPlan  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("import quiesce.plan", {"quiesce.plan"}),
        (
            "from quiesce.plan import model",
            {"quiesce.plan", "quiesce.plan.model", "quiesce.plan.errors"},
        ),
        (
            "from quiesce.plan import codec",
            {"quiesce.plan", "quiesce.plan.model", "quiesce.plan.errors", "quiesce.plan.codec"},
        ),
        (
            "from quiesce import plan; plan.ShutdownPlan",
            {"quiesce.plan", "quiesce.plan.model", "quiesce.plan.errors"},
        ),
    ],
)
def test_importing_part_of_the_plan_loads_only_that_part(
    statement: str, expected: set[str]
) -> None:
    assert loaded_after(statement) == expected


def test_build_plan_loads_the_builder_and_what_it_needs() -> None:
    assert loaded_after("from quiesce import plan; plan.build_plan") == {
        "quiesce.plan",
        "quiesce.plan.model",
        "quiesce.plan.errors",
        "quiesce.plan.fields",
        "quiesce.plan.podspec",
        "quiesce.plan.budget",
        "quiesce.plan.build",
    }
