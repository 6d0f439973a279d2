"""`quiesce plan` on real manifest files, as a user runs it before `kubectl apply`."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from typing import Any

import pytest
import yaml

from quiesce import cli, plan

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
QUIESCE = pathlib.Path(sys.executable).parent / "quiesce"


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The installed command, as a user runs it."""
    return subprocess.run(
        [str(QUIESCE), "plan", *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def plan_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict[str, Any]]]:
    """In-process (fast) run with -o json."""
    code = cli.main(["plan", *args, "-o", "json"])
    return code, json.loads(capsys.readouterr().out)


def test_the_table_shows_the_timeline_and_the_grace() -> None:
    result = run("-f", str(FIXTURES / "web.yaml"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"Deployment shop/web ({FIXTURES / 'web.yaml'}#1)"
    assert (
        lines[1]
        == "  grace period 35s: the sum of the phases (template had none, Kubernetes' default 30s)"
    )
    table = [" ".join(line.split()[:4]) for line in lines[4:10]]
    assert table == [
        "at until budget phase",
        "0s 5s 5s deregister",
        "5s 25s 20s converge",
        "25s signal return the",
        "25s 35s 10s exit",
        "35s kill the kubelet",
    ]
    assert "    +terminationGracePeriodSeconds: 35" in lines
    assert "Service" not in result.stdout, "objects without a pod template are not workloads"


def test_stdin_is_read_with_a_dash() -> None:
    result = run("-f", "-", "-o", "json", stdin=(FIXTURES / "web.yaml").read_text())
    assert result.returncode == 0, result.stderr
    (workload,) = json.loads(result.stdout)
    assert workload["source"] == "<stdin>#1" and workload["grace_period_seconds"] == 35


def test_json_has_the_plan_budget_timeline_and_a_json_patch(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, (workload,) = plan_json(capsys, "-f", str(FIXTURES / "nginx.yaml"))
    assert code == 0
    assert workload["status"] == "ok" and workload["grace_period_seconds"] == 60
    assert workload["budget"] == {
        "deregister": 5.0,
        "converge": 20.0,
        "kept_hook": 5.0,
        "drain": 15.0,
        "margin": 15.0,
    }
    assert [p["phase"] for p in workload["timeline"]] == [
        "deregister", "converge", "app hook", "signal", "drain", "exit", "kill",
    ]  # fmt: skip
    assert plan.ShutdownPlan.from_json(json.dumps(workload["plan"])).signal == 3
    ops = {(op["op"], op["path"]) for op in workload["changes"]}
    base = "/spec/template/spec"
    assert ("replace", f"{base}/terminationGracePeriodSeconds") in ops
    assert ("add", f"{base}/shareProcessNamespace") in ops
    assert ("add", f"{base}/initContainers") in ops
    assert ("remove", f"{base}/containers/0/lifecycle/preStop/httpGet/port") not in ops
    prestop = [
        op for op in workload["changes"] if op["path"].startswith(f"{base}/containers/0/lifecycle")
    ]
    assert prestop and all("/containers/1/" not in op["path"] for op in workload["changes"])


def test_yaml_output_is_the_same_data(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["plan", "-f", str(FIXTURES / "web.yaml"), "-o", "yaml"]) == 0
    (workload,) = yaml.safe_load(capsys.readouterr().out)
    assert workload["kind"] == "Deployment" and workload["plan"]["sleep_absorbed"] == 5.0


def test_errors_are_printed_per_workload_and_the_exit_status_is_1() -> None:
    result = run("-f", str(FIXTURES / "errors.yaml"))
    assert result.returncode == 1
    out = result.stdout
    broken, fine, untouched = out.split("\n\n")
    assert broken.splitlines()[1:] == [
        '  error: quiesce.dev/convrge-max: "20s" is set on an unknown key; '
        "expected quiesce.dev/converge-max (the closest known key)",
        '  error: quiesce.dev/margin: "10" is not a duration; '
        'expected Go syntax such as 500ms, 10s, 1m30s (did you mean "10s"?)',
        '  error: quiesce.dev/signal: "SIGKILL" cannot stop an app gracefully; expected a signal '
        "the app handles to stop gracefully, such as SIGTERM, SIGQUIT or SIGINT",
        '  error: quiesce.dev/exec-hook: "/app/bin/drain" is the preStop exec of container "app", '
        'which the sidecar cannot run; expected quiesce.dev/exec-hook: "replace" to drop it '
        "(it is restored on un-inject), or an httpGet or sleep hook",
    ]
    assert "grace period 35s" in fine
    assert untouched.splitlines()[1] == "  skipped: no quiesce.dev/inject annotation"
    assert result.stderr == "quiesce plan: 1 of 3 workloads have errors\n"


def test_defaults_file_is_the_operators_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    code, (workload,) = plan_json(
        capsys, "-f", str(FIXTURES / "web.yaml"), "--defaults", str(FIXTURES / "defaults.yaml")
    )
    assert code == 0
    assert workload["grace_period_seconds"] == 5 + 30 + 5
    added = {op["path"]: op["value"] for op in workload["changes"] if op["op"] == "add"}
    (sidecar,) = added["/spec/template/spec/initContainers"]
    assert sidecar["image"] == "registry.example.com/quiesce:0.1.0"
    env = {e["name"]: e.get("value") for e in sidecar["env"]}
    assert env["CONSUL_HTTP_ADDR"] == "https://$(HOST_IP):8501"
    assert env["CONSUL_HTTP_TOKEN_FILE"] == "/var/run/secrets/quiesce/consul-token/token"
    assert env["QUIESCE_LOG_FORMAT"] == "text"
    assert [v["name"] for v in added["/spec/template/spec/volumes"]] == [
        "quiesce-consul-token",
        "quiesce-consul-ca",
    ]


def test_container_sidecars_when_the_cluster_has_no_native_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, (workload,) = plan_json(
        capsys, "-f", str(FIXTURES / "web.yaml"), "--cluster-sidecars", "container"
    )
    assert code == 0 and workload["sidecar"] == "container"
    assert ("add", "/spec/template/spec/containers/1") in {
        (o["op"], o["path"]) for o in workload["changes"]
    }


@pytest.mark.parametrize(
    ("args", "stderr"),
    [
        (["-f", "does-not-exist.yaml"], "quiesce plan: does-not-exist.yaml: cannot read: "),
        (
            ["-f", str(FIXTURES / "web.yaml"), "--defaults", str(FIXTURES / "bad-defaults.yaml")],
            f"quiesce plan: {FIXTURES / 'bad-defaults.yaml'}: invalid configuration:\n"
            '  plan.converge-max: "thirty" is not a duration; '
            "expected Go syntax such as 500ms, 10s, 1m30s\n"
            '  sidecar.logFormat: "xml" is not a choice; expected json or text\n',
        ),
    ],
)
def test_unreadable_input_exits_2(
    args: list[str], stderr: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["plan", *args]) == 2
    assert capsys.readouterr().err.startswith(stderr)


def test_invalid_yaml_exits_2() -> None:
    result = run("-f", "-", stdin="kind: [")
    assert (
        result.returncode == 2
        and "quiesce plan: <stdin>:" in result.stderr
        and "invalid YAML" in result.stderr
    )


def test_pods_lists_and_cronjobs_are_workloads_too(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path
) -> None:
    container = {"containers": [{"name": "app", "image": "a"}]}
    inject = {"annotations": {"quiesce.dev/inject": "true"}}
    pod = {"kind": "Pod", "metadata": {"name": "p", **inject}, "spec": container}
    off = {"name": "off", "annotations": {"quiesce.dev/inject": "false"}}
    manifest = tmp_path / "mixed.yaml"
    manifest.write_text(
        yaml.safe_dump_all(
            [
                {"kind": "List", "items": [pod]},
                {
                    "kind": "CronJob",
                    "metadata": {"name": "c", **inject},
                    "spec": {"jobTemplate": {"spec": {"template": {"spec": container}}}},
                },
                {"kind": "Deployment", "metadata": off, "spec": {"template": {"spec": container}}},
            ]
        )
    )
    code, results = plan_json(capsys, "-f", str(manifest))
    assert code == 0
    assert [(r["kind"], r["status"]) for r in results] == [
        ("Pod", "ok"),
        ("CronJob", "ok"),
        ("Deployment", "skipped"),
    ]
    assert results[0]["changes"][0]["path"].startswith("/spec/")
    assert results[1]["changes"][0]["path"].startswith("/spec/jobTemplate/spec/template/spec/")
    assert results[2]["reason"] == 'quiesce.dev/inject is "false"'


def test_outer_budgets_of_the_defaults_file_warn_in_json_and_table(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    defaults = tmp_path / "config.yaml"
    defaults.write_text(
        "outerBudgets:\n"
        "  nodeShutdown: {shutdownGracePeriod: 30s, shutdownGracePeriodCriticalPods: 10s}\n"
    )
    expected = (
        "a graceful node shutdown gives pods of priority 0 (no priorityClassName) only 20s "
        "(outerBudgets.nodeShutdown.shutdownGracePeriod 30s − shutdownGracePeriodCriticalPods "
        "10s); the plan needs 35s (5s deregister + 20s converge + 10s margin): the sequence is "
        "cut at 20s, during converge, before the app gets its stop signal; raise the kubelet's "
        "shutdownGracePeriod to at least 45s (and outerBudgets.nodeShutdown with it), or "
        "shorten the plan"
    )
    web = str(FIXTURES / "web.yaml")
    code, (workload,) = plan_json(capsys, "-f", web, "--defaults", str(defaults))
    assert code == 0, "a warning is no error"
    assert workload["warnings"] == [expected]
    assert "warnings" not in workload["plan"], "the sidecar's plan knows no cluster budgets"
    assert cli.main(["plan", "-f", web, "--defaults", str(defaults)]) == 0
    assert f"  warning: {expected}" in capsys.readouterr().out.splitlines()


def test_without_a_defaults_file_only_the_autoscalers_600s_are_checked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, (workload,) = plan_json(capsys, "-f", str(FIXTURES / "web.yaml"))
    assert code == 0 and workload["warnings"] == []


def test_a_bad_outer_budget_in_the_defaults_file_exits_2(tmp_path: pathlib.Path) -> None:
    defaults = tmp_path / "config.yaml"
    defaults.write_text("outerBudgets: {nodeGroupDrainTimeout: 15}\n")
    result = run("-f", str(FIXTURES / "web.yaml"), "--defaults", str(defaults))
    assert result.returncode == 2
    assert result.stderr.splitlines()[1] == (
        '  outerBudgets.nodeGroupDrainTimeout: "15" is not a duration; expected Go syntax such '
        'as 500ms, 10s, 1m30s (did you mean "15s"?), or "off"'
    )
