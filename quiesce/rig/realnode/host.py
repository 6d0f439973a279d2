"""Host settings a real node changes, saved before and restored after.

Most of what a kubelet and containerd touch is made private to the node (its
own mount and network namespaces, a cgroup of its own), but two things are
not:

- **global kernel settings**: the kubelet sets ``vm.overcommit_memory``,
  ``vm.panic_on_oom``, ``kernel.panic``, ``kernel.panic_on_oops``,
  ``kernel.keys.root_maxkeys`` and ``kernel.keys.root_maxbytes``, which no
  namespace isolates;
- **mount points**: a private bind mount needs an existing directory, so a
  fixed path the host lacks (``/var/lib/kubelet``...) is created empty on the
  host, then covered inside the node's mount namespace.

Several nodes (and several rigs) can run side by side, so this is a ledger,
``/run/quiesce-realnode-host.json``, kept under the rig's lock file: the first node records
the original values and the directories it creates; every node adds itself as
a user (pid and start time); the last one to leave restores the values and
removes the directories. A user whose process died is dropped, so a crashed
run is repaired by the next release (or by :func:`recover`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from quiesce.rig import network

LEDGER: Final = Path("/run/quiesce-realnode-host.json")
LOCK: Final = network.LOCK_FILE
"""The rig's own lock file (it stays, as every rig leaves it): no second lock file on the host."""

SYSCTLS: Final = (
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
)
"""Global kernel settings the kubelet changes (its ``protectKernelDefaults`` list)."""

PRIVATE_PATHS: Final = (
    "/var/lib/kubelet",
    "/var/log/pods",
    "/var/log/containers",
    "/var/lib/containerd",
    "/run/containerd",
    "/var/lib/cni",
    "/opt/containerd",
    "/etc/cni",
)
"""Fixed paths the kubelet, containerd or the CNI plugins use; private to each node."""


def sysctl_path(key: str) -> Path:
    return Path("/proc/sys") / key.replace(".", "/")


def read_sysctl(key: str) -> str:
    return sysctl_path(key).read_text().strip()


def write_sysctl(key: str, value: str) -> None:
    sysctl_path(key).write_text(value + "\n")


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields[19]


@contextlib.contextmanager
def _locked() -> Iterator[dict[str, Any]]:
    with open(LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state: dict[str, Any] = json.loads(LEDGER.read_text()) if LEDGER.exists() else {}
        yield state
        if state:
            tmp = LEDGER.with_suffix(".tmp")
            tmp.write_text(json.dumps(state, indent=2))
            tmp.rename(LEDGER)
        else:
            LEDGER.unlink(missing_ok=True)


def _make_dirs(paths: tuple[str, ...]) -> list[str]:
    """Create each missing path; returns every directory created, parents first."""
    created: list[str] = []
    for p in paths:
        missing = [d for d in [Path(p), *Path(p).parents] if not d.exists()]
        for d in reversed(missing):
            d.mkdir(mode=0o755)
            created.append(str(d))
    return created


def _alive_users(state: dict[str, Any]) -> dict[str, Any]:
    return {
        name: user
        for name, user in state.get("users", {}).items()
        if _start_time(user["pid"]) == user["start"]
    }


def acquire(user: str, pid: int) -> None:
    """Register ``user`` (a node, whose life is process ``pid``) before it changes the host.

    The first user records the original kernel settings and creates the
    missing mount points.
    """
    start = _start_time(pid)
    if start is None:
        raise ValueError(f"process {pid} is not running")
    with _locked() as state:
        users = _alive_users(state)
        if not users and state:
            # Left by runs that died: put the host back first.
            _restore(state)
            state.clear()
        if not state:
            state["sysctls"] = {key: read_sysctl(key) for key in SYSCTLS}
            state["created_dirs"] = _make_dirs(PRIVATE_PATHS)
        else:
            state["created_dirs"] += _make_dirs(PRIVATE_PATHS)
        users[user] = {"pid": pid, "start": start}
        state["users"] = users


def release(user: str) -> bool:
    """Drop ``user``; the last user restores the host. Returns True when it was restored."""
    with _locked() as state:
        if not state:
            return False
        users = _alive_users(state)
        users.pop(user, None)
        if users:
            state["users"] = users
            return False
        _restore(state)
        state.clear()
        return True


def recover() -> bool:
    """Restore the host if every recorded user has died (a crashed run)."""
    with _locked() as state:
        if not state or _alive_users(state):
            return False
        _restore(state)
        state.clear()
        return True


def _restore(state: dict[str, Any]) -> None:
    for key, value in state.get("sysctls", {}).items():
        with contextlib.suppress(OSError):
            if read_sysctl(key) != value:
                write_sysctl(key, value)
    for d in reversed(state.get("created_dirs", [])):
        with contextlib.suppress(FileNotFoundError, OSError):
            os.rmdir(d)  # only if empty: never anything a user put there
