"""``quiesce sidecar``: real help, configuration errors that name the variable."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from .helpers import make_plan


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("QUIESCE_", "CONSUL_"))}
    return subprocess.run(
        [sys.executable, "-m", "quiesce", "sidecar", *args],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_help_describes_the_sequence_and_every_variable() -> None:
    out = run("--help")
    assert out.returncode == 0
    for needle in ("deregister", "converge", "QUIESCE_PLAN", "CONSUL_HTTP_TOKEN", "/prestop"):
        assert needle in out.stdout


def test_a_missing_plan_is_an_error_naming_the_variable() -> None:
    out = run()
    assert out.returncode == 2
    assert "QUIESCE_PLAN is not set" in out.stderr


def test_a_bad_setting_names_the_variable_and_the_value() -> None:
    out = run(env={"QUIESCE_PLAN": make_plan().to_json(), "QUIESCE_SIDECAR_MODE": "sidecar"})
    assert out.returncode == 2
    assert "QUIESCE_SIDECAR_MODE='sidecar': expected native or container" in out.stderr


def test_check_config_prints_the_settings_with_secrets_masked() -> None:
    out = run(
        "--check-config",
        env={
            "QUIESCE_PLAN": make_plan(port=8999).to_json(),
            "QUIESCE_TOKEN": "secret-token",
            "CONSUL_HTTP_ADDR": "https://consul.example:8501",
            "CONSUL_HTTP_TOKEN": "consul-secret",
        },
    )
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["token"] == "***" and shown["consul"]["token"] == "***"
    assert shown["consul"]["scheme"] == "https"
    assert shown["consul"]["address"] == "consul.example:8501"
    assert shown["consul"]["backend"] == "auto"
    assert shown["plan"]["port"] == 8999
    assert "secret-token" not in out.stdout and "consul-secret" not in out.stdout
