"""benchmarks/lint.py rewrites only its own section of the shared docs/benchmarks.md."""

from __future__ import annotations

import importlib.util
import pathlib

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "lint.py"


def load_benchmark() -> object:
    spec = importlib.util.spec_from_file_location("lint_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_other_sections_survive_and_the_lint_section_is_replaced(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench = load_benchmark()
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## sidecar\n\nfast\n\n## lint\n\nold\n\n## plan\n\nquick\n")
    monkeypatch.setattr(bench, "DOC", doc)
    bench.write_section("## lint\n\nnew\n")  # type: ignore[attr-defined]
    assert doc.read_text() == (
        "# Benchmarks\n\n## sidecar\n\nfast\n\n## lint\n\nnew\n\n## plan\n\nquick\n"
    )


def test_the_section_is_appended_when_absent(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench = load_benchmark()
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## sidecar\n\nfast\n")
    monkeypatch.setattr(bench, "DOC", doc)
    bench.write_section("## lint\n\nnew\n")  # type: ignore[attr-defined]
    assert doc.read_text() == "# Benchmarks\n\n## sidecar\n\nfast\n\n## lint\n\nnew\n"


def test_generated_input_has_the_requested_number_of_objects() -> None:
    bench = load_benchmark()
    import yaml

    text = bench.generate(100)  # type: ignore[attr-defined]
    assert len(list(yaml.safe_load_all(text))) == 100
