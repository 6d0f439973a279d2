"""Step 3, signal: find the app's main process and stop it the way the app wants.

Three ways: return from the hook (the kubelet then sends the container's stop
signal), send the plan's signal (SIGQUIT for nginx, ...) to the app's main
process, or POST the app's shutdown URL.

The main process is found in the shared PID namespace by its container: a
process belongs to a container when the container's ID appears in
``/proc/<pid>/cgroup`` (never by name: names lie, and two containers may run
the same binary). Its main process is the one whose parent is outside the
container. A main process that is a shell (``sh -c``) with children and no
handler for the stop signal will not forward it (seed lesson): reported.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass

from quiesce import values

log = logging.getLogger(__name__)

SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "busybox"})
_HEX_ID = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class AppProcess:
    pid: int
    container_id: str
    argv: tuple[str, ...]
    children: tuple[int, ...]
    caught: frozenset[int]
    """Signals the process has a handler for (SigCgt)."""

    @property
    def name(self) -> str:
        return os.path.basename(self.argv[0]) if self.argv else "?"

    def swallows(self, signum: int) -> bool:
        """A shell with children and no handler for ``signum`` does not forward it."""
        return self.name in SHELLS and bool(self.children) and signum not in self.caught

    def as_json(self) -> dict[str, object]:
        return {
            "pid": self.pid,
            "container_id": self.container_id[:12],
            "argv": list(self.argv),
            "children": list(self.children),
        }


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _status_fields(proc_root: str, pid: int) -> dict[str, str]:
    text = _read(f"{proc_root}/{pid}/status") or ""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def own_container_ids(proc_root: str = "/proc") -> frozenset[str]:
    """Container IDs in our own cgroup path (to tell our container from the app's)."""
    text = _read(f"{proc_root}/self/cgroup") or ""
    return frozenset(_HEX_ID.findall(text))


def others_visible(proc_root: str = "/proc") -> bool:
    """Whether any process outside our own container is visible.

    Without ``shareProcessNamespace`` a container sees only its own processes:
    then an app container with no visible process is unknown, not gone.
    """
    own = own_container_ids(proc_root)
    if not own:
        return True  # not in a container we can tell apart: everything is visible
    for entry in os.listdir(proc_root):
        if entry.isdigit():
            cgroup = _read(f"{proc_root}/{entry}/cgroup")
            if cgroup is not None and not any(cid in cgroup for cid in own):
                return True
    return False


def processes_of(container_id: str, proc_root: str = "/proc") -> dict[int, int]:
    """pid -> ppid of every process whose cgroup path names ``container_id``."""
    found: dict[int, int] = {}
    for entry in os.listdir(proc_root):
        if not entry.isdigit():
            continue
        cgroup = _read(f"{proc_root}/{entry}/cgroup")
        if cgroup is None or container_id not in cgroup:
            continue
        ppid = _status_fields(proc_root, int(entry)).get("PPid", "0")
        found[int(entry)] = int(ppid or 0)
    return found


def main_process(container_id: str, proc_root: str = "/proc") -> AppProcess | None:
    """The container's main process (its parent is outside the container), or None."""
    procs = processes_of(container_id, proc_root)
    roots = sorted(pid for pid, ppid in procs.items() if ppid not in procs)
    if not roots:
        return None
    pid = roots[0]
    raw = _read(f"{proc_root}/{pid}/cmdline") or ""
    argv = tuple(a for a in raw.split("\0") if a)
    children = tuple(sorted(p for p, pp in procs.items() if pp == pid))
    caught_mask = int(_status_fields(proc_root, pid).get("SigCgt", "0") or "0", 16)
    caught = frozenset(n for n in range(1, 65) if caught_mask & (1 << (n - 1)))
    return AppProcess(
        pid=pid, container_id=container_id, argv=argv, children=children, caught=caught
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie has exited: only its parent has not reaped it yet
    state = _status_fields("/proc", pid).get("State", "")
    return not state.startswith("Z")


def send(pid: int, signum: int) -> None:
    os.kill(pid, signum)


def signal_name(signum: int | None) -> str:
    """``SIGQUIT`` as :func:`quiesce.values.signal_name` spells it; None: the stop signal."""
    if signum is None:
        return "the container's stop signal"
    return values.signal_name(signum)
