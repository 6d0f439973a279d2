"""The real nodes' cgroups: find the hierarchies, empty a tree, remove it.

Each node owns ``quiesce-<bridge>-<name>`` in every hierarchy (cgroup v1 has
one per controller); teardown SIGKILLs what is left there and removes the
directories deepest first, retrying while a dying process still counts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from quiesce.rig import errors

CGROUP_FS: Final = Path("/sys/fs/cgroup")


def cgroup_hierarchies() -> list[Path]:
    """Every cgroup hierarchy mounted under /sys/fs/cgroup (v1 controllers, named, unified)."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        fstype = fields[fields.index("-") + 1]
        mount_point = Path(fields[4])
        if fstype in ("cgroup", "cgroup2") and mount_point.is_relative_to(CGROUP_FS):
            found.append(mount_point)
    return found


def pids_in(tops: Sequence[Path]) -> set[int]:
    pids: set[int] = set()
    for top in tops:
        for procs in top.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(p) for p in procs.read_text().split())
    return pids


def kill_trees(tops: Sequence[Path], what: str) -> set[int]:
    """SIGKILL everything in the cgroup trees until they are empty; returns the pids seen."""
    seen: set[int] = set()
    for _ in range(50):
        pids = pids_in(tops)
        if not pids:
            return seen
        seen |= pids
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    raise errors.RigError(f"{what}: processes survive in its cgroups: {pids_in(tops)}")


def remove_trees(tops: Sequence[Path]) -> None:
    for top in tops:
        if not top.exists():
            continue
        for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            _rmdir(d)
        _rmdir(top)


def _rmdir(d: Path) -> None:
    for _ in range(50):
        try:
            d.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:  # EBUSY while a dying process still counts
            time.sleep(0.1)
    d.rmdir()
