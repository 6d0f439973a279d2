"""Every promised default of the operator's settings, the CLI that builds them, the rate limit."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from quiesce import cli, values
from quiesce.commands import operator as operator_command
from quiesce.operator import rbac, runtime, settings


def test_defaults_are_the_documented_ones() -> None:
    s = settings.OperatorSettings()
    assert s.namespaces == () and s.clusterwide
    assert not s.dry_run and not s.disabled
    assert s.log_format == "text"
    assert s.peering is None and s.priority == settings.default_priority()
    assert s.metrics_port == 0 and s.liveness is None
    assert s.cluster_sidecars == "auto"
    assert s.upgrades_per_minute == 10.0
    assert s.workers == 8
    assert settings.FIELD_MANAGER == "quiesce"


def test_the_flags_default_to_the_settings_production_reads() -> None:
    """`quiesce operator` with no flag and no environment runs on OperatorSettings()."""
    args = cli.build_parser().parse_args(["operator"])
    assert operator_command.build_settings(args, environ={}) == settings.OperatorSettings()
    given = cli.build_parser().parse_args(["operator", "--webhook-exclude-namespace", "ops"])
    built = operator_command.build_settings(given, environ={})
    assert built.webhook.exclude_namespaces == ("kube-system", "ops")


def test_default_priorities_differ_per_host_and_are_stable() -> None:
    a = settings.default_priority("quiesce-operator-7c9f-abcde")
    b = settings.default_priority("quiesce-operator-7c9f-fghij")
    assert a != b
    assert a == settings.default_priority("quiesce-operator-7c9f-abcde")
    assert a > 0


def test_environment_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.ENV_NAMESPACES, "shop, web ,")
    assert settings.env_namespaces() == ("shop", "web")
    monkeypatch.setenv(settings.ENV_DRY_RUN, "True")
    assert settings.env_flag(settings.ENV_DRY_RUN)
    monkeypatch.setenv(settings.ENV_DRY_RUN, "0")
    assert not settings.env_flag(settings.ENV_DRY_RUN)


@pytest.mark.parametrize(
    ("raw", "on"),
    [("t", True), ("y", True), (" ON ", True), ("1", True), ("f", False), ("no", False),
     ("", False), ("  ", False)],
)  # fmt: skip
def test_switches_in_the_environment_read_booleans_as_annotations_do(raw: str, on: bool) -> None:
    assert settings.env_flag(settings.ENV_DRY_RUN, {settings.ENV_DRY_RUN: raw}) is on
    assert settings.env_flag(settings.ENV_DRY_RUN, {}) is False


def test_an_unknown_switch_value_is_an_error_naming_the_variable() -> None:
    with pytest.raises(ValueError) as caught:
        settings.env_flag(settings.ENV_DRY_RUN, {settings.ENV_DRY_RUN: "maybe"})
    assert str(caught.value) == (
        'QUIESCE_DRY_RUN: "maybe" is invalid; expected a boolean: true/false, yes/no, on/off, '
        "1/0, t/f or y/n"
    )
    assert values.BOOL_EXPECTED in str(caught.value)


def test_bad_environment_variables_are_reported_together_by_the_cli() -> None:
    args = cli.build_parser().parse_args(["operator"])
    environ = {settings.ENV_DISABLED: "sure", settings.ENV_PRIORITY: "high"}
    with pytest.raises(operator_command.SettingsError) as caught:
        operator_command.build_settings(args, environ=environ)
    assert caught.value.errors == (
        'QUIESCE_DISABLED: "sure" is invalid; expected ' + values.BOOL_EXPECTED,
        'QUIESCE_PRIORITY: "high" is invalid; expected an integer, distinct per replica',
    )
    ok = {settings.ENV_DRY_RUN: "t", settings.ENV_PRIORITY: "7"}
    built = operator_command.build_settings(args, environ=ok)
    assert built.dry_run and built.priority == 7


def test_the_cli_accepts_every_documented_flag() -> None:
    args = cli.build_parser().parse_args(
        [
            "operator",
            "-n",
            "shop",
            "--namespace",
            "team-*",
            "--config",
            "c.yaml",
            "--dry-run",
            "--disabled",
            "--kubeconfig",
            "k",
            "--log-format",
            "json",
            "--peering",
            "quiesce",
            "--priority",
            "7",
            "--liveness",
            "http://0.0.0.0:8080/healthz",
            "--metrics-port",
            "9180",
            "--cluster-sidecars",
            "container",
        ]
    )
    assert isinstance(args, argparse.Namespace)
    assert args.namespace == ["shop", "team-*"]
    assert args.priority == 7 and args.log_format == "json"


def test_namespace_and_all_namespaces_exclude_each_other() -> None:
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["operator", "-n", "a", "--all-namespaces"])


def test_a_bad_config_file_exits_2_with_every_error(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("sidecar:\n  imag: x\nplan:\n  converge-max: soon\n")
    result = subprocess.run(
        [sys.executable, "-m", "quiesce", "operator", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "sidecar.imag" in result.stderr and "converge-max" in result.stderr


def test_auto_upgrades_are_rate_limited() -> None:
    now = [0.0]
    limiter = runtime.RateLimiter(per_minute=2, clock=lambda: now[0])
    assert limiter.allow() == 0 and limiter.allow() == 0
    wait = limiter.allow()
    assert wait == pytest.approx(30.0)
    now[0] += 30.0
    assert limiter.allow() == 0


def test_role_binding_names_stay_valid() -> None:
    assert rbac.binding_name("default") == "quiesce-sidecar-default"
    long = rbac.binding_name("x" * 300)
    assert len(long) <= 253 and long.startswith("quiesce-sidecar-")
    binding = rbac.role_binding("shop", "web", role_uid="u-1")
    assert binding["roleRef"]["name"] == rbac.CLUSTER_ROLE == "quiesce-sidecar"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "web", "namespace": "shop"}]
