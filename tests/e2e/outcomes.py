"""How each pod stopped, read from the rig's records rather than from a clock.

A wall-clock bound measured on a shared 2-core machine is a benchmark figure, not a
test (design, "Tests assert outcomes, benchmarks measure time"). What a user relies on
when a pod stops is recorded as facts, whatever the machine's load:

* the app exited on its stop signal (exit code 0), not killed at the end of the grace
  period (137): the node agent logs every container exit, as the kubelet reports it;
* the kubelet's preStop call to the sidecar neither failed nor was abandoned at the
  deadline: the node agent logs both where it posts ``FailedPreStopHook`` (and the
  log outlives the namespace, which the Events do not);
* convergence ended because its checks held (quiet among them), not on its ceiling
  or the deadline: the sidecar logs why (``Converged after ... s: <reason>``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from quiesce.rig import rig, scenarios
from quiesce.rig.nodeagent import runner

APP = "app"  # the test app's container in rollout.deployment
TIMED_OUT = ("ceiling", "deadline")
_CONVERGED = re.compile(r"Converged after [\d.]+ s: (\w+)")


def _agent_lines(r: rig.Rig, namespace: str, pod: str) -> list[str]:
    log = r.workdir / "logs" / runner.AGENT_LOG
    prefix = f"pod {namespace}/{pod}: "
    return [line for line in log.read_text(errors="replace").splitlines() if prefix in line]


def app_exit_codes(r: rig.Rig, namespace: str, pod: str) -> list[int]:
    """Every exit of the pod's app container, in order (one, unless it restarted)."""
    exited = re.compile(rf"container {APP} exited with code (\d+)")
    lines = _agent_lines(r, namespace, pod)
    return [int(m.group(1)) for line in lines if (m := exited.search(line))]


def hook_failures(r: rig.Rig, namespace: str, pod: str) -> list[str]:
    """The node agent's lines for a preStop hook that failed or ran out of grace."""
    return [
        line
        for line in _agent_lines(r, namespace, pod)
        if "preStop hook of" in line and (" failed" in line or "not completed" in line)
    ]


def _pod_dir(r: rig.Rig, namespace: str, pod: str) -> Path | None:
    found = sorted((r.workdir / "node-agent" / "pods").glob(f"{namespace}_{pod}_*"))
    return found[-1] if found else None


def convergence_reasons(r: rig.Rig, namespace: str, pod: str) -> list[str]:
    """Why each of the sidecar's sequences ended convergence, from its own log."""
    pod_dir = _pod_dir(r, namespace, pod)
    log = pod_dir / f"{scenarios.SIDECAR}.log" if pod_dir is not None else None
    if log is None or not log.exists():
        return []
    reasons = []
    for line in log.read_text(errors="replace").splitlines():
        if not (m := _CONVERGED.search(line)):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = {}
        reason = record.get("reason") if isinstance(record, dict) else None
        reasons.append(str(reason) if reason else m.group(1))
    return reasons


def stopped(r: rig.Rig, namespace: str, pods: Iterable[str]) -> dict[str, dict[str, object]]:
    """Per pod: the app's exit codes, failed or abandoned hooks, convergence reasons."""
    return {
        pod: {
            "app_exit_codes": app_exit_codes(r, namespace, pod),
            "hook_failures": hook_failures(r, namespace, pod),
            "convergence": convergence_reasons(r, namespace, pod),
        }
        for pod in sorted(pods)
    }


def assert_stopped_as_planned(
    r: rig.Rig, namespace: str, pods: Iterable[str], *, busy: bool
) -> dict[str, dict[str, object]]:
    """Each pod's app stopped on its signal after a hook that returned in time.

    ``busy``: traffic was steady, so each sidecar must have ended convergence on its
    checks (quiet included), not on its ceiling. Under sparse traffic the ceiling may
    decide (design, "Measuring honestly"), and only the deadline is a fault.
    """
    facts = stopped(r, namespace, pods)
    for pod, fact in facts.items():
        assert fact["app_exit_codes"] == [0], (pod, fact)
        assert fact["hook_failures"] == [], (pod, fact)
        reasons = fact["convergence"]
        assert isinstance(reasons, list) and len(reasons) == 1, (pod, fact)
        assert reasons[0] not in (TIMED_OUT if busy else ("deadline",)), (pod, fact)
    return facts
