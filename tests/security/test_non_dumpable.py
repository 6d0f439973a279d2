"""A process of the app's UID cannot read a non-dumpable sidecar through /proc.

In signal mode the sidecar may run as the app's UID in a shared PID namespace.
Real processes here: a "sidecar" child runs as an unprivileged UID with a
secret in its environment, and a "app" process of the same UID tries to read
its ``/proc/<pid>/environ``, ``/proc/<pid>/root`` and ``/proc/<pid>/mem``.
The control (no hardening) shows the same reader succeeds when the sidecar is
dumpable, so the test can tell the two apart.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from quiesce.sidecar import hardening

REPO = Path(__file__).resolve().parents[2]
UID = 54321  # no such user needed: the kernel only compares numbers
SECRET = "quiesce-test-secret-7f3a"
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch UIDs")

HOLDER = """
import sys, time
from quiesce.sidecar import hardening
if sys.argv[1] == "harden":
    assert hardening.make_non_dumpable()
print("dumpable" if hardening.dumpable() else "non-dumpable", flush=True)
time.sleep(120)
"""

READER = """
import os, sys
pid = sys.argv[1]
for what, read in (
    ("environ", lambda: open(f"/proc/{pid}/environ", "rb").read()),
    ("root", lambda: os.listdir(f"/proc/{pid}/root")),
    ("mem", lambda: open(f"/proc/{pid}/mem", "rb").close()),
):
    try:
        data = read()
    except PermissionError:
        print(what, "denied")
    else:
        print(what, "read", "secret" if b"%s" in (data if isinstance(data, bytes) else b"") else "")
"""


def python_for(uid: int) -> str:
    """The first Python the UID may execute: the venv's, else the system's."""
    for candidate in (sys.executable, "/usr/bin/python3"):
        try:
            probe = subprocess.run(
                [candidate, "-c", "pass"], user=uid, group=uid, extra_groups=[],
                capture_output=True, check=False, cwd="/",
            )  # fmt: skip
        except PermissionError:
            continue
        if probe.returncode == 0:
            return candidate
    pytest.skip(f"no Python that UID {uid} may execute")


@pytest.fixture
def holder(request: pytest.FixtureRequest) -> Iterator[tuple[int, str]]:
    python = python_for(UID)
    proc = subprocess.Popen(
        [python, "-c", HOLDER, request.param],
        user=UID, group=UID, extra_groups=[],
        env={"PYTHONPATH": str(REPO), "QUIESCE_TEST_SECRET": SECRET, "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE, text=True, cwd="/",
    )  # fmt: skip
    assert proc.stdout is not None
    state = proc.stdout.readline().strip()
    try:
        yield proc.pid, state
    finally:
        proc.kill()
        proc.wait()


def read_as(uid: int, pid: int) -> dict[str, str]:
    out = subprocess.run(
        [python_for(uid), "-c", READER.replace("%s", SECRET), str(pid)],
        user=uid, group=uid, extra_groups=[], capture_output=True, text=True, check=True,
        cwd="/", env={"PATH": "/usr/bin:/bin"},
    ).stdout  # fmt: skip
    return {line.split(" ", 1)[0]: line.split(" ", 1)[1].strip() for line in out.splitlines()}


@pytest.mark.parametrize("holder", ["harden"], indirect=True)
def test_a_process_of_the_same_uid_cannot_read_a_non_dumpable_sidecars_proc_files(
    holder: tuple[int, str],
) -> None:
    pid, state = holder
    assert state == "non-dumpable"
    assert read_as(UID, pid) == {"environ": "denied", "root": "denied", "mem": "denied"}


@pytest.mark.parametrize("holder", ["plain"], indirect=True)
def test_without_hardening_the_same_uid_reads_the_secret_from_environ(
    holder: tuple[int, str],
) -> None:
    pid, state = holder
    assert state == "dumpable"
    seen = read_as(UID, pid)
    assert seen["environ"] == "read secret"
    assert seen["root"].startswith("read")


def test_the_sidecar_command_makes_itself_non_dumpable_first() -> None:
    source = (REPO / "quiesce" / "commands" / "sidecar.py").read_text()
    run = source[source.index("def run(") :]
    assert run.index("hardening.make_non_dumpable()") < run.index("settings.from_env()")


def test_make_non_dumpable_reports_the_new_state_in_this_process() -> None:
    # In a child: this test process must stay dumpable for the tools that inspect it.
    out = subprocess.run(
        [sys.executable, "-c", "from quiesce.sidecar import hardening as h;"
         "print(h.dumpable(), h.make_non_dumpable(), h.dumpable())"],
        capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    ).stdout.split()  # fmt: skip
    assert out == ["True", "True", "False"]
    assert hardening.PR_SET_DUMPABLE == 4
