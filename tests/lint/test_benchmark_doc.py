"""benchmarks/lint.py generates the input it claims to."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "lint.py"


def load_benchmark() -> object:
    sys.path.insert(0, str(SCRIPT.parent))  # the benchmarks import their shared report.py
    spec = importlib.util.spec_from_file_location("lint_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_input_has_the_requested_number_of_objects() -> None:
    bench = load_benchmark()
    import yaml

    text = bench.generate(100)  # type: ignore[attr-defined]
    assert len(list(yaml.safe_load_all(text))) == 100
