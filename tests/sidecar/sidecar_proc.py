"""A real ``quiesce sidecar`` process for the hardening tests: its own limits, its own log.

The process is what runs in a pod: ``python -m quiesce sidecar``, configured by
the environment the operator injects, its JSON log on stderr (here a file, so a
test can count its bytes and lines). ``nofile`` sets its open-file limit before
it starts (soft, hard), as a container runtime would.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .helpers import free_port, make_plan

TOKEN = "s3cret-prestop-token"


class SidecarProcess:
    def __init__(
        self,
        tmp_path: Path,
        *,
        plan: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        nofile: tuple[int, int] | None = None,
        wait_ready: bool = True,
    ) -> None:
        if not wait_ready:  # the caller watches the start itself (one attempt, no retry)
            self.port = free_port()
            self._start(plan, env, nofile, tmp_path)
            return
        # free_port() only finds a port free *now*: another test's client may take it
        # before the sidecar binds (seen under load). Then start again on another port.
        for _attempt in range(5):
            self.port = free_port()
            self._start(plan, env, nofile, tmp_path)
            if self._wait_ready():
                return
            self._log.close()
        raise AssertionError(f"the sidecar could not bind a free port: {self.log_path}")

    def _start(
        self,
        plan: dict[str, Any] | None,
        env: dict[str, str] | None,
        nofile: tuple[int, int] | None,
        tmp_path: Path,
    ) -> None:
        self.log_path = tmp_path / f"sidecar-{self.port}.log"
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("QUIESCE_", "CONSUL_"))}
        full_env = {
            **clean,
            "QUIESCE_PLAN": make_plan(port=self.port, **(plan or {})).to_json(),
            "QUIESCE_TOKEN": TOKEN,
            "POD_NAME": "web-0",
            "POD_NAMESPACE": "default",
            "POD_UID": "uid-web-0",
            "POD_IP": "127.0.0.1",
            "QUIESCE_IDLE_SAMPLE_INTERVAL": "0.5",
            "QUIESCE_POLL_INTERVAL": "0.05",
            **(env or {}),
        }

        def limit() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, nofile)

        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "quiesce", "sidecar"],
            env=full_env,
            stdout=self._log,
            stderr=self._log,
            preexec_fn=limit,
        )

    def _wait_ready(self, timeout: float = 60.0) -> bool:
        """True once ready; False when its port was taken first (start again)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                if "address already in use" in self.log_text():
                    return False
                raise AssertionError(f"the sidecar exited: {self.log_text()}")
            with contextlib.suppress(OSError):
                if self.get("/healthz", timeout=2.0)[0] == 200:
                    return True
            time.sleep(0.1)
        raise AssertionError(f"the sidecar never became ready: {self.log_text()}")

    def get(
        self,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
        source: str = "127.0.0.1",
    ) -> tuple[int, bytes]:
        """One HTTP/1.1 request on a fresh connection from ``source``; (status, body)."""
        lines = [f"GET {path} HTTP/1.1", "Host: sidecar", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        raw = self.raw(("\r\n".join(lines) + "\r\n\r\n").encode(), timeout=timeout, source=source)
        head, _, body = raw.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/"):
            return 0, raw  # no answer before the give-up timeout, or the server hung up
        return int(head.split(b" ", 2)[1]), body

    def raw(self, payload: bytes, *, timeout: float = 10.0, source: str = "127.0.0.1") -> bytes:
        """Send ``payload`` on a fresh connection, read the answer until the server closes."""
        with socket.create_connection(
            ("127.0.0.1" if source.startswith("127.") else source, self.port),
            timeout=timeout,
            source_address=(source, 0),
        ) as s:
            s.sendall(payload)
            chunks = []
            while True:
                try:
                    chunk = s.recv(65536)
                except (ConnectionResetError, TimeoutError):
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks)

    def prestop(self, **kw: Any) -> tuple[int, bytes]:
        return self.get("/prestop", headers={"X-Quiesce-Token": TOKEN}, **kw)

    def status(self) -> dict[str, Any]:
        code, body = self.get("/status")
        assert code == 200, body
        result: dict[str, Any] = json.loads(body)
        return result

    def log_bytes(self) -> int:
        self._log.flush()
        return self.log_path.stat().st_size

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()
