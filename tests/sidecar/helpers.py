"""Helpers for the sidecar's tests: real plans (quiesce.plan), settings, addresses."""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp

from quiesce import plan as plan_module
from quiesce.sidecar import settings as settings_module


def make_plan(**overrides: Any) -> plan_module.ShutdownPlan:
    """A real ShutdownPlan; the margin absorbs rounding so the budget identity holds."""
    fields: dict[str, Any] = {
        "version": plan_module.FORMAT_VERSION,
        "deregister_timeout": 2.0,
        "converge_min": 0.0,
        "converge_max": 5.0,
        "quiet_window": 0.5,
        "kept_hook_timeout": 0.0,
        "drain_timeout": 0.0,
        "margin": 1.0,
        "grace_period_seconds": 0,
        "grace_source": "derived",
        "template_grace": None,
        "signal": None,
        "shutdown_url": None,
        "containers": (),
        "port": 7979,
        "consul_services": (),
        "long_lived_ports": (),
        "probe_ports": (),
        "kept_hook": None,
        "sleep_absorbed": 0.0,
        "exec_hook_replaced": False,
        "sidecar_mode": "container",
        "auto_upgrade": False,
        "epsilon": 1e-3,
    }
    fields.update(overrides)
    phases = (
        fields["deregister_timeout"]
        + fields["converge_max"]
        + fields["kept_hook_timeout"]
        + fields["drain_timeout"]
    )
    grace = math.ceil(phases + fields["margin"])
    fields["margin"] = grace - phases
    fields["grace_period_seconds"] = grace
    return plan_module.ShutdownPlan(**fields)


def make_settings(**overrides: Any) -> settings_module.Settings:
    plan_overrides = overrides.pop("plan", {})
    base: dict[str, Any] = {
        "plan": make_plan(**plan_overrides),
        "token": "s3cret",
        "pod_name": "web-0",
        "pod_namespace": "default",
        "pod_uid": "uid-web-0",
        "pod_ip": "127.0.0.1",
        "host_ip": "",
        "consul": settings_module.ConsulSettings(backend="none"),
        "idle_sample_interval": 0.2,
        "poll_interval": 0.05,
    }
    base.update(overrides)
    return settings_module.Settings(**base)


APP = str(Path(__file__).with_name("app.py"))
PIDS_CGROUP = Path("/sys/fs/cgroup/pids")


class FakeContainer:
    """Processes in a cgroup named after a container ID, as a runtime would place them.

    The cgroup v1 ``pids`` hierarchy is writable here; the sidecar finds the app
    by this ID in /proc/<pid>/cgroup exactly as it does in a pod.
    """

    def __init__(self, argv: list[str], *, prefix: list[str] | None = None, **popen: Any) -> None:
        """``prefix`` wraps argv, e.g. ``ip netns exec <pod>`` to run in a pod sandbox.

        The launcher joins the cgroup first: ``ip netns exec`` remounts /sys.
        """
        self.id = secrets.token_hex(32)
        self.cgroup = PIDS_CGROUP / "quiesce-tests" / f"cri-containerd-{self.id}.scope"
        self.cgroup.mkdir(parents=True)
        launcher = f'echo $$ > {self.cgroup}/cgroup.procs && exec "$@"'
        self.proc = subprocess.Popen(["sh", "-c", launcher, "sh", *(prefix or []), *argv], **popen)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.cgroup / "cgroup.procs").read_text().split()]
        except FileNotFoundError:
            return []

    def stop(self) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        for _ in range(50):
            try:
                self.cgroup.rmdir()
                break
            except OSError:
                time.sleep(0.05)
        with contextlib.suppress(OSError):  # the last test's container: leave no parent behind
            self.cgroup.parent.rmdir()


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {predicate}")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wall(iso: str) -> float:
    """``/status`` timestamps back to epoch seconds."""
    import datetime

    return (
        datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ")
        .replace(tzinfo=datetime.UTC)
        .timestamp()
    )


class ConsulAPI:
    """Direct HTTP calls to the real Consul agent: what registrars (apps, consul-k8s) do."""

    def __init__(self, addr: str) -> None:
        self.addr = addr
        self.base = f"http://{addr}"
        self._session: aiohttp.ClientSession | None = None
        self.registered: list[tuple[str, str]] = []  # (node or "", service id)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _put(self, path: str, body: Any = None) -> None:
        async with self.session.put(self.base + path, json=body) as resp:
            assert resp.status == 200, (path, resp.status, await resp.text())

    async def get(self, path: str) -> Any:
        async with self.session.get(self.base + path) as resp:
            assert resp.status == 200, (path, resp.status)
            return await resp.json()

    async def register_agent(self, **service: Any) -> str:
        service.setdefault("ID", f"{service['Name']}-{secrets.token_hex(3)}")
        await self._put("/v1/agent/service/register", service)
        self.registered.append(("", service["ID"]))
        return str(service["ID"])

    async def register_catalog(self, node: str, address: str, **service: Any) -> str:
        service.setdefault("ID", f"{service['Service']}-{secrets.token_hex(3)}")
        await self._put(
            "/v1/catalog/register", {"Node": node, "Address": address, "Service": service}
        )
        self.registered.append((node, service["ID"]))
        return str(service["ID"])

    async def agent_ids(self) -> set[str]:
        return set(await self.get("/v1/agent/services"))

    async def catalog_ids(self, name: str) -> set[tuple[str, str]]:
        return {(e["Node"], e["ServiceID"]) for e in await self.get(f"/v1/catalog/service/{name}")}

    async def passing_ids(self, name: str) -> set[str]:
        entries = await self.get(f"/v1/health/service/{name}?passing=1")
        return {e["Service"]["ID"] for e in entries}

    async def cleanup(self) -> None:
        for node, sid in self.registered:
            if node:
                await self._put("/v1/catalog/deregister", {"Node": node, "ServiceID": sid})
            else:
                async with self.session.put(f"{self.base}/v1/agent/service/deregister/{sid}"):
                    pass
        if self._session is not None:
            await self._session.close()
