"""The agent's container runtime: pod sandboxes and container processes.

A pod is a :class:`~quiesce.rig.network.PodSandbox` (its own network
namespace and IP on the rig's bridge). A container is a process tree started
in that namespace, in its own cgroup ``/sys/fs/cgroup/pids/quiesce/<pod-uid>/<id>``
(the cgroup v1 ``pids`` hierarchy is writable here), so the sidecar finds a
container's main process by its ID in ``/proc/<pid>/cgroup`` exactly as on a
real node. The ID is 64 hex digits, as containerd's are.

PID namespaces as a runtime makes them: without ``shareProcessNamespace``
every container gets its own (its main process is PID 1 there, which ignores
signals it has no handler for, as in Docker); with it, a pause process owns
the pod's PID namespace and every container joins it. Each container has a
private mount namespace with ``/proc`` for its PID namespace and its
``volumeMounts`` bind-mounted from the pod's volume directories (the
service-account token is one: the projected ``kube-api-access-*`` volume).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from quiesce.rig import network

log = logging.getLogger(__name__)

CGROUP_ROOT: Final = Path("/sys/fs/cgroup/pids/quiesce")
RUNTIME: Final = "rig"
"""The runtime name in ``containerID: rig://<id>``."""

# Positional args: $1 cgroup dir, $2 working dir, $3 "proc" to mount /proc
# (joining a shared PID namespace), $4 number of mounts, then per mount
# source, target, "ro"|"rw" (parents before children); then argv. Missing
# mount points are created. Every source is first bound into a private staging
# tmpfs, so no mount (a volume at /tmp, say) can hide a later mount's source.
_LAUNCH: Final = """
cg=$1; wd=$2; proc=$3; n=$4; shift 4
if [ "$proc" = proc ]; then mount -t proc proc /proc || exit 126; fi
stage=/run/.quiesce-stage
mkdir -p "$stage" && mount -t tmpfs -o size=1m,mode=700 stage "$stage" || exit 126
i=0
for a in "$@"; do
  [ "$i" -ge "$((n * 3))" ] && break
  case $((i % 3)) in
    0) src=$a ;;
    1) k=$((i / 3))
       if [ -d "$src" ]; then mkdir "$stage/$k"; else : > "$stage/$k"; fi
       mount --bind "$src" "$stage/$k" || exit 126 ;;
  esac
  i=$((i + 1))
done
i=0
while [ "$i" -lt "$n" ]; do
  dst=$2; mode=$3; shift 3
  if [ -d "$stage/$i" ]; then mkdir -p "$dst"
  else mkdir -p "$(dirname "$dst")"; [ -e "$dst" ] || : > "$dst"; fi
  mount --bind "$stage/$i" "$dst" || exit 126
  if [ "$mode" = ro ]; then mount -o remount,bind,ro "$dst" || exit 126; fi
  i=$((i + 1))
done
echo 0 > "$cg/cgroup.procs" || exit 126
cd "$wd" || exit 126
exec "$@"
"""

_EXEC: Final = 'cg=$1; wd=$2; shift 2; echo 0 > "$cg/cgroup.procs" || exit 126; cd "$wd"; exec "$@"'


@dataclasses.dataclass(frozen=True)
class Mount:
    """A bind mount into one container: a pod volume directory (or file) at a path."""

    source: Path
    target: str
    read_only: bool = False


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"the node agent needs {name} (util-linux)")
    return path


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


class Container:
    """One started container: its process, cgroup and ID."""

    def __init__(self, *, name: str, cgroup: Path, proc: asyncio.subprocess.Process) -> None:
        self.name = name
        self.cgroup = cgroup
        self.id = cgroup.name
        self.proc = proc
        self.started_at = time.time()
        self.killed = False
        """SIGKILL was sent: util-linux's unshare reports that as exit code 1."""
        self._main: int | None = None

    @property
    def uri(self) -> str:
        return f"{RUNTIME}://{self.id}"

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.cgroup / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def main_pid(self) -> int | None:
        """The container's main process (host PID): the one whose parent is outside."""
        if self._main is not None and self._main in self.pids():
            return self._main
        pids = self.pids()
        for pid in pids:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid not in pids:
                self._main = pid
                return pid
        return None

    async def wait_main(self, timeout: float = 5.0) -> int | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.main_pid()
            if pid is not None:
                return pid
            if self.proc.returncode is not None:
                return None
            await asyncio.sleep(0.01)
        return None

    def running(self) -> bool:
        return self.proc.returncode is None

    def signal(self, signum: int) -> bool:
        """Send ``signum`` to the main process; False if it is gone."""
        pid = self.main_pid()
        if pid is None:
            return False
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            return False
        return True

    def kill_all(self) -> None:
        self.killed = True
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    async def wait(self) -> int:
        """The main process's exit: its code, or minus the signal that killed it."""
        code = await self.proc.wait()
        # unshare/nsenter re-raise a child's fatal signal on themselves, except
        # SIGKILL (no handler can be reset for it: they exit 1 instead).
        if self.killed and code in (1, -signal.SIGKILL):
            return -signal.SIGKILL
        return code

    def remove_cgroup(self) -> None:
        for _ in range(50):
            self.kill_all()
            try:
                self.cgroup.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)
        log.warning("cgroup %s could not be removed", self.cgroup)


class Sandbox:
    """A pod's sandbox: the netns, the pod cgroup, an optional shared PID namespace."""

    def __init__(
        self,
        *,
        netns: network.PodSandbox,
        pod_uid: str,
        share_pid: bool,
        log_dir: Path,
    ) -> None:
        self.netns = netns
        self.ip = netns.ip
        self.pod_uid = pod_uid
        self.share_pid = share_pid
        self.log_dir = log_dir
        self.cgroup = CGROUP_ROOT / pod_uid
        self.cgroup.mkdir(parents=True, exist_ok=True)
        self.pause: asyncio.subprocess.Process | None = None
        self.pause_pid: int | None = None
        self.containers: list[Container] = []
        self._nsenter = _tool("nsenter")
        self._unshare = _tool("unshare")

    @property
    def netns_path(self) -> str:
        return f"/run/netns/{self.netns.netns}"

    async def start(self) -> None:
        """Start the pause process when the pod shares one PID namespace."""
        if not self.share_pid:
            return
        pause_cg = self.cgroup / "pause"
        pause_cg.mkdir(exist_ok=True)
        script = (
            f'echo 0 > "$1/cgroup.procs"; exec "{sys.executable}" -m quiesce.rig.nodeagent.pause'
        )
        self.pause = await asyncio.create_subprocess_exec(
            self._nsenter,
            f"--net={self.netns_path}",
            "--",
            self._unshare,
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "--",
            "/bin/sh",
            "-c",
            script,
            "sh",
            str(pause_cg),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            kids = _children(self.pause.pid)
            procs = (pause_cg / "cgroup.procs").read_text().split()
            if kids and procs:
                self.pause_pid = kids[0]
                return
            await asyncio.sleep(0.01)
        raise RuntimeError(f"pause process of pod {self.pod_uid} did not start")

    def _enter(self) -> list[str]:
        """The prefix that puts a new process into the pod's namespaces and a new mount ns."""
        if self.share_pid:
            assert self.pause_pid is not None
            return [
                self._nsenter,
                f"--target={self.pause_pid}",
                "--pid",
                "--net",
                "--",
                self._unshare,
                "--mount",
                "--propagation=private",
                "--",
            ]
        return [
            self._nsenter,
            f"--net={self.netns_path}",
            "--",
            self._unshare,
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "--propagation=private",
            "--",
        ]

    async def start_container(
        self,
        *,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        workdir: str,
        mounts: Sequence[Mount],
        log_file: Path,
    ) -> Container:
        cid = secrets.token_hex(32)
        cgroup = self.cgroup / cid
        cgroup.mkdir()
        full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
        mount_args: list[str] = []
        for m in mount_order(mounts):
            mount_args += [str(m.source), m.target, "ro" if m.read_only else "rw"]
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "ab") as out:
            proc = await asyncio.create_subprocess_exec(
                *self._enter(),
                "/bin/sh",
                "-c",
                _LAUNCH,
                "sh",
                str(cgroup),
                workdir or "/",
                "proc" if self.share_pid else "-",
                str(len(mounts)),
                *mount_args,
                *argv,
                env=full_env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        container = Container(name=name, cgroup=cgroup, proc=proc)
        self.containers.append(container)
        return container

    async def exec_in(
        self,
        container: Container,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        workdir: str,
        timeout: float | None,
    ) -> tuple[int, bytes]:
        """Run ``command`` inside ``container`` (its namespaces and cgroup), as CRI exec does."""
        main = container.main_pid()
        if main is None:
            raise RuntimeError(f"container {container.name} is not running")
        full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
        proc = await asyncio.create_subprocess_exec(
            self._nsenter,
            f"--target={main}",
            "--pid",
            "--mount",
            "--net",
            "--",
            "/bin/sh",
            "-c",
            _EXEC,
            "sh",
            str(container.cgroup),
            workdir or "/",
            *command,
            env=full_env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except (TimeoutError, asyncio.CancelledError):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            raise
        return proc.returncode or 0, out

    def kill_everything(self) -> None:
        for c in self.containers:
            c.kill_all()
        if self.pause is not None and self.pause.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pause.pid, signal.SIGKILL)

    async def remove(self) -> None:
        """Kill what is left, remove cgroups and the netns: the pod IP disappears."""
        self.kill_everything()
        for c in self.containers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(c.proc.wait(), 2)
            c.remove_cgroup()
        if self.pause is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.pause.wait(), 2)
            pause_cg = self.cgroup / "pause"
            for _ in range(50):
                try:
                    pause_cg.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    for pid in (pause_cg / "cgroup.procs").read_text().split():
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(int(pid), signal.SIGKILL)
                    await asyncio.sleep(0.02)
        await asyncio.to_thread(self.netns.remove)
        with contextlib.suppress(OSError):
            self.cgroup.rmdir()


class MountPoints:
    """Mount points missing on the host, created while a container needs them.

    A bind mount needs its target to exist, and the containers share the host's
    file system: the agent creates what is missing (empty directories, or an
    empty file for a file mount), counts its users, and removes what it created
    once the last user is gone, so no pod leaves ``/etc/consul`` behind.
    """

    def __init__(self) -> None:
        self._users: dict[str, int] = {}
        self._created: dict[str, list[Path]] = {}

    def acquire(self, target: str, *, is_dir: bool) -> None:
        path = Path(target)
        if target not in self._users:
            created: list[Path] = []
            missing = [p for p in [path, *path.parents] if not p.exists()]
            for p in reversed(missing):
                if p == path and not is_dir:
                    p.touch()
                else:
                    p.mkdir()
                created.append(p)
            self._created[target] = created
        self._users[target] = self._users.get(target, 0) + 1

    def release(self, target: str) -> None:
        left = self._users.get(target, 0) - 1
        if left > 0:
            self._users[target] = left
            return
        self._users.pop(target, None)
        for p in reversed(self._created.pop(target, [])):
            with contextlib.suppress(OSError):
                if p.is_dir() and not p.is_symlink():
                    p.rmdir()
                elif p.stat().st_size == 0:
                    p.unlink()


def prepare_host() -> None:
    """The cgroup root must exist."""
    CGROUP_ROOT.mkdir(parents=True, exist_ok=True)


def release_host() -> None:
    """Remove the cgroup root once no pod of any node agent is left in it (the host as found).

    Another rig's agent may still hold pods there: then it stays (rmdir of a non-empty
    cgroup fails), and that agent removes it; a pod's cgroup is made with its parents.
    """
    with contextlib.suppress(OSError):
        CGROUP_ROOT.rmdir()


def mount_order(mounts: Sequence[Mount]) -> list[Mount]:
    """Parents before children (``/etc`` before ``/etc/app``), as the kubelet mounts.

    Sources cannot be hidden by a mount any more: the launcher binds every
    source into a private staging tmpfs first.
    """
    return sorted(mounts, key=lambda m: len(Path(m.target).parts))
