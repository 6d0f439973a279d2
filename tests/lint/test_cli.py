"""`quiesce lint` through the real command line: exit codes, stdin, formats.

CI pipelines rely on the exit code (0 clean, 1 findings at or above
--fail-on, 2 unreadable input) and on `helm template ... | quiesce lint -`.
"""

from __future__ import annotations

import io
import json
import pathlib
import subprocess
import sys

import pytest

from quiesce import cli

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
CLEAN = FIXTURES / "manifests" / "ql001-near-exec.yaml"
WARNING_ONLY = FIXTURES / "manifests" / "ql003-fires-no-probe.yaml"
ERRORS = FIXTURES / "manifests" / "ql008-fires-zero.yaml"
BROKEN = FIXTURES / "bad" / "broken.yaml"


def run(*argv: str, stdin: str = "", capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        code = cli.main(["lint", *argv])
    finally:
        sys.stdin = old
    out, err = capsys.readouterr()
    return code, out, err


def test_clean_input_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(str(CLEAN), capsys=capsys)
    assert code == 0
    assert "0 errors, 0 warnings" in out


def test_warnings_fail_by_default_but_not_with_fail_on_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(str(WARNING_ONLY), capsys=capsys)[0] == 1
    assert run(str(WARNING_ONLY), "--fail-on", "error", capsys=capsys)[0] == 0
    assert run(str(ERRORS), "--fail-on", "error", capsys=capsys)[0] == 1


def test_bad_input_exits_two_and_still_lints_the_rest(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(str(BROKEN), str(ERRORS), capsys=capsys)
    assert code == 2
    assert "broken.yaml:14: invalid YAML" in out
    # The documents around the broken one, and the other file, are still linted.
    assert "Deployment good-before" in out
    assert "Deployment good-after" in out
    assert "DaemonSet kube-system/edge" in out


def test_missing_path_is_bad_input(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path
) -> None:
    code, out, _ = run(str(tmp_path / "nope.yaml"), capsys=capsys)
    assert code == 2
    assert "nope.yaml: cannot read" in out


def test_dash_reads_stdin(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run("-", "-o", "json", stdin=ERRORS.read_text(), capsys=capsys)
    assert code == 1
    document = json.loads(out)
    [finding] = document["findings"]
    assert finding["rule"] == "QL008"
    assert finding["file"] == "<stdin>"
    assert finding["line"] == 8


def test_directories_are_searched_recursively(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path
) -> None:
    nested = tmp_path / "chart" / "templates"
    nested.mkdir(parents=True)
    (nested / "deploy.yaml").write_text(ERRORS.read_text())
    (tmp_path / "chart" / "README.md").write_text("kind: Deployment\n")  # not YAML by name
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.yaml").write_text(ERRORS.read_text())  # hidden: skipped
    code, out, _ = run(str(tmp_path), "-o", "json", capsys=capsys)
    assert code == 1
    files = {f["file"] for f in json.loads(out)["findings"]}
    assert files == {str(nested / "deploy.yaml")}


def test_json_output_names_object_container_and_field(capsys: pytest.CaptureFixture[str]) -> None:
    path = FIXTURES / "manifests" / "ql001-fires-sh-c.yaml"
    _, out, _ = run(str(path), "-o", "json", capsys=capsys)
    [finding] = json.loads(out)["findings"]
    assert finding == {
        "rule": "QL001",
        "severity": "error",
        "kind": "Deployment",
        "namespace": "shop",
        "name": "api",
        "container": "api",
        "field": "spec.template.spec.containers[0].command",
        "message": finding["message"],
        "fix": finding["fix"],
        "file": str(path),
        "line": 12,
    }
    assert "exec" in finding["fix"]


def test_sarif_output_is_a_sarif_2_1_0_log(capsys: pytest.CaptureFixture[str]) -> None:
    dockerfile = FIXTURES / "dockerfiles" / "ql004-fires-apt-nginx.Dockerfile"
    code, out, _ = run(
        str(ERRORS), str(BROKEN), "--dockerfile", str(dockerfile), "-o", "sarif", capsys=capsys
    )
    assert code == 2
    log = json.loads(out)
    assert log["version"] == "2.1.0"
    [run_] = log["runs"]
    rules = run_["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules][:3] == ["QL000", "QL001", "QL002"]
    for result in run_["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in {"error", "warning"}
        region = result["locations"][0]["physicalLocation"]["region"]
        assert region["startLine"] >= 1
    assert {r["ruleId"] for r in run_["results"]} == {"QL004", "QL008"}
    invocation = run_["invocations"][0]
    assert invocation["executionSuccessful"] is False
    [note] = invocation["toolExecutionNotifications"]
    assert note["locations"][0]["physicalLocation"]["region"]["startLine"] == 14


def test_list_rules_prints_every_rule(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run("--list-rules", capsys=capsys)
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == [f"QL00{i}" for i in range(10)]


def test_no_input_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys=capsys)
    assert code == 2
    assert "give manifest paths" in err


def test_installed_entry_point_pipes_helm_style_output_through_stdin() -> None:
    """The real process: `helm template ... | quiesce lint -` with a bad Dockerfile beside."""
    stream = "---\n# Source: chart/templates/deploy.yaml\n" + ERRORS.read_text()
    done = subprocess.run(
        [sys.executable, "-m", "quiesce", "lint", "-", "--fail-on", "error"],
        input=stream,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "QL008" in done.stdout
    assert "<stdin>:10" in done.stdout


def test_config_file_sets_the_outer_budgets_ql009_checks(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    long = FIXTURES / "manifests" / "ql009-fires-past-autoscaler.yaml"
    code, out, _ = run(str(long), "-o", "json", capsys=capsys)
    assert code == 1 and {f["rule"] for f in json.loads(out)["findings"]} == {"QL009"}
    config = tmp_path / "config.yaml"
    config.write_text('outerBudgets: {autoscalerMaxGracefulTermination: "off"}\n')
    code, out, _ = run(str(long), "--config", str(config), "-o", "json", capsys=capsys)
    assert code == 0 and json.loads(out)["findings"] == []
    config.write_text("outerBudgets: {nodeGroupDrainTimeout: 1m}\n")
    code, out, _ = run(str(CLEAN), "--config", str(config), "-o", "json", capsys=capsys)
    assert code == 0, "the default 30 s fit in the minute"


def test_a_bad_or_missing_config_file_exits_2(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("outerBudgets: {nodeGroupDrainTimout: 1m}\n")
    code, _, err = run(str(CLEAN), "--config", str(config), capsys=capsys)
    assert code == 2
    assert err.splitlines() == [
        f"quiesce lint: {config}: invalid configuration:",
        '  outerBudgets.nodeGroupDrainTimout: "1m" is an unknown key; '
        "expected outerBudgets.nodeGroupDrainTimeout",
    ]
    code, _, err = run(str(CLEAN), "--config", str(tmp_path / "absent.yaml"), capsys=capsys)
    assert code == 2 and err.startswith(f"quiesce lint: cannot read --config {tmp_path}")
