"""``quiesce plan -f`` on hostile files: a clear error naming the file, exit 2, no traceback.

Run as a user runs it (``python -m quiesce plan -f FILE``), under an address-space
cap, so a runaway (the billion-laughs alias used to reach 2 GB) fails the test
instead of the machine.
"""

from __future__ import annotations

import os
import pathlib
import resource
import subprocess
import sys

import pytest

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    quiesce.dev/inject: "true"
{extra}
spec:
  template:
    spec:
      containers:
        - name: app
          image: example/app:1
"""


def _laughs() -> str:
    lines = ['    a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 12):
        refs = ", ".join([f"*a{i - 1}"] * 10)
        lines.append(f"    a{i}: &a{i} [{refs}]")
    bomb = "\n".join(lines)
    return DEPLOYMENT.format(extra=f"    quiesce.dev/consul-service: *a11\n{bomb}").replace(
        "    quiesce.dev/consul-service: *a11\n" + bomb,
        bomb + "\n    quiesce.dev/consul-service: *a11",
    )


HOSTILE: dict[str, tuple[bytes, str]] = {
    "nested.yaml": (("[" * 100_000 + "]" * 100_000).encode(), "nest"),
    # Just under libyaml's own nesting limit (1,000), past Python's recursion limit.
    "nested-999.yaml": (
        DEPLOYMENT.format(extra="")
        .replace(
            "image: example/app:1", "image: example/app:1\n          args: " + "[" * 999 + "]" * 999
        )
        .encode(),
        "nest",
    ),
    "utf16.yaml": (DEPLOYMENT.format(extra="").encode("utf-16"), "not UTF-8 text"),
    "binary.yaml": (bytes(range(256)) * 64, "not UTF-8 text"),
    "nul.yaml": (b"kind: Deployment\x00\x01\x02\n", "invalid YAML"),
}


def _cap() -> None:
    limit = 1024 * 1024 * 1024  # 1 GiB of address space
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def run_plan(
    path: pathlib.Path | str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "quiesce", "plan", "-f", str(path)],
        input=stdin,
        capture_output=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        preexec_fn=_cap,
    )
    return subprocess.CompletedProcess(
        result.args,
        result.returncode,
        result.stdout.decode(errors="replace"),
        result.stderr.decode(errors="replace"),
    )


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_file_is_a_clear_error_and_exit_2(tmp_path: pathlib.Path, name: str) -> None:
    content, problem = HOSTILE[name]
    path = tmp_path / name
    path.write_bytes(content)
    result = run_plan(path)
    assert "Traceback" not in result.stderr
    assert result.returncode == 2, result.stderr
    assert f"quiesce plan: {path}" in result.stderr
    assert problem in result.stderr


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_stdin_is_a_clear_error_and_exit_2(name: str) -> None:
    content, problem = HOSTILE[name]
    result = run_plan("-", stdin=content)
    assert "Traceback" not in result.stderr
    assert result.returncode == 2, result.stderr
    assert "quiesce plan: <stdin>" in result.stderr and problem in result.stderr


def test_a_billion_laughs_in_an_annotation_is_a_bounded_plan_error(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "laughs.yaml"
    path.write_text(_laughs())
    result = run_plan(path)
    assert "Traceback" not in result.stderr
    assert result.returncode in (1, 2), result.stderr
    assert "quiesce.dev/consul-service" in result.stdout + result.stderr
    assert len(result.stdout) + len(result.stderr) < 64 * 1024
