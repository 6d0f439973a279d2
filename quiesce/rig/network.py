"""The rig's network: one bridge per rig, pods as network namespaces.

Laid out as the design decides ("Rig network"): a bridge on its own /24 inside
198.18.0.0/15 (the benchmarking range; never any other address); the bridge
address is the Node's IP. Each pod sandbox is a network namespace with its own
IP on the bridge; removing it deletes the namespace, so its IP disappears as a
deleted pod's does. A separate "client" namespace holds HAProxy and the load
generators, so their traffic reaches pods from a non-node address.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from quiesce.rig import errors

RIG_RANGE: Final = ipaddress.IPv4Network("198.18.0.0/15")
# Bridges take /24s from the lower half; each rig's service CIDR is the /24 at
# the same offset in the upper half, so two rigs never collide on either.
BRIDGE_RANGE: Final = ipaddress.IPv4Network("198.18.0.0/16")
LOCK_FILE: Final = Path("/run/quiesce-rig.lock")
FIRST_POD_HOST: Final = 101
"""Host index of the first address the node agent gives pods (its ``--first-pod-ip``)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise errors.RigError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def _used_subnets() -> set[ipaddress.IPv4Network]:
    out = _ip("-o", "-4", "addr", "show").stdout
    used = set()
    for line in out.splitlines():
        cidr = line.split()[3]
        net = ipaddress.ip_interface(cidr).network
        if isinstance(net, ipaddress.IPv4Network) and net.subnet_of(RIG_RANGE):
            used.add(net)
    return used


@contextlib.contextmanager
def _allocation_lock() -> Iterator[None]:
    # Two rigs starting side by side must not pick the same subnet.
    with open(LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


class Namespace:
    """A network namespace with one address on the rig's bridge."""

    def __init__(self, network: RigNetwork, name: str, ip: str, index: int) -> None:
        self.network = network
        self.name = name
        self.netns = f"{network.prefix}-{name}"
        self.ip = ip
        self._host_veth = f"{network.prefix}v{index}"

    def _create(self) -> None:
        peer = f"{self._host_veth}p"
        _ip("netns", "add", self.netns)
        _ip("link", "add", self._host_veth, "type", "veth", "peer", "name", peer)
        _ip("link", "set", self._host_veth, "master", self.network.bridge, "up")
        _ip("link", "set", peer, "netns", self.netns)
        self.exec_ip("link", "set", peer, "name", "eth0")
        self.exec_ip("addr", "add", f"{self.ip}/{self.network.subnet.prefixlen}", "dev", "eth0")
        self.exec_ip("link", "set", "eth0", "up")
        self.exec_ip("link", "set", "lo", "up")
        self.exec_ip("route", "add", "default", "via", self.network.host_ip)

    def exec_ip(self, *args: str) -> None:
        _ip("-n", self.netns, *args)

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` wrapped so it runs inside this namespace."""
        return ["ip", "netns", "exec", self.netns, *argv]

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        return subprocess.Popen(self.command(argv), **kwargs)

    def run(self, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        return subprocess.run(self.command(argv), **kwargs)

    def pids(self) -> list[int]:
        out = _ip("netns", "pids", self.netns, check=False).stdout
        return [int(p) for p in out.split()]

    def remove(self) -> None:
        """Kill every process in the namespace and delete it: the IP disappears."""
        for _ in range(20):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        _ip("netns", "del", self.netns, check=False)
        _ip("link", "del", self._host_veth, check=False)
        self.network._forget(self)


class PodSandbox(Namespace):
    """What a pod gets from a container runtime here: a netns and an IP."""


class RigNetwork:
    """A bridge on its own /24 inside 198.18.0.0/15, and the namespaces on it."""

    def __init__(self, subnet: ipaddress.IPv4Network) -> None:
        self.subnet = subnet
        # Names must fit in 15 characters (IFNAMSIZ): "q" + 3 hex digits.
        self.prefix = f"q{int(subnet.network_address) >> 8 & 0x1FF:03x}"
        self.bridge = f"{self.prefix}br"
        hosts = list(subnet.hosts())
        self.host_ip = str(hosts[0])
        self.service_cidr = ipaddress.IPv4Network((int(subnet.network_address) + (1 << 16), 24))
        # .2-.100 for the rig's own namespaces; the node agent's pods start at .101.
        self._free = [str(h) for h in hosts[1 : FIRST_POD_HOST - 1]]
        self._next_index = 0
        self.namespaces: dict[str, Namespace] = {}
        self.client: Namespace

    @classmethod
    def create(cls) -> RigNetwork:
        with _allocation_lock():
            used = _used_subnets()
            candidates = [s for s in BRIDGE_RANGE.subnets(new_prefix=24) if s not in used]
            if not candidates:
                raise errors.RigError("no free /24 left in 198.18.0.0/15 for another rig")
            net = cls(random.choice(candidates))
            _ip("link", "add", net.bridge, "type", "bridge")
            _ip("addr", "add", f"{net.host_ip}/24", "dev", net.bridge)
            _ip("link", "set", net.bridge, "up")
        net.client = net._add(Namespace, "client")
        return net

    def _add(self, kind: type[Namespace], name: str) -> Namespace:
        if name in self.namespaces:
            raise errors.RigError(f"namespace {name!r} already exists on {self.bridge}")
        if not self._free:
            raise errors.RigError(f"no free address left in {self.subnet}")
        self._next_index += 1
        ns = kind(self, name, self._free.pop(0), self._next_index)
        try:
            ns._create()
        except Exception:
            _ip("netns", "del", ns.netns, check=False)
            _ip("link", "del", ns._host_veth, check=False)
            raise
        self.namespaces[name] = ns
        return ns

    def sandbox(self, name: str) -> PodSandbox:
        sandbox = self._add(PodSandbox, name)
        assert isinstance(sandbox, PodSandbox)
        return sandbox

    def _forget(self, ns: Namespace) -> None:
        if self.namespaces.pop(ns.name, None) is not None:
            self._free.append(ns.ip)  # reused after every other free address

    def destroy(self) -> None:
        for ns in list(self.namespaces.values()):
            ns.remove()
        _ip("link", "del", self.bridge, check=False)
