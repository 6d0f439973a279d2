"""A real Consul agent in dev mode, listening on the rig's bridge address.

Pods reach it as they reach a node-local Consul agent: HTTP on the agent's
standard port 8500 of the node's address (each rig has its own bridge address,
so rigs side by side do not clash), so ``http://$(HOST_IP):8500``, the chart's
default, works on the rig as on a real node; a free port when 8500 is taken
there. DNS and every other port are picked free at start. Consul 1.14.11 is
the last MPL-2.0 release buildable from its own module (see README, "Test
rig"); the agent and catalog endpoints quiesce uses are unchanged in current
Consul.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.request
from pathlib import Path
from typing import Any

from quiesce.rig import binaries, process


@dataclasses.dataclass
class ConsulAgent:
    proc: process.ManagedProcess
    address: str
    http_port: int
    dns_port: int
    node_name: str

    @property
    def http_addr(self) -> str:
        """``host:port``, as ``CONSUL_HTTP_ADDR`` expects it."""
        return f"{self.address}:{self.http_port}"

    @property
    def url(self) -> str:
        return f"http://{self.http_addr}"

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        with urllib.request.urlopen(req, timeout=5) as resp:
            raw = resp.read()
        return json.loads(raw) if raw.strip() else None

    def register(self, service: dict[str, Any]) -> None:
        """Register a service with this agent (``/v1/agent/service/register``)."""
        self.request("PUT", "/v1/agent/service/register", service)

    def deregister(self, service_id: str) -> None:
        self.request("PUT", f"/v1/agent/service/deregister/{service_id}")

    def healthy_instances(self, service: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request(
            "GET", f"/v1/health/service/{service}?passing=1"
        )
        return result

    def stop(self) -> None:
        self.proc.stop()


#: The Consul agent's standard HTTP port: what a pod finds on its node.
STANDARD_HTTP_PORT = 8500


def start(workdir: Path, *, address: str, node_name: str, timeout: float = 30.0) -> ConsulAgent:
    http_port = (
        STANDARD_HTTP_PORT
        if process.port_free(address, STANDARD_HTTP_PORT)
        else process.free_port(address)
    )
    dns_port = process.free_port(address)
    ports = {
        "http": http_port,
        "dns": dns_port,
        "serf_lan": process.free_port(address),
        "serf_wan": process.free_port(address),
        "server": process.free_port(address),
        "grpc": -1,
        "grpc_tls": -1,
    }
    config = {
        "ports": ports,
        # Never phone home from a test rig.
        "disable_update_check": True,
        # TTL 0: each DNS answer reflects the catalog now; the discovery lag
        # under test is HAProxy's own resolution interval, as in production.
        "dns_config": {"service_ttl": {"*": "0s"}, "node_ttl": "0s"},
        "log_level": "warn",
    }
    config_file = workdir / "consul.json"
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(json.dumps(config))
    proc = process.ManagedProcess(
        "consul",
        [
            str(binaries.require("consul")),
            "agent",
            "-dev",
            "-node",
            node_name,
            "-bind",
            address,
            "-client",
            address,
            "-advertise",
            address,
            "-config-file",
            str(config_file),
        ],
        log=workdir / "logs" / "consul.log",
    ).start()
    agent = ConsulAgent(proc, address, http_port, dns_port, node_name)
    try:
        proc.wait_ready(
            lambda: bool(agent.request("GET", "/v1/status/leader")),
            timeout=timeout,
            what="electing itself leader",
        )
    except BaseException:
        proc.stop()
        raise
    return agent
