"""One pod's life on the node: start, probe, report, restart, terminate.

The shape follows pkg/kubelet/pod_workers.go: one worker per pod UID that
takes the latest pod object, syncs it while it runs, switches to termination
once the pod has a ``deletionTimestamp`` (or is gone from the API), and ends by
removing the sandbox and deleting the pod with grace 0, as the status manager
does (pkg/kubelet/status/status_manager.go ``syncPod`` / ``canBeDeleted``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import signal
import time
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, Protocol

from quiesce.rig import network
from quiesce.rig.nodeagent import api, envvars, handlers, images, runtime, termination, volumes

log = logging.getLogger(__name__)

STATUS_INTERVAL = 0.05
"""At most one status write per pod per this many seconds (changes coalesce)."""


def now_rfc3339(ts: float | None = None) -> str:
    moment = datetime.datetime.fromtimestamp(ts if ts is not None else time.time(), datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Node(Protocol):
    """What a worker needs from the agent."""

    api: api.Api
    node_name: str
    node_ip: str
    service_env: dict[str, str]
    workdir: Path
    backoff_initial: float
    backoff_max: float

    def new_sandbox(self, name: str) -> network.PodSandbox: ...

    def release_sandbox(self, sandbox: network.PodSandbox) -> None: ...

    @property
    def mount_points(self) -> runtime.MountPoints: ...

    async def event(
        self,
        pod: Mapping[str, Any],
        *,
        reason: str,
        message: str,
        type_: str = "Normal",
        field_path: str | None = None,
    ) -> None: ...


@dataclasses.dataclass
class ContainerRun:
    """One container of the spec, across restarts."""

    spec: dict[str, Any]
    kind: str  # "init", "sidecar" or "regular"
    current: runtime.Container | None = None
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    waiting_reason: str = "ContainerCreating"
    waiting_message: str = ""
    terminated: dict[str, Any] | None = None
    last_terminated: dict[str, Any] | None = None
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    stopping: bool = False
    """A kill is in progress: an exit is not a crash, do not restart."""
    start_failed: bool = False
    """The last start failed before a process ran (config error): retry it."""
    probe_tasks: list[asyncio.Task[None]] = dataclasses.field(default_factory=list)
    exited: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def field_path(self) -> str:
        section = "initContainers" if self.kind != "regular" else "containers"
        return f"spec.{section}{{{self.name}}}"

    def running(self) -> bool:
        return self.current is not None and self.current.running()


def _exit_code(returncode: int) -> tuple[int, int | None]:
    """(exitCode, signal) as a runtime reports them: killed by N -> 128+N."""
    if returncode < 0:
        return 128 - returncode, -returncode
    return returncode, None


class PodWorker:
    def __init__(self, node: Node, pod: dict[str, Any]) -> None:
        self.node = node
        self.pod = pod
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        spec = pod["spec"]
        self.runs: list[ContainerRun] = [
            ContainerRun(spec=c, kind="sidecar" if termination.is_sidecar(c) else "init")
            for c in spec.get("initContainers") or []
        ] + [ContainerRun(spec=c, kind="regular") for c in spec.get("containers") or []]
        self.sandbox: runtime.Sandbox | None = None
        self.pod_ip = ""
        self.start_time = now_rfc3339()
        self.initialized = False
        self.sandbox_ready = False
        self.phase = "Pending"
        self.terminating = False
        self.gone_from_api = False
        self.grace: int | None = None
        self.kill_deadline = float("inf")
        self._deadline_waiters: list[asyncio.Future[None]] = []
        self._status_dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._main: asyncio.Task[None] | None = None
        self._sandbox_task: asyncio.Future[None] | None = None
        self.volumes: dict[str, Path] = {}
        self._mount_points: set[str] = set()
        self.finished = asyncio.Event()
        self.log_dir = node.workdir / "pods" / f"{self.namespace}_{self.name}_{self.uid[:8]}"

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=f"{self.key}:{name}")
        self._tasks.append(task)
        return task

    # --- entry points from the agent -----------------------------------------
    def start(self) -> None:
        self._spawn(self._status_loop(), "status")
        self._main = self._spawn(self._run(), "run")

    def update(self, pod: dict[str, Any]) -> None:
        """The latest pod object from the watch."""
        self.pod = pod
        if pod["metadata"].get("deletionTimestamp"):
            self._begin_termination()

    def removed(self, pod: dict[str, Any]) -> None:
        """The pod object is gone from the API (force deletion): stop what runs."""
        self.gone_from_api = True
        self.pod = pod
        if not self.terminating:
            self._begin_termination()

    # --- grace and deadlines --------------------------------------------------
    def _begin_termination(self) -> None:
        grace = termination.pod_grace(self.pod, self.grace)
        loop = asyncio.get_running_loop()
        if not self.terminating:
            self.terminating = True
            self.grace = grace
            self.kill_deadline = float("inf")  # moved only by a shortened grace
            log.info("pod %s: terminating with a grace period of %d s", self.key, grace)
            self._spawn(self._terminate(), "terminate")
        elif self.grace is not None and grace < self.grace:
            # pod_workers.go: a shorter grace cancels the running kill and restarts
            # it; here every wait of the running kill moves its deadline instead.
            self.grace = grace
            self.kill_deadline = min(self.kill_deadline, loop.time() + grace)
            log.info("pod %s: grace period shortened to %d s", self.key, grace)
            for fut in self._deadline_waiters:
                if not fut.done():
                    fut.set_result(None)

    async def _until(
        self, waitable: asyncio.Future[Any] | None, deadline: float, *, floor: float | None = None
    ) -> bool:
        """Wait for ``waitable`` up to ``deadline``, cut short by a shortened pod grace
        (but never before ``floor``); True if it finished."""
        loop = asyncio.get_running_loop()
        while True:
            cut = self.kill_deadline if floor is None else max(self.kill_deadline, floor)
            remaining = min(deadline, cut) - loop.time()
            if waitable is not None and waitable.done():
                return True
            if remaining <= 0:
                return False
            changed: asyncio.Future[None] = loop.create_future()
            self._deadline_waiters.append(changed)
            try:
                waits: list[asyncio.Future[Any]] = [changed]
                if waitable is not None:
                    waits.append(waitable)
                await asyncio.wait(waits, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            finally:
                self._deadline_waiters.remove(changed)

    # --- status ---------------------------------------------------------------
    def dirty(self) -> None:
        self._status_dirty.set()

    async def _status_loop(self) -> None:
        while True:
            await self._status_dirty.wait()
            self._status_dirty.clear()
            try:
                await self.write_status()
            except api.ApiError as exc:
                if exc.status == 404:
                    return
                log.warning("pod %s: status update failed: %s", self.key, exc)
                self._status_dirty.set()
                await asyncio.sleep(0.5)
            except Exception as exc:
                log.warning("pod %s: status update failed: %s", self.key, exc)
                self._status_dirty.set()
                await asyncio.sleep(0.5)
            await asyncio.sleep(STATUS_INTERVAL)

    def _container_status(self, run: ContainerRun) -> dict[str, Any]:
        image = run.spec.get("image", "")
        status: dict[str, Any] = {
            "name": run.name,
            "image": image,
            "imageID": f"rig://{image}",
            "ready": run.ready,
            "restartCount": run.restart_count,
            "started": run.started,
        }
        if run.current is not None:
            status["containerID"] = run.current.uri
        if run.running() and run.terminated is None:
            assert run.current is not None
            status["state"] = {"running": {"startedAt": now_rfc3339(run.current.started_at)}}
        elif run.terminated is not None:
            status["state"] = {"terminated": run.terminated}
        else:
            waiting: dict[str, Any] = {"reason": run.waiting_reason}
            if run.waiting_message:
                waiting["message"] = run.waiting_message
            status["state"] = {"waiting": waiting}
        status["lastState"] = (
            {"terminated": run.last_terminated} if run.last_terminated is not None else {}
        )
        return status

    def _conditions(self) -> list[dict[str, Any]]:
        old = {c["type"]: c for c in (self.pod.get("status") or {}).get("conditions") or []}
        watched = [r for r in self.runs if r.kind != "init"]
        unready = [r.name for r in watched if not r.ready]
        uninit = [r.name for r in self.runs if r.kind != "regular" and not self._init_done(r)]
        ours = {
            "PodReadyToStartContainers": (self.sandbox_ready, "", ""),
            "Initialized": (
                self.initialized,
                "" if self.initialized else "ContainersNotInitialized",
                "" if self.initialized else f"containers with incomplete status: {uninit}",
            ),
            "ContainersReady": (
                not unready,
                "" if not unready else "ContainersNotReady",
                "" if not unready else f"containers with unready status: {unready}",
            ),
            "Ready": (
                not unready,
                "" if not unready else "ContainersNotReady",
                "" if not unready else f"containers with unready status: {unready}",
            ),
        }
        if self.phase in ("Succeeded", "Failed"):
            ours["ContainersReady"] = (False, "PodCompleted", "")
            ours["Ready"] = (False, "PodCompleted", "")
        out = [c for t, c in old.items() if t not in ours]
        for type_, (ok, reason, message) in ours.items():
            status = "True" if ok else "False"
            prev = old.get(type_)
            cond: dict[str, Any] = {
                "type": type_,
                "status": status,
                "lastProbeTime": None,
                "lastTransitionTime": (
                    prev["lastTransitionTime"]
                    if prev is not None and prev.get("status") == status
                    else now_rfc3339()
                ),
            }
            if reason:
                cond["reason"] = reason
            if message:
                cond["message"] = message
            out.append(cond)
        return out

    def _init_done(self, run: ContainerRun) -> bool:
        if run.kind == "sidecar":
            return run.started
        return run.terminated is not None and run.terminated.get("exitCode") == 0

    def _compute_phase(self) -> str:
        if self.phase in ("Succeeded", "Failed"):
            return self.phase
        regular = [r for r in self.runs if r.kind == "regular"]
        if not self.initialized:
            return "Pending"
        if any(r.current is not None for r in regular):
            return "Running"
        return "Pending"

    async def write_status(self) -> None:
        if self.gone_from_api:
            return
        self.phase = self._compute_phase()
        status: dict[str, Any] = {
            "phase": self.phase,
            "conditions": self._conditions(),
            "hostIP": self.node.node_ip,
            "hostIPs": [{"ip": self.node.node_ip}],
            "startTime": self.start_time,
            "containerStatuses": [
                self._container_status(r) for r in self.runs if r.kind == "regular"
            ],
            "initContainerStatuses": [
                self._container_status(r) for r in self.runs if r.kind != "regular"
            ],
        }
        if self.pod_ip:
            status["podIP"] = self.pod_ip
            status["podIPs"] = [{"ip": self.pod_ip}]
        path = f"/api/v1/namespaces/{self.namespace}/pods/{self.name}/status"
        updated = await self.node.api.merge_patch(path, {"status": status})
        if updated and updated.get("metadata", {}).get("uid") == self.uid:
            # keep conditions others own (PodScheduled, DisruptionTarget) current
            self.pod.setdefault("status", {})["conditions"] = updated["status"].get(
                "conditions", []
            )

    # --- start ----------------------------------------------------------------
    async def _token(self, service_account: str, audience: str | None, seconds: int) -> str:
        """A TokenRequest for the pod's service account, bound to the pod."""
        spec: dict[str, Any] = {
            "audiences": [audience] if audience else [],
            "expirationSeconds": seconds,
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": self.name,
                "uid": self.uid,
            },
        }
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        path = f"/api/v1/namespaces/{self.namespace}/serviceaccounts/{service_account}/token"
        result = await api.retry_forbidden(
            f"token for {self.key}", lambda: self.node.api.post(path, body)
        )
        return str(result["status"]["token"])

    async def _lookup(self, kind: str, name: str) -> dict[str, Any] | None:
        path = f"/api/v1/namespaces/{self.namespace}/{kind}/{name}"
        try:
            result: dict[str, Any] = await api.retry_forbidden(
                f"{kind} {name}", lambda: self.node.api.get(path)
            )
        except api.ApiError as exc:
            if exc.status in (404, 403):
                return None
            raise
        return result

    async def _run(self) -> None:
        try:
            # Shielded: a deletion must not interrupt creating the netns half way
            # (the thread would leave it behind); termination waits for it instead.
            self._sandbox_task = asyncio.ensure_future(self._create_sandbox())
            await asyncio.shield(self._sandbox_task)
            if self.terminating:
                return
            for run in self.runs:
                if run.kind == "regular" or self.terminating:
                    continue
                if run.kind == "init":
                    ok = await self._run_init(run)
                    if not ok:
                        return
                else:
                    await self._start(run)
                    self._spawn(self._supervise(run), f"supervise-{run.name}")
                    await self._wait_started(run)
            if self.terminating:
                return
            self.initialized = True
            self.dirty()
            for run in self.runs:
                if run.kind == "regular" and not self.terminating:
                    await self._start(run)
                    self._spawn(self._supervise(run), f"supervise-{run.name}")
        except Exception:
            log.exception("pod %s: sync failed", self.key)

    async def _create_sandbox(self) -> None:
        """RunPodSandbox: netns + IP, token, pause; retried (as a pod sync is) until it works."""
        while True:
            netns = await asyncio.to_thread(self.node.new_sandbox, f"p{self.uid[:8]}")
            try:
                self.volumes = await volumes.prepare(
                    self.pod,
                    root=self.log_dir / "volumes",
                    lookup=self._lookup,
                    token=self._token,
                    pod_ip=netns.ip,
                    host_ip=self.node.node_ip,
                )
                sandbox = runtime.Sandbox(
                    netns=netns,
                    pod_uid=self.uid,
                    share_pid=bool(self.pod["spec"].get("shareProcessNamespace")),
                    log_dir=self.log_dir,
                )
                await sandbox.start()
            except Exception as exc:
                log.warning("pod %s: creating the sandbox failed (%s); retrying", self.key, exc)
                if isinstance(exc, volumes.VolumeError):
                    await self.node.event(
                        self.pod, reason="FailedMount", message=str(exc), type_="Warning"
                    )
                await asyncio.to_thread(netns.remove)
                self.node.release_sandbox(netns)
                if self.terminating:
                    return
                await asyncio.sleep(1)
                continue
            self.sandbox = sandbox
            self.pod_ip = netns.ip
            self.sandbox_ready = True
            log.info("pod %s: sandbox %s with IP %s", self.key, netns.netns, self.pod_ip)
            self.dirty()
            return

    async def _start(self, run: ContainerRun) -> bool:
        """Create and start one container (startContainer in kuberuntime_container.go)."""
        assert self.sandbox is not None
        spec = run.spec
        try:
            run.env = await envvars.build(
                self.pod,
                spec,
                pod_ip=self.pod_ip,
                host_ip=self.node.node_ip,
                service_env=self.node.service_env,
                lookup=self._lookup,
            )
            argv = images.argv(
                spec.get("image", ""),
                [envvars.expand(a, run.env) for a in spec.get("command") or []],
                [envvars.expand(a, run.env) for a in spec.get("args") or []],
            )
            mounts = volumes.mounts_for(spec, self.volumes)
        except (envvars.EnvError, images.NoProgram, volumes.VolumeError) as exc:
            run.start_failed = True
            run.waiting_reason = "CreateContainerConfigError"
            run.waiting_message = str(exc)
            log.warning("pod %s: container %s cannot start: %s", self.key, run.name, exc)
            await self.node.event(
                self.pod,
                reason="Failed",
                message=f"Error: {exc}",
                type_="Warning",
                field_path=run.field_path,
            )
            self.dirty()
            return False
        env = {"HOSTNAME": self.name, **run.env}
        run.start_failed = False
        run.terminated = None
        run.started = False
        run.ready = False
        run.exited = asyncio.Event()
        for m in mounts:
            if m.target not in self._mount_points:
                self.node.mount_points.acquire(m.target, is_dir=m.source.is_dir())
                self._mount_points.add(m.target)
        run.current = await self.sandbox.start_container(
            name=run.name,
            argv=argv,
            env=env,
            workdir=spec.get("workingDir", "/"),
            mounts=mounts,
            log_file=self.log_dir / f"{run.name}.log",
        )
        await run.current.wait_main()
        log.info(
            "pod %s: started container %s (%s) pid %s: %s",
            self.key,
            run.name,
            run.current.id[:12],
            run.current.main_pid(),
            " ".join(argv),
        )
        await self.node.event(
            self.pod,
            reason="Started",
            message=f"Started container {run.name}",
            field_path=run.field_path,
        )
        post_start = (spec.get("lifecycle") or {}).get("postStart")
        if post_start:
            try:
                await handlers.run_lifecycle(post_start, self._target(run))
            except handlers.HandlerError as exc:
                log.warning("pod %s: postStart of %s failed: %s", self.key, run.name, exc)
                await self.node.event(
                    self.pod,
                    reason="FailedPostStartHook",
                    message=str(exc),
                    type_="Warning",
                    field_path=run.field_path,
                )
                await self._kill(run, grace_override=None, ordering=None, reason="postStart")
                return False
        if run.kind != "init":
            self._start_probes(run)
        self.dirty()
        return True

    def _target(self, run: ContainerRun) -> handlers.Target:
        assert self.sandbox is not None
        return handlers.Target(
            pod_ip=self.pod_ip,
            spec=run.spec,
            sandbox=self.sandbox,
            container=run.current,
            env=run.env,
        )

    async def _run_init(self, run: ContainerRun) -> bool:
        """A plain init container runs to completion; failures retry or fail the pod."""
        backoff = self.node.backoff_initial
        while not self.terminating:
            if await self._start(run):
                assert run.current is not None
                code = await run.current.wait()
                self._record_exit(run, code)
                if run.terminated and run.terminated["exitCode"] == 0:
                    return True
            if self.pod["spec"].get("restartPolicy") == "Never":
                self.phase = "Failed"
                self.dirty()
                await self._finish_terminal()
                return False
            run.waiting_reason = "CrashLoopBackOff" if run.current else run.waiting_reason
            self.dirty()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.node.backoff_max)
            if run.current is not None:
                run.restart_count += 1
        return False

    async def _wait_started(self, run: ContainerRun) -> None:
        """The next container starts once a sidecar has started (across its restarts)."""
        while not run.started and not self.terminating:
            await asyncio.sleep(0.02)

    def _record_exit(self, run: ContainerRun, returncode: int) -> None:
        code, sig = _exit_code(returncode)
        assert run.current is not None
        finished = time.time()
        run.terminated = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": now_rfc3339(run.current.started_at),
            "finishedAt": now_rfc3339(finished),
            "containerID": run.current.uri,
        }
        if sig is not None:
            run.terminated["signal"] = sig
        run.ready = False
        run.started = False
        for t in run.probe_tasks:
            t.cancel()
        run.probe_tasks = []
        log.info(
            "pod %s: container %s exited with code %d%s",
            self.key,
            run.name,
            code,
            f" (signal {signal.Signals(sig).name})" if sig else "",
        )
        run.exited.set()
        self.dirty()

    async def _supervise(self, run: ContainerRun) -> None:
        """Wait for exits; restart per restartPolicy with the kubelet's doubling backoff."""
        backoff = self.node.backoff_initial
        while True:
            if run.current is None or run.start_failed:
                # never started (CreateContainerConfigError...): the sync retries it
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.node.backoff_max)
                if self.terminating:
                    return
                await self._start(run)
                continue
            code = await run.current.wait()
            self._record_exit(run, code)
            if run.stopping or self.terminating:
                return
            # a sidecar always restarts; a regular container's own restartPolicy
            # (ContainerRestartRules, beta in 1.35) wins over the pod's
            policy = (
                "Always"
                if run.kind == "sidecar"
                else run.spec.get("restartPolicy")
                or self.pod["spec"].get("restartPolicy", "Always")
            )
            exit_code = run.terminated["exitCode"] if run.terminated else 1
            if policy == "Never" or (policy == "OnFailure" and exit_code == 0):
                await self._maybe_terminal()
                return
            ran_for = time.time() - run.current.started_at
            if ran_for > 600:
                backoff = self.node.backoff_initial
            run.last_terminated = run.terminated
            run.terminated = None
            run.waiting_reason = "CrashLoopBackOff"
            run.waiting_message = (
                f"back-off {backoff:g}s restarting failed container={run.name} pod={self.name}"
            )
            self.dirty()
            await self.node.event(
                self.pod,
                reason="BackOff",
                message="Back-off restarting failed container",
                type_="Warning",
                field_path=run.field_path,
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.node.backoff_max)
            if self.terminating:
                return
            run.restart_count += 1
            await self._start(run)

    async def _maybe_terminal(self) -> None:
        """All regular containers done for good: the pod is Succeeded or Failed."""
        regular = [r for r in self.runs if r.kind == "regular"]
        if any(r.running() or r.terminated is None for r in regular):
            return
        failed = any((r.terminated or {}).get("exitCode") != 0 for r in regular)
        self.phase = "Failed" if failed else "Succeeded"
        await self._finish_terminal()

    async def _finish_terminal(self) -> None:
        """Stop sidecars (in order), remove the sandbox; the pod object stays."""
        running = [r for r in self.runs if r.running()]
        spec = self.pod["spec"]
        ordering = termination.TerminationOrdering(spec, [r.name for r in running])
        await asyncio.gather(
            *(
                self._kill(r, grace_override=None, ordering=ordering, reason="terminal")
                for r in running
            )
        )
        await self._remove_sandbox()
        self.dirty()

    # --- probes ---------------------------------------------------------------
    def _start_probes(self, run: ContainerRun) -> None:
        spec = run.spec
        startup = spec.get("startupProbe")
        if startup is None:
            run.started = True
        if spec.get("readinessProbe") is None and startup is None:
            run.ready = True
        run.probe_tasks = [
            self._spawn(self._probe_loop(run, kind), f"{kind}-{run.name}")
            for kind in ("startup", "readiness", "liveness")
            if spec.get(f"{kind}Probe") is not None
        ]

    async def _probe_loop(self, run: ContainerRun, kind: str) -> None:
        """prober/worker.go: period, thresholds, initial delay; startup gates the others."""
        probe = run.spec[f"{kind}Probe"]
        period = float(probe.get("periodSeconds", 10))
        success_threshold = int(probe.get("successThreshold", 1))
        failure_threshold = int(probe.get("failureThreshold", 3))
        container = run.current
        assert container is not None
        await asyncio.sleep(float(probe.get("initialDelaySeconds", 0)))
        successes = failures = 0
        result_ok = kind == "liveness"
        while run.current is container and container.running():
            if kind != "startup" and not run.started:
                await asyncio.sleep(0.05)
                continue
            if kind == "startup" and run.started:
                return
            try:
                await handlers.run_probe(probe, self._target(run))
                successes, failures = successes + 1, 0
            except handlers.HandlerError as exc:
                failures, successes = failures + 1, 0
                log.info("pod %s: %s probe of %s failed: %s", self.key, kind, run.name, exc)
                await self.node.event(
                    self.pod,
                    reason="Unhealthy",
                    type_="Warning",
                    field_path=run.field_path,
                    message=f"{kind.capitalize()} probe failed: {exc}",
                )
            if successes >= success_threshold:
                result_ok = True
            elif failures >= failure_threshold:
                result_ok = False
            if kind == "readiness":
                ready = result_ok and container.running()
                if ready != run.ready:
                    run.ready = ready
                    log.info("pod %s: container %s ready=%s", self.key, run.name, ready)
                    self.dirty()
            elif kind == "startup" and result_ok:
                run.started = True
                if run.spec.get("readinessProbe") is None:
                    run.ready = True
                self.dirty()
                return
            elif failures >= failure_threshold and not self.terminating:
                # liveness or startup failure: kill and let the supervisor restart it
                await self.node.event(
                    self.pod,
                    reason="Killing",
                    field_path=run.field_path,
                    message=f"Container {run.name} failed {kind} probe, will be restarted",
                )
                grace = termination.container_grace(self.pod, run.spec, probe_kind=kind)
                self._spawn(
                    self._kill(run, grace_override=grace, ordering=None, reason=kind, restart=True),
                    f"kill-{run.name}",
                )
                return
            await asyncio.sleep(period)

    # --- termination ----------------------------------------------------------
    async def _execute_pre_stop(
        self, run: ContainerRun, hook: Mapping[str, Any], grace: int
    ) -> float:
        """executePreStopHook: run the hook, wait at most ``grace``; a late hook is abandoned."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        log.info("pod %s: running preStop hook of %s (grace %d s)", self.key, run.name, grace)

        async def hook_body() -> None:
            try:
                await handlers.run_lifecycle(hook, self._target(run))
                log.info(
                    "pod %s: preStop hook of %s completed after %.2f s",
                    self.key,
                    run.name,
                    loop.time() - start,
                )
            except handlers.HandlerError as exc:
                log.warning("pod %s: preStop hook of %s failed: %s", self.key, run.name, exc)
                # the kubelet keeps the error out of the event (secrets may leak)
                await self.node.event(
                    self.pod,
                    reason="FailedPreStopHook",
                    message="PreStopHook failed",
                    type_="Warning",
                    field_path=run.field_path,
                )

        # Not tied to the kill: at the deadline it is abandoned, never cancelled.
        hook_task = asyncio.ensure_future(hook_body())
        self._background(hook_task)
        done = await self._until(hook_task, start + grace)
        if not done:
            log.info(
                "pod %s: preStop hook of %s not completed in the grace period of %d s; abandoned",
                self.key,
                run.name,
                grace,
            )
        return loop.time() - start

    def _background(self, task: asyncio.Future[Any]) -> None:
        holder: set[asyncio.Future[Any]] = getattr(self, "_held", set())
        self._held = holder
        holder.add(task)
        task.add_done_callback(holder.discard)

    async def _kill(
        self,
        run: ContainerRun,
        *,
        grace_override: int | None,
        ordering: termination.TerminationOrdering | None,
        reason: str,
        restart: bool = False,
    ) -> None:
        """killContainer: preStop, wait for turn, stop signal, SIGKILL at the end of grace."""
        container = run.current
        if container is None or not container.running():
            if ordering is not None:
                ordering.container_terminated(run.name)
            return
        loop = asyncio.get_running_loop()
        # A kill for a restart (failed liveness probe) lets the supervisor restart it.
        run.stopping = not restart
        grace = (
            grace_override
            if grace_override is not None
            else termination.container_grace(self.pod, run.spec)
        )
        await self.node.event(
            self.pod,
            reason="Killing",
            message=f"Stopping container {run.name}",
            field_path=run.field_path,
        )
        lifecycle = run.spec.get("lifecycle") or {}
        pre_stop = lifecycle.get("preStop")
        if pre_stop and grace > 0:
            elapsed = await self._execute_pre_stop(run, pre_stop, grace)
            grace -= int(elapsed)
        if ordering is not None and grace > 0:
            turn_start = loop.time()
            turn = asyncio.ensure_future(ordering.wait_for_turn(run.name, grace))
            await self._until(turn, turn_start + grace)
            turn.cancel()
            grace -= int(loop.time() - turn_start)
        grace = max(grace, termination.MINIMUM_GRACE_SECONDS)
        sig = images.stop_signal(run.spec.get("image", ""), lifecycle.get("stopSignal"))
        signalled_at = loop.time()
        delivered = container.signal(sig)
        log.info(
            "pod %s: sent %s to container %s (pid %s); SIGKILL in %d s",
            self.key,
            sig.name,
            run.name,
            container.main_pid() if delivered else "-",
            grace,
        )
        waiter = asyncio.ensure_future(container.wait())
        # After the signal the rest of the grace runs out; a shortened pod grace
        # still leaves the 2 s minimum.
        exited = await self._until(
            waiter, signalled_at + grace, floor=signalled_at + termination.MINIMUM_GRACE_SECONDS
        )
        if not exited:
            log.info(
                "pod %s: container %s still running after %.1f s: SIGKILL",
                self.key,
                run.name,
                loop.time() - signalled_at,
            )
            container.kill_all()
            await waiter
        if ordering is not None:
            ordering.container_terminated(run.name)
        log.info("pod %s: container %s stopped (%s)", self.key, run.name, reason)

    async def _terminate(self) -> None:
        """killPodWithSyncResult: every container's kill in parallel, then the sandbox."""
        # Stop starting containers first, then kill what runs.
        if self._main is not None and not self._main.done():
            self._main.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._main
        if self._sandbox_task is not None:
            with contextlib.suppress(Exception):
                await self._sandbox_task
        running = [r for r in self.runs if r.running()]
        ordering = termination.TerminationOrdering(self.pod["spec"], [r.name for r in running])
        # The pod worker passes its effective grace down as the override.
        await asyncio.gather(
            *(
                self._kill(r, grace_override=self.grace, ordering=ordering, reason="pod deleted")
                for r in running
            )
        )
        for r in self.runs:
            r.ready = False
        # A terminal phase before deletion (pod_workers + status manager, 1.27+).
        regular = [r for r in self.runs if r.kind == "regular"]
        failed = any((r.terminated or {}).get("exitCode", 0) != 0 for r in regular)
        if self.phase not in ("Succeeded", "Failed"):
            self.phase = "Failed" if failed else "Succeeded"
        await self._remove_sandbox()
        self._status_dirty.clear()
        if not self.gone_from_api:
            with contextlib.suppress(api.ApiError):
                await self.write_status()
            await self._delete()
        self.finished.set()
        me = asyncio.current_task()
        for t in self._tasks:
            if t is not me:
                t.cancel()

    async def _remove_sandbox(self) -> None:
        if self.sandbox is None or not self.sandbox_ready:
            return
        self.sandbox_ready = False
        await self.sandbox.remove()
        self.node.release_sandbox(self.sandbox.netns)
        self._release_mount_points()
        log.info("pod %s: sandbox removed, IP %s is gone", self.key, self.pod_ip)

    async def _delete(self) -> None:
        """The status manager's final call: delete with grace 0 and a UID precondition."""
        path = f"/api/v1/namespaces/{self.namespace}/pods/{self.name}"
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": self.uid},
        }
        try:
            await self.node.api.delete(path, body)
            log.info("pod %s: deleted from the API server (grace 0)", self.key)
        except api.ApiError as exc:
            if exc.status not in (404, 409):
                log.warning("pod %s: final deletion failed: %s", self.key, exc)

    async def shutdown(self) -> None:
        """The agent is stopping: kill everything now, remove the sandbox."""
        for t in self._tasks:
            t.cancel()
        try:
            if self.sandbox is not None:
                await self.sandbox.remove()
                self.node.release_sandbox(self.sandbox.netns)
        finally:
            self._release_mount_points()

    def _release_mount_points(self) -> None:
        for target in self._mount_points:
            self.node.mount_points.release(target)
        self._mount_points.clear()


Spawner = Callable[[dict[str, Any]], PodWorker]
