"""HAProxy in the client namespace, discovering servers through Consul DNS.

This is how many teams run it in production: ``server-template`` slots filled
from the SRV records of ``_<service>._tcp.service.consul``, re-resolved every
``discovery_interval`` seconds. That interval is the discovery lag quiesce has
to wait out: a deregistered instance keeps receiving traffic until the next
resolution. Two profiles matter (design, "Measuring honestly"): HAProxy's
defaults (``retries 3``, no redispatch) and ``option redispatch``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import shutil
import socket
from pathlib import Path

from quiesce.rig import errors, network, process


@dataclasses.dataclass(frozen=True)
class Profile:
    """What the load balancer does; stated with every measurement."""

    discovery_interval: float = 5.0
    redispatch: bool = False
    retries: int = 3
    connect_timeout: float = 3.0
    server_timeout: float = 30.0
    slots: int = 10
    resolve_retries: int = 3
    retry_timeout: float = 1.0

    @property
    def worst_case_lag(self) -> float:
        """The longest a deregistered server can keep receiving requests.

        The next resolution comes after ``timeout resolve`` (the interval); when
        that query times out (``resolve_retries`` x ``timeout retry``), HAProxy
        keeps the last good answer for ``hold valid`` (the interval again) until a
        query succeeds; plus 1 s for HAProxy to apply it. Measured: 13 s at a 5 s
        interval on a loaded machine, which 2 x interval + 2 s did not cover.
        This is quiesce's ``converge-max`` in every rig scenario: the user's LB's
        worst case, which they know from its configuration.
        """
        interval = self.discovery_interval
        return interval + self.resolve_retries * self.retry_timeout + interval + 1.0

    def describe(self) -> str:
        return (
            f"HAProxy, Consul DNS SRV every {self.discovery_interval:g} s, retries "
            f"{self.retries}, {'option redispatch' if self.redispatch else 'no redispatch'}, "
            f"timeout connect {self.connect_timeout:g} s"
        )


def _ms(seconds: float) -> str:
    return f"{int(seconds * 1000)}ms"


def config_text(
    *, service: str, bind: str, port: int, dns: str, stats_socket: Path, profile: Profile
) -> str:
    return f"""\
global
    stats socket {stats_socket} mode 600 level admin
    log stdout format raw local0 info

resolvers consul
    nameserver consul {dns}
    accepted_payload_size 8192
    resolve_retries {profile.resolve_retries}
    timeout resolve {_ms(profile.discovery_interval)}
    timeout retry {_ms(profile.retry_timeout)}
    hold valid {_ms(profile.discovery_interval)}
    hold obsolete 0s

defaults
    mode http
    log global
    option httplog
    timeout connect {_ms(profile.connect_timeout)}
    timeout client 60s
    timeout server {_ms(profile.server_timeout)}
    retries {profile.retries}
    {"option redispatch" if profile.redispatch else "# no option redispatch (HAProxy default)"}

frontend fe
    bind {bind}:{port}
    default_backend be

backend be
    balance roundrobin
    server-template app {profile.slots} _{service}._tcp.service.consul resolvers consul \
resolve-prefer ipv4 init-addr none
"""


@dataclasses.dataclass
class HAProxy:
    proc: process.ManagedProcess
    address: str
    port: int
    stats_socket: Path
    profile: Profile

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    def command(self, cmd: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(self.stats_socket))
            s.sendall(cmd.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def active_servers(self) -> set[str]:
        """``ip:port`` of every backend slot currently filled and not in maintenance."""
        rows = csv.DictReader(io.StringIO(self.command("show stat").lstrip("# ")))
        active = set()
        for row in rows:
            if row.get("pxname") != "be" or row.get("svname") in ("BACKEND", "FRONTEND"):
                continue
            addr = row.get("addr") or ""
            if addr and not row.get("status", "").startswith("MAINT"):
                active.add(addr)
        return active

    def stop(self) -> None:
        self.proc.stop()


def start(
    workdir: Path,
    *,
    namespace: network.Namespace,
    dns: str,
    service: str,
    profile: Profile | None = None,
    name: str = "haproxy",
    port: int = 8080,
    timeout: float = 15.0,
) -> HAProxy:
    profile = profile or Profile()
    binary = shutil.which("haproxy")
    if binary is None:
        raise errors.MissingTool("haproxy", "install it with `apt-get install haproxy`")
    # HAProxy binds with SO_REUSEPORT, so a second one on a taken port would
    # silently share it: check first, and say which component wanted it.
    listening = namespace.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True)
    if listening.stdout.strip():
        raise errors.PortInUse(name, namespace.ip, port)
    stats = workdir / f"{name}.sock"
    cfg = workdir / f"{name}.cfg"
    cfg.write_text(
        config_text(
            service=service,
            bind=namespace.ip,
            port=port,
            dns=dns,
            stats_socket=stats,
            profile=profile,
        )
    )
    proc = process.ManagedProcess(
        name,
        [binary, "-db", "-f", str(cfg)],
        log=workdir / "logs" / f"{name}.log",
        netns=namespace.netns,
    )
    proc.start()
    lb = HAProxy(proc, namespace.ip, port, stats, profile)
    try:
        proc.wait_ready(lambda: stats.exists() and bool(lb.command("show info")), timeout=timeout)
    except BaseException:
        proc.stop()
        raise
    return lb
