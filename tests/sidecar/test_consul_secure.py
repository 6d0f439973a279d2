"""Deregistration against a real Consul with ACLs and TLS, configured as Consul's tools are.

A second Consul dev agent (the rig's binary) with ACLs on (default deny) and
HTTPS only. The sidecar reads ``CONSUL_HTTP_ADDR=https://...``,
``CONSUL_HTTP_TOKEN_FILE`` and ``CONSUL_CACERT`` exactly like ``consul`` does.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from quiesce.rig import binaries, process
from quiesce.sidecar import settings as settings_module
from quiesce.sidecar.consul_backend import ConsulBackend, PodIdentity

from .helpers import wait_for

pytestmark = pytest.mark.rig

ROOT_TOKEN = "3f0a7c39-5b43-4a52-9d34-quiesce-root"
POD = PodIdentity(name="api-0", namespace="shop", uid="u-api-0", ip="198.18.240.9")


@dataclass
class SecureConsul:
    https: str
    ca: Path
    proc: subprocess.Popen[bytes]

    def call(self, method: str, path: str, body: Any = None) -> Any:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        req = urllib.request.Request(
            f"https://{self.https}{path}",
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"X-Consul-Token": ROOT_TOKEN},
        )
        with urllib.request.urlopen(req, context=ctx, timeout=5) as resp:
            raw = resp.read()
        return json.loads(raw) if raw.strip() else None


@pytest.fixture(scope="module")
def secure_consul(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureConsul]:
    consul = str(binaries.require("consul"))
    work = tmp_path_factory.mktemp("secure-consul")
    for argv in (["tls", "ca", "create"], ["tls", "cert", "create", "-server", "-dc", "dc1"]):
        subprocess.run([consul, *argv], cwd=work, check=True, capture_output=True)
    port = process.free_port("127.0.0.1")
    config = {
        "ports": {
            "http": -1,
            "https": port,
            "dns": -1,
            "grpc": -1,
            "grpc_tls": -1,
            "serf_lan": process.free_port("127.0.0.1"),
            "serf_wan": process.free_port("127.0.0.1"),
            "server": process.free_port("127.0.0.1"),
        },
        "disable_update_check": True,
        "acl": {
            "enabled": True,
            "default_policy": "deny",
            "tokens": {"initial_management": ROOT_TOKEN, "agent": ROOT_TOKEN},
        },
        "tls": {
            "defaults": {
                "ca_file": str(work / "consul-agent-ca.pem"),
                "cert_file": str(work / "dc1-server-consul-0.pem"),
                "key_file": str(work / "dc1-server-consul-0-key.pem"),
                "verify_incoming": False,
            }
        },
        "log_level": "warn",
    }
    (work / "consul.json").write_text(json.dumps(config))
    log = open(work / "consul.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            consul,
            "agent",
            "-dev",
            "-node",
            "secure",
            "-bind",
            "127.0.0.1",
            "-client",
            "127.0.0.1",
            "-config-file",
            str(work / "consul.json"),
        ],
        stdout=log,
        stderr=log,
    )
    agent = SecureConsul(f"127.0.0.1:{port}", work / "consul-agent-ca.pem", proc)

    def leader() -> bool:
        try:
            return bool(agent.call("GET", "/v1/status/leader"))
        except OSError:
            return False

    try:
        wait_for(leader, timeout=30, interval=0.2)
        yield agent
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def backend_from_env(env: dict[str, str]) -> ConsulBackend:
    consul = settings_module.consul_from_env({"QUIESCE_CONSUL_TIMEOUT": "1", **env})
    return ConsulBackend(consul, pod=POD)


def register(agent: SecureConsul, name: str) -> str:
    sid = f"{name}-1"
    agent.call(
        "PUT",
        "/v1/agent/service/register",
        {"ID": sid, "Name": name, "Address": POD.ip, "Port": 80},
    )
    return sid


async def test_token_file_and_ca_file_are_read_as_consuls_tools_read_them(
    secure_consul: SecureConsul, tmp_path: Path
) -> None:
    sid = register(secure_consul, "secure-ok")
    token_file = tmp_path / "token"
    token_file.write_text(ROOT_TOKEN + "\n")
    b = backend_from_env(
        {
            "CONSUL_HTTP_ADDR": f"https://{secure_consul.https}",
            "CONSUL_HTTP_TOKEN": "ignored-when-a-token-file-is-set",
            "CONSUL_HTTP_TOKEN_FILE": str(token_file),
            "CONSUL_CACERT": str(secure_consul.ca),
        }
    )
    try:
        report = await b.deregister(time.monotonic() + 5)
    finally:
        await b.close()
    assert report.failures == []
    assert [i.service_id for i in report.deregistered] == [sid]
    assert sid not in secure_consul.call("GET", "/v1/agent/services")


async def test_a_bad_token_is_a_403_retried_then_reported_and_nothing_is_removed(
    secure_consul: SecureConsul,
) -> None:
    sid = register(secure_consul, "secure-denied")
    b = backend_from_env(
        {
            "CONSUL_HTTP_ADDR": f"https://{secure_consul.https}",
            "CONSUL_HTTP_TOKEN": "00000000-0000-0000-0000-000000000000",
            "CONSUL_CACERT": str(secure_consul.ca),
        }
    )
    try:
        # The budget ends the retries; wait_for only gives up on a hang (a failure).
        report = await asyncio.wait_for(b.deregister(time.monotonic() + 3), timeout=30)
    finally:
        await b.close()
    errors = " ".join(f["error"] for f in report.failures)
    assert "ACL not found" in errors or "Permission denied" in errors or "403" in errors, errors
    assert secure_consul.https in errors
    assert sid in secure_consul.call("GET", "/v1/agent/services")


async def test_an_untrusted_certificate_is_reported(secure_consul: SecureConsul) -> None:
    b = backend_from_env(
        {"CONSUL_HTTP_ADDR": f"https://{secure_consul.https}", "CONSUL_HTTP_TOKEN": ROOT_TOKEN}
    )
    try:
        report = await b.deregister(time.monotonic() + 2)
    finally:
        await b.close()
    errors = " ".join(f["error"] for f in report.failures)
    assert "certificate verify failed" in errors or "CERTIFICATE_VERIFY_FAILED" in errors, errors
