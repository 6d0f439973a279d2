"""Rules QL000-QL009 over Kubernetes objects.

Some hazards only show when objects are read together: a Service decides
which containers serve traffic (QL003) and which load balancer a pod must
outlive (QL005), a mounted ConfigMap may carry an app's shutdown timeout
(QL006). So the run first indexes Services, Ingresses, TargetGroupBindings
and ConfigMaps (:mod:`quiesce.lint.references`), then checks each workload
against that index here; ``quiesce.dev/lint-ignore`` (QL000) is read by
:mod:`quiesce.lint.ignores`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Sequence
from typing import Final

from quiesce import annotations as keys
from quiesce.lint import (
    commands,
    findings,
    ignores,
    images,
    loader,
    references,
    rules,
    timeparse,
    workloads,
)
from quiesce.lint.workloads import mapping, sequence, text
from quiesce.plan import outer

_CONSUL_PREFIX: Final = "consul.hashicorp.com/"
_CONSUL_ENV = re.compile(r"(?:^|_)CONSUL(?:_HTTP)?_(?:ADDR|ADDRESS|HOST|URL|ENDPOINT|AGENT\w*)$")
_QUIT: Final = frozenset({"SIGQUIT", "QUIT", "3"})


@dataclasses.dataclass(frozen=True)
class Grace:
    """The grace period that will apply to a workload's pods."""

    seconds: float
    path: loader.FieldPath
    """Where it is set (the pod spec itself when the default applies)."""
    described: str
    """How messages name it: ``terminationGracePeriodSeconds 20``, ``the default ...``."""


@dataclasses.dataclass
class Checker:
    """Runs every manifest rule on one workload, building findings with locations."""

    index: references.Index
    workload: workloads.Workload
    budgets: outer.OuterBudgets = dataclasses.field(default_factory=outer.OuterBudgets)
    """The cluster's budgets outside the pod (QL009); default: the autoscaler's 600 s."""
    out: list[findings.Finding] = dataclasses.field(default_factory=list)

    def report(
        self,
        rule_id: str,
        *,
        container: workloads.Container | None,
        path: loader.FieldPath,
        message: str,
        fix: str,
    ) -> None:
        rule = rules.RULES[rule_id]
        manifest = self.workload.manifest
        self.out.append(
            findings.Finding(
                rule_id=rule_id,
                severity=rule.severity,
                obj=self.workload.ref,
                container=container.name if container is not None else None,
                field=workloads.field_name(path),
                message=message,
                fix=fix,
                location=findings.Location(manifest.location.path, manifest.line_of(path)),
            )
        )

    def run(self) -> list[findings.Finding]:
        w = self.workload
        services = self.index.selecting(w)
        serving = w.kind not in workloads.BATCH_KINDS and (
            bool(services) or any(c.spec.get("ports") for c in w.containers)
        )
        grace = self.effective_grace()
        for container in w.containers:
            if w.kind not in workloads.BATCH_KINDS:
                self.shell_form(container)
                self.nginx_signal(container)
            if grace is not None:
                self.prestop(container, grace)
                self.app_timeouts(container, grace)
        self.readiness(services)
        self.consul()
        if grace is not None and serving:
            self.grace_too_short(grace)
        self.load_balancer(services, grace)
        if grace is not None:
            self.outer_budgets(grace)
        return self.out

    def effective_grace(self) -> Grace | None:
        """The grace period that will apply, where it is set, and how to describe it.

        With quiesce injected the operator computes the grace from its plan; only
        an explicit ``quiesce.dev/grace-period`` is known here.
        """
        w = self.workload
        if w.injected:
            raw = w.annotation(keys.GRACE_PERIOD)
            seconds = timeparse.go_duration(raw) if raw is not None else None
            if seconds is None:
                return None
            path = self.annotation_path(keys.GRACE_PERIOD)
            return Grace(seconds, path, f"{keys.GRACE_PERIOD} {raw}")
        if w.grace_explicit:
            return Grace(w.grace, w.grace_path, f"terminationGracePeriodSeconds {w.grace}")
        return Grace(w.grace, w.pod_path, f"the default terminationGracePeriodSeconds ({w.grace})")

    def annotation_path(self, key: str) -> loader.FieldPath:
        w = self.workload
        if key in w.pod_annotations:
            return (*w.pod_path[:-1], "metadata", "annotations", key)
        return ("metadata", "annotations", key)

    # QL001
    def shell_form(self, c: workloads.Container) -> None:
        command, args = c.strings("command"), c.strings("args")
        argv = command + args  # without a command, args go to the image's entrypoint
        script = commands.shell_script(argv)
        if script is None or commands.script_forwards_signal(script):
            return
        field = "command" if commands.shell_script(command) else "args"
        self.report(
            "QL001",
            container=c,
            path=(*c.path, field),
            message=(
                f"`{' '.join(argv[:2])} ...` runs the app under a shell without `exec`;"
                " SIGTERM reaches the shell, not the app"
            ),
            fix="start the script's last command with `exec` (`exec app ...`) or drop the shell",
        )

    # QL002
    def prestop(self, c: workloads.Container, grace: Grace) -> None:
        if self.workload.injected:
            return  # the operator absorbs a sleep hook into its convergence floor
        hook, path = _hook_seconds(c)
        seconds, described = grace.seconds, grace.described
        if hook is None or hook < seconds:
            return
        self.report(
            "QL002",
            container=c,
            path=path,
            message=(
                f"the preStop hook runs {hook:g} s, not shorter than {described};"
                " the app gets only the kubelet's 2 s extra before SIGKILL"
            ),
            fix=(
                f"set terminationGracePeriodSeconds to at least {hook:g} s plus the app's"
                " shutdown time, or shorten the hook"
            ),
        )

    # QL003
    def readiness(self, services: Sequence[references.Service]) -> None:
        if not services:
            return
        for c in self.workload.containers:
            if "readinessProbe" in c.spec:
                continue
            numbers, names = c.port_numbers_and_names()
            if not numbers and not names:
                continue
            served = [s for s in services if _serves(s, numbers, names)]
            if not served:
                continue
            self.report(
                "QL003",
                container=c,
                path=(*c.path, "ports"),
                message=(
                    f"serves {served[0].ref} but has no readinessProbe; new pods get"
                    " traffic before they can answer"
                ),
                fix="add a readinessProbe (httpGet or tcpSocket) on the served port",
            )

    # QL004
    def nginx_signal(self, c: workloads.Container) -> None:
        known_quit = images.stops_with_sigquit(c.image)
        if known_quit is None:
            return  # not nginx
        stop_signal = text(mapping(c.spec.get("lifecycle")).get("stopSignal")).upper()
        if stop_signal:
            if stop_signal in _QUIT:
                return
            known_quit = False
        if known_quit:
            return
        argv = workloads.string_list(mapping(c.pre_stop().get("exec")).get("command"))
        if commands.quits_nginx_gracefully(argv):
            return
        signal = (self.workload.annotation(keys.SIGNAL) or "").strip().upper()
        if self.workload.injected and signal in _QUIT:
            return
        if stop_signal:
            why = f"lifecycle.stopSignal is {stop_signal}"
        elif images.is_official_nginx(c.image):
            why = f"official nginx images before 1.19.5 ({c.image!r}) stop with SIGTERM"
        else:
            why = f"image {c.image!r} is not known to set STOPSIGNAL SIGQUIT"
        self.report(
            "QL004",
            container=c,
            path=(*c.path, "lifecycle") if stop_signal else (*c.path, "image"),
            message=f"nginx stops with SIGTERM (fast shutdown, open connections cut): {why}",
            fix=(
                "add a preStop hook `exec: {command: [nginx, -s, quit]}` (then sleep until it"
                " exits), or build the image with `STOPSIGNAL SIGQUIT`"
            ),
        )

    # QL005
    def load_balancer(self, services: Sequence[references.Service], grace: Grace | None) -> None:
        w = self.workload
        for service in services:
            for lb in self.index.load_balancers_of(service):
                if grace is not None:
                    seconds, path, described = grace.seconds, grace.path, grace.described
                    if seconds >= lb.seconds:
                        continue
                    self.report(
                        "QL005",
                        container=None,
                        path=path,
                        message=(
                            f"{described} is shorter than {service.ref} needs: it is behind"
                            f" {lb.description}, which keeps sending to a terminating pod"
                        ),
                        fix=(
                            f"set the grace period to more than {lb.seconds:g} s and keep the"
                            " pod serving until the load balancer stops (quiesce does this),"
                            " or tune deregistration_delay.timeout_seconds down"
                        ),
                    )
                elif w.injected:
                    raw = w.annotation(keys.CONVERGE_MAX)
                    ceiling = timeparse.go_duration(raw) if raw is not None else None
                    if ceiling is None or ceiling >= lb.seconds:
                        continue
                    self.report(
                        "QL005",
                        container=None,
                        path=self.annotation_path(keys.CONVERGE_MAX),
                        message=(
                            f"{keys.CONVERGE_MAX} {raw} is shorter than {service.ref}"
                            f" needs: it is behind {lb.description}"
                        ),
                        fix=f"set {keys.CONVERGE_MAX} to at least {lb.seconds:g}s",
                    )

    # QL006
    def app_timeouts(self, c: workloads.Container, grace: Grace) -> None:
        seconds, described = grace.seconds, grace.described
        hook, _ = _hook_seconds(c)
        if hook is None:
            available, budget = seconds, described
        elif hook < seconds:
            available, budget = seconds - hook, f"{described} minus the {hook:g} s preStop"
        else:  # the hook used the whole grace period: the kubelet adds 2 s once
            available, budget = 2.0, f"the kubelet's 2 s after a {hook:g} s preStop"
        for setting, value, path in self._timeouts(c):
            if value < available:
                continue
            self.report(
                "QL006",
                container=c,
                path=path,
                message=(
                    f"{setting} is {value:g} s but the app has {available:g} s ({budget});"
                    " SIGKILL ends the drain"
                ),
                fix=(
                    f"make {setting} shorter than {available:g} s, or raise"
                    " terminationGracePeriodSeconds above it plus a margin"
                ),
            )

    def _timeouts(self, c: workloads.Container) -> Iterator[tuple[str, float, loader.FieldPath]]:
        command, args = c.strings("command"), c.strings("args")
        for t in commands.timeouts_in_argv(command + args):
            if t.index < len(command):
                yield t.setting, t.seconds, (*c.path, "command", t.index)
            else:
                yield t.setting, t.seconds, (*c.path, "args", t.index - len(command))
        for index, name, value in c.env():
            if value is None:
                continue
            path = (*c.path, "env", index)
            if name in commands.ENV_SETTINGS:
                setting, parse = commands.ENV_SETTINGS[name]
                parsed = parse(value)
                if parsed is not None:
                    yield setting, parsed, path
            elif name in commands.ENV_COMMAND_LINES:
                for t in commands.timeouts_in_argv(commands.split(value)):
                    yield t.setting, t.seconds, path
            else:
                for setting, parsed in commands.timeouts_in_config(value):
                    yield setting, parsed, path
        for index, name in self._mounted_config_maps():
            data = self.index.config_maps.get((self.workload.ref.namespace, name))
            if data is None and self.workload.ref.namespace is not None:
                data = self.index.config_maps.get((None, name))
            for setting, parsed in commands.timeouts_in_config(data or ""):
                path = (*self.workload.pod_path, "volumes", index)
                yield f"{setting} (ConfigMap {name})", parsed, path

    def _mounted_config_maps(self) -> Iterator[tuple[int, str]]:
        for index, volume in enumerate(sequence(self.workload.pod_spec.get("volumes"))):
            name = text(mapping(mapping(volume).get("configMap")).get("name"))
            if name:
                yield index, name

    # QL007
    def consul(self) -> None:
        w = self.workload
        if w.injected or any(c.pre_stop() for c in w.containers):
            return
        merged = {**w.annotations, **w.pod_annotations}
        consul_keys = [k for k in merged if k.startswith(_CONSUL_PREFIX)]
        # consul-k8s reads connect-inject with Go's strconv.ParseBool, which
        # quiesce's grammar includes; "disabled" or a typo is not off.
        inject = merged.get(_CONSUL_PREFIX + "connect-inject", "")
        if consul_keys and not workloads.is_false(inject):
            key = consul_keys[0]
            self.report(
                "QL007",
                container=None,
                path=self.annotation_path(key),
                message=(
                    f"registered in Consul ({key}) but nothing deregisters it before the app"
                    " stops; gateways keep routing to the dying pod"
                ),
                fix=rules.RULES["QL007"].fix,
            )
            return
        for c in w.containers:
            for index, name, value in c.env():
                if _CONSUL_ENV.search(name.upper()) or (
                    value is not None and re.search(r":850[01]\b", value)
                ):
                    self.report(
                        "QL007",
                        container=c,
                        path=(*c.path, "env", index),
                        message=(
                            f"talks to a Consul agent ({name}) but has no preStop hook and no"
                            " quiesce injection; its instance stays registered while it stops"
                        ),
                        fix=rules.RULES["QL007"].fix,
                    )
                    return

    # QL008
    def grace_too_short(self, grace: Grace) -> None:
        seconds, path, described = grace.seconds, grace.path, grace.described
        if seconds >= rules.MIN_GRACE_SECONDS:
            return
        consequence = (
            "the pod is SIGKILLed at once" if seconds <= 0 else "too short to leave load balancers"
        )
        self.report(
            "QL008",
            container=None,
            path=path,
            message=f"{described} on a serving workload: {consequence}",
            fix=rules.RULES["QL008"].fix,
        )

    # QL009
    def outer_budgets(self, grace: Grace) -> None:
        for limit in outer.limits(self.workload.pod_spec, self.budgets):
            if grace.seconds <= limit.seconds:
                continue
            need = limit.fix.format(need=_whole(grace.seconds) + limit.offset)
            self.report(
                "QL009",
                container=None,
                path=grace.path,
                message=(
                    f"{grace.described} is longer than the {limit.seconds}s {limit.gives}"
                    f" ({limit.setting}): SIGKILL at {limit.seconds}s"
                ),
                fix=f"{need}, or lower the grace period to {limit.seconds}",
            )


def _whole(seconds: float) -> int:
    return int(-(-seconds // 1))


def _hook_seconds(c: workloads.Container) -> tuple[float | None, loader.FieldPath]:
    """How long the preStop hook visibly lasts, and where it is written."""
    hook = c.pre_stop()
    base = (*c.path, "lifecycle", "preStop")
    sleep = mapping(hook.get("sleep")).get("seconds")
    if isinstance(sleep, int | float) and not isinstance(sleep, bool):
        return float(sleep), (*base, "sleep", "seconds")
    argv = workloads.string_list(mapping(hook.get("exec")).get("command"))
    return commands.visible_sleep(argv), (*base, "exec", "command")


def _serves(service: references.Service, numbers: set[int], names: set[str]) -> bool:
    if not service.target_ports:
        return True
    return any(p in numbers if isinstance(p, int) else p in names for p in service.target_ports)


def check(
    manifests: Sequence[loader.Manifest],
    budgets: outer.OuterBudgets | None = None,
) -> tuple[list[findings.Finding], list[findings.InputError]]:
    """Every manifest rule over a set of objects read together; ``budgets``: the cluster's
    outer budgets (QL009), by default only the cluster-autoscaler's default 600 s."""
    budgets = outer.OuterBudgets() if budgets is None else budgets
    index = references.Index()
    for manifest in manifests:
        index.add(manifest.obj)
    out: list[findings.Finding] = []
    errors: list[findings.InputError] = []
    for manifest in manifests:
        ignored, unknown = ignores.ignored(manifest)
        out.extend(unknown)
        workload = workloads.workload_of(manifest, errors)
        if workload is None:
            continue
        out.extend(f for f in Checker(index, workload, budgets).run() if f.rule_id not in ignored)
    return out, errors
