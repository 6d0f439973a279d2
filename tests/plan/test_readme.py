"""The README documents every annotation and shows the real output of `quiesce plan`."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

from quiesce import annotations, plan

ROOT = pathlib.Path(__file__).resolve().parents[2]
QUIESCE = pathlib.Path(sys.executable).parent / "quiesce"


def section(name: str) -> str:
    text = (ROOT / "README.md").read_text()
    return text.split(f"<!-- section: {name} -->")[1].split(f"<!-- /section: {name} -->")[0]


def test_every_user_annotation_has_a_row_with_a_default_and_an_example() -> None:
    rows = {
        match.group(1): match.group(0)
        for match in re.finditer(
            r"^\| `(quiesce\.dev/[a-z-]+)` \|.*$", section("annotations"), re.M
        )
    }
    assert sorted(rows) == sorted(annotations.PREFIX + key for key in plan.USER_KEYS)
    for row in rows.values():
        assert row.count("|") == 5, row  # name | meaning | default | example


def test_the_pasted_plan_output_is_what_the_command_prints() -> None:
    block = section("plan").split("$ quiesce plan -f tests/plan/fixtures/web.yaml\n")[1]
    pasted = block.split("```")[0]
    result = subprocess.run(
        [str(QUIESCE), "plan", "-f", "tests/plan/fixtures/web.yaml"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert result.stdout == pasted
