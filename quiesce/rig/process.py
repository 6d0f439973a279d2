"""Processes the rig starts: logged to a file, waited for, and always stopped.

Every component is a real process in its own session (so its children die
with it). Readiness is polled with a check function and bounded by a timeout;
a component that exits or stays unready raises an error naming its log file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from quiesce.rig import errors


class ManagedProcess:
    """One long-running component process with a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        netns: str | None = None,
        nice: int = 0,
    ) -> None:
        self.name = name
        self.log = log
        prefix: list[str] = ["ip", "netns", "exec", netns] if netns else []
        if nice:
            prefix = ["nice", "-n", str(nice), *prefix]
        self.argv = [*prefix, *argv]
        self._env = dict(env) if env is not None else None
        self._cwd = cwd
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    def start(self) -> ManagedProcess:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            out.write(f"$ {' '.join(self.argv)}\n".encode())
            out.flush()
            self.popen = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._env,
                cwd=self._cwd,
                start_new_session=True,
            )
        return self

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_ready(self, check: Callable[[], bool], *, timeout: float, what: str = "ready") -> None:
        """Poll ``check`` until it holds; fail fast if the process exits."""
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            if not self.running():
                code = self.popen.returncode if self.popen else None
                raise errors.ComponentFailed(
                    self.name, f"exited with code {code} before {what}", self.log
                )
            with contextlib.suppress(Exception):
                if check():
                    return
            if time.monotonic() > deadline:
                raise errors.ComponentFailed(
                    self.name, f"not {what} after {timeout:.0f} s", self.log
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL what is left after ``timeout``."""
        if self.popen is None or self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)
        # Children that outlived the leader (same group) are killed too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)


def free_port(address: str) -> int:
    """A TCP port that is free on ``address`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def port_free(address: str, port: int) -> bool:
    """Whether ``address:port`` can be bound right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError:
            return False
        return True


def ensure_port_free(component: str, address: str, port: int) -> None:
    """Fail clearly, naming the component, when a wanted port is taken."""
    if not port_free(address, port):
        raise errors.PortInUse(component, address, port)


def tcp_open(address: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False
