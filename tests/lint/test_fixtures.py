"""Every rule fires on its fixtures and stays silent on the near-misses.

Each fixture's first line says exactly which rule IDs must be reported
(``# expect: QL002`` or ``# expect: none``): a rule that fires where it should
not fails the test as surely as one that stays silent.
"""

from __future__ import annotations

import pathlib

import pytest

from quiesce import lint
from quiesce.lint import rules

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
MANIFESTS = sorted((FIXTURES / "manifests").glob("*.yaml"))
DOCKERFILES = sorted((FIXTURES / "dockerfiles").glob("*.Dockerfile"))


def expected(path: pathlib.Path) -> set[str]:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect:"), f"{path.name} lacks an `# expect:` header"
    value = first.removeprefix("# expect:").strip()
    return set() if value == "none" else {v.strip() for v in value.split(",")}


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_fixture_reports_exactly_the_expected_rules(path: pathlib.Path) -> None:
    report = lint.lint([str(path)])
    assert report.errors == ()
    assert {f.rule_id for f in report.findings} == expected(path)


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_fixture_reports_exactly_the_expected_rules(path: pathlib.Path) -> None:
    report = lint.lint([], dockerfiles=[str(path)])
    assert report.errors == ()
    assert {f.rule_id for f in report.findings} == expected(path)


def test_every_rule_has_a_firing_fixture_and_a_near_miss() -> None:
    names = [p.name for p in [*MANIFESTS, *DOCKERFILES]]
    for rule_id in rules.RULES:
        prefix = rule_id.lower()
        assert any(n.startswith(f"{prefix}-fires") for n in names), f"no fixture fires {rule_id}"
        if rule_id != "QL000":
            assert any(n.startswith(f"{prefix}-near") for n in names), f"no near-miss {rule_id}"
