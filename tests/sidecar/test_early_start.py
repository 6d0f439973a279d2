"""The sidecar's start: a probe or /prestop that arrives while it is starting is answered.

The kubelet's first startup probe can come before the sidecar serves (no initial
delay in the injected probe), and a pod deleted at once gets its ``/prestop``
then. ``quiesce sidecar`` listens before its heavy imports, so from the moment
its port accepts a connection, every request on it is answered: none is
refused, reset or left without an answer. Real processes, real sockets.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import make_plan
from .sidecar_proc import TOKEN, SidecarProcess

FAST = {"converge_max": 0.5, "quiet_window": 0.1, "deregister_timeout": 0.5}


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[list[SidecarProcess]]:
    made: list[SidecarProcess] = []
    yield made
    for s in made:
        s.stop()


def first_accepted_connection(s: SidecarProcess, *, give_up: float = 60.0) -> socket.socket:
    """Connect to the sidecar's port from its spawn on, until the kernel accepts one."""
    end = time.monotonic() + give_up
    while time.monotonic() < end:
        assert s.proc.poll() is None, s.log_text()
        try:
            return socket.create_connection(("127.0.0.1", s.port), timeout=30)
        except ConnectionRefusedError:  # not bound yet: the interpreter is still starting
            time.sleep(0.001)
    raise AssertionError(f"the sidecar never listened: {s.log_text()}")


def answer_on(conn: socket.socket, request: bytes) -> bytes:
    with conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def request(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: sidecar", "Connection: close", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def ready_logged(s: SidecarProcess) -> bool:
    return "quiesce sidecar ready" in s.log_text()


def test_a_probe_sent_as_soon_as_the_port_accepts_is_answered_not_refused(
    tmp_path: Path, sidecar: list[SidecarProcess]
) -> None:
    s = SidecarProcess(tmp_path, wait_ready=False)
    sidecar.append(s)
    conn = first_accepted_connection(s)
    before_ready = not ready_logged(s)
    raw = answer_on(conn, request("/readyz"))
    assert raw.startswith(b"HTTP/1.1 200"), raw
    assert raw.endswith(b"ready\n")
    # The port listened before the server was up (the point of binding first): the
    # accepted connection waited in the backlog. (On a machine so loaded that the whole
    # start fits between two connection attempts this is not observed; the answer is
    # what counts.)
    if before_ready:
        assert ready_logged(s)


def test_a_pod_deleted_while_its_sidecar_starts_still_runs_its_shutdown(
    tmp_path: Path, sidecar: list[SidecarProcess]
) -> None:
    """/prestop sent the moment the port accepts: the whole sequence runs and is answered."""
    s = SidecarProcess(tmp_path, plan=FAST, wait_ready=False)
    sidecar.append(s)
    conn = first_accepted_connection(s)
    raw = answer_on(conn, request("/prestop", f"X-Quiesce-Token: {TOKEN}"))
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), raw
    answer = json.loads(body)
    assert answer["state"] == "done", answer
    assert answer["errors"] == 0, answer
    assert s.status()["state"] == "done"
    assert s.proc.poll() is None  # still serving: the kubelet's stop signal comes next


def test_a_taken_port_is_one_clear_line_and_a_failed_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("QUIESCE_", "CONSUL_"))},
            "QUIESCE_PLAN": make_plan(port=port).to_json(),
            "QUIESCE_LISTEN_HOST": "127.0.0.1",
            "POD_NAME": "web-0",
            "POD_NAMESPACE": "default",
        }
        done = subprocess.run(
            [sys.executable, "-m", "quiesce", "sidecar"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"quiesce sidecar: cannot listen on 127.0.0.1:{port}: address already in use"
    )


def test_a_sigterm_while_the_sidecar_starts_is_handled_not_fatal(
    tmp_path: Path, sidecar: list[SidecarProcess]
) -> None:
    """Its port accepts before aiohttp is imported: a SIGTERM then is held, and handled."""
    s = SidecarProcess(tmp_path, env={"QUIESCE_SIDECAR_MODE": "native"}, wait_ready=False)
    sidecar.append(s)
    first_accepted_connection(s).close()
    s.proc.terminate()
    # Killed by the signal's default action it would be -15; handled, a native sidecar
    # whose app is gone exits 0.
    assert s.proc.wait(60) == 0, s.log_text()
