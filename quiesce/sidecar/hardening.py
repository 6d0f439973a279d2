"""The sidecar's own process hardening: it makes itself non-dumpable at start.

In signal mode the sidecar may run as the app's own UID (a process signals
another of the same UID with no capability, so Pod Security "restricted"
admits the pod). With a shared PID namespace and the same UID, the app could
otherwise read the sidecar's environment (the /prestop token, the plan) and
files (its mounted Consul token) through ``/proc/<pid>/environ``,
``/proc/<pid>/root`` and ``/proc/<pid>/mem``, or ptrace it. A non-dumpable
process's ``/proc/<pid>`` files belong to root, and ptrace access needs
CAP_SYS_PTRACE (proc(5), ptrace(2) "Ptrace access mode checking"), so a
process of the app's UID without capabilities can do neither.

What it cannot cover: the moments between the exec and this call (the
environment is there from the exec), and a root app with CAP_SYS_PTRACE.
docs/security.md says so. Costs: ``import ctypes``, ~0.4 MB RSS (measured).
"""

from __future__ import annotations

import ctypes
import logging
import os
from typing import Final

log = logging.getLogger("quiesce.sidecar")

#: <linux/prctl.h>
PR_GET_DUMPABLE: Final = 3
PR_SET_DUMPABLE: Final = 4


def _prctl(option: int, arg: int = 0) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    prctl = libc.prctl
    prctl.restype = ctypes.c_int
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    result: int = prctl(option, arg, 0, 0, 0)
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    return result


def make_non_dumpable() -> bool:
    """``prctl(PR_SET_DUMPABLE, 0)``: True when the process is non-dumpable now.

    Never fatal: a kernel or libc without prctl logs a warning and the sidecar runs on.
    """
    try:
        _prctl(PR_SET_DUMPABLE, 0)
    except (OSError, AttributeError) as exc:
        log.warning(
            "Could not make the sidecar non-dumpable (prctl PR_SET_DUMPABLE): %s; a process of "
            "the same UID may read its environment through /proc.",
            exc,
        )
        return False
    return not dumpable()


def dumpable() -> bool:
    """Whether the kernel would let a process of the same UID read this one's /proc files."""
    return _prctl(PR_GET_DUMPABLE) != 0
