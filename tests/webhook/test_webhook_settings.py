"""Every promised default of webhook mode, and the flags that set them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from quiesce import cli
from quiesce.commands import operator as operator_command
from quiesce.operator import settings


def test_webhook_defaults_are_the_documented_ones() -> None:
    s = settings.OperatorSettings().webhook
    assert s == settings.WebhookSettings()
    assert not s.enabled and not s.strict
    assert s.url is None
    assert s.service == "quiesce-system/quiesce-webhook:443"
    assert (s.host, s.port) == ("0.0.0.0", 9443)
    assert s.name == "quiesce"
    assert s.cert_secret == "quiesce-system/quiesce-webhook-cert"
    assert not s.cert_provided
    assert s.cert_validity == 365 * 86400 and s.cert_check == 60
    assert s.namespace_label == "quiesce.dev/webhook=enabled"
    assert s.exclude_namespaces == ("kube-system",)
    assert s.timeout == 3 and s.failure_policy == "Ignore"
    assert s.scan_interval == 60
    assert s.reinvocation == "IfNeeded"


def test_the_operators_namespace_comes_from_the_pod_or_the_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(settings.ENV_POD_NAMESPACE, raising=False)
    assert (
        settings.OperatorSettings(
            webhook=settings.WebhookSettings(cert_secret="ops/cert")
        ).operator_namespace
        == "ops"
    )
    monkeypatch.setenv(settings.ENV_POD_NAMESPACE, "quiesce")
    assert settings.OperatorSettings().operator_namespace == "quiesce"


def test_the_cli_accepts_every_webhook_flag() -> None:
    args = cli.build_parser().parse_args(
        [
            "operator", "--webhook", "--webhook-url", "https://198.18.0.1:9443",
            "--webhook-service", "q/hook:8443", "--webhook-host", "198.18.0.1",
            "--webhook-port", "9444", "--webhook-name", "q", "--webhook-cert-secret", "q/c",
            "--webhook-cert-provided", "--webhook-cert-validity", "720h",
            "--webhook-cert-check", "10s", "--webhook-namespace-label", "",
            "--webhook-exclude-namespace", "monitoring", "--webhook-timeout", "5",
            "--webhook-failure-policy", "Fail", "--webhook-scan-interval", "0", "--strict",
            "--webhook-reinvocation", "Never",
        ]
    )  # fmt: skip
    assert args.webhook and args.strict and args.webhook_cert_provided
    assert args.webhook_port == 9444 and args.webhook_failure_policy == "Fail"
    assert args.webhook_exclude_namespace == ["monitoring"]


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (["--webhook-cert-check", "0s"],
         '--webhook-cert-check: "0s" is zero; expected a Go duration greater than zero, such as '
         "1m (the Secret is read this often)"),
        (["--webhook-cert-check=-1m"],
         '--webhook-cert-check: "-1m" is negative; expected a Go duration greater than zero, '
         "such as 1m (the Secret is read this often)"),
        (["--webhook-cert-validity", "0"],
         '--webhook-cert-validity: "0" is zero; expected a Go duration greater than zero, '
         "such as 8760h"),
        (["--webhook-cert-validity", "1y"],
         '--webhook-cert-validity: "1y" is not a duration; expected a Go duration greater than '
         "zero, such as 8760h"),
        (["--webhook-scan-interval=-5s"],
         '--webhook-scan-interval: "-5s" is negative; expected a Go duration, 0 for no scan, '
         "such as 1m"),
        (["--webhook-scan-interval", "5x"],
         '--webhook-scan-interval: "5x" is not a duration; expected a Go duration, 0 for no '
         "scan, such as 1m"),
        (["--webhook-timeout", "0"],
         '--webhook-timeout: "0" is out of range; expected a number of seconds from 1 to 30 '
         "(the API server's limits for timeoutSeconds)"),
        (["--webhook-timeout", "31"],
         '--webhook-timeout: "31" is out of range; expected a number of seconds from 1 to 30 '
         "(the API server's limits for timeoutSeconds)"),
    ],
)  # fmt: skip
def test_each_bad_duration_flag_is_named_with_its_value_and_what_is_expected(
    flags: list[str], error: str
) -> None:
    args = cli.build_parser().parse_args(["operator", *flags])
    with pytest.raises(operator_command.SettingsError) as caught:
        operator_command.build_settings(args, environ={})
    assert caught.value.errors == (error,)


def test_every_bad_duration_flag_is_reported_at_once() -> None:
    args = cli.build_parser().parse_args(
        ["operator", "--webhook-cert-check", "0s", "--webhook-scan-interval", "soon"]
    )
    with pytest.raises(operator_command.SettingsError) as caught:
        operator_command.build_settings(args, environ={})
    assert [e.split(":")[0] for e in caught.value.errors] == [
        "--webhook-cert-check",
        "--webhook-scan-interval",
    ]


def test_a_zero_scan_interval_means_no_scan_and_is_valid() -> None:
    args = cli.build_parser().parse_args(["operator", "--webhook-scan-interval", "0"])
    assert operator_command.build_settings(args, environ={}).webhook.scan_interval == 0


def test_a_bad_duration_exits_2_naming_the_flag() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "quiesce", "operator", "--webhook-cert-check", "5x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == (
        'quiesce operator: --webhook-cert-check: "5x" is not a duration; expected a Go duration '
        "greater than zero, such as 1m (the Secret is read this often)\n"
    )
