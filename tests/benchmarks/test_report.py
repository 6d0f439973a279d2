"""Each benchmark rewrites only its own section of the shared docs/benchmarks.md."""

from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))
import report  # benchmarks/report.py, found through the path above


def test_other_sections_survive_and_the_own_section_is_replaced(tmp_path: pathlib.Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## sidecar\n\nfast\n\n## lint\n\nold\n\n## plan\n\nquick\n")
    report.write_section("lint", "## lint\n\nnew\n", doc=doc)
    assert doc.read_text() == (
        "# Benchmarks\n\n## sidecar\n\nfast\n\n## lint\n\nnew\n\n## plan\n\nquick\n"
    )


def test_the_section_is_appended_when_absent(tmp_path: pathlib.Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## sidecar\n\nfast\n")
    report.write_section("lint", "## lint\n\nnew\n", doc=doc)
    assert doc.read_text() == "# Benchmarks\n\n## sidecar\n\nfast\n\n## lint\n\nnew\n"


def test_a_heading_that_prefixes_another_is_not_confused(tmp_path: pathlib.Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## rollout extra\n\nkeep\n\n## rollout\n\nold\n")
    report.write_section("rollout", "## rollout\n\nnew\n", doc=doc)
    assert doc.read_text() == "# Benchmarks\n\n## rollout extra\n\nkeep\n\n## rollout\n\nnew\n"
