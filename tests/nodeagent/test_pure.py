"""The agent's pure parts, table-driven: $(VAR) expansion, images, grace arithmetic."""

from __future__ import annotations

import asyncio
import signal
import sys

import pytest

from quiesce.rig.nodeagent import envvars, images, termination

ENV = {"A": "alpha", "EMPTY": ""}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("$(A)", "alpha"),
        ("x$(A)y", "xalphay"),
        ("$(A)$(A)", "alphaalpha"),
        ("$$(A)", "$(A)"),  # escaped
        ("$$$(A)", "$alpha"),
        ("$(MISSING)", "$(MISSING)"),  # undefined stays as written
        ("$(EMPTY)", ""),
        ("$(A", "$(A"),  # unterminated
        ("$A", "$A"),  # shell syntax is not expanded
        ("$", "$"),
        ("a$", "a$"),
        ("$$", "$"),
        ("$()", "$()"),
    ],
)
def test_expansion_follows_kubernetes_expansion_rules(text: str, expected: str) -> None:
    assert envvars.expand(text, ENV) == expected


@pytest.mark.parametrize(
    ("image", "command", "args", "expected"),
    [
        (
            "ghcr.io/quiesce-dev/quiesce:0.1.0",
            ["quiesce", "sidecar"],
            None,
            [sys.executable, "-m", "quiesce", "sidecar"],
        ),
        (
            "ghcr.io/quiesce-dev/quiesce:0.1.0",
            None,
            ["sidecar"],
            [sys.executable, "-m", "quiesce", "sidecar"],
        ),
        (
            "quiesce/testapp:dev",
            None,
            ["--name", "a"],
            [sys.executable, "-m", "quiesce.rig.testapp", "--name", "a"],
        ),
        ("python:3.12-slim", ["python3", "-c", "pass"], None, [sys.executable, "-c", "pass"]),
        ("python:3.12-slim", None, None, [sys.executable]),
        ("busybox", ["sh", "-c", "true"], ["ignored-by-sh"], ["sh", "-c", "true", "ignored-by-sh"]),
    ],
)
def test_images_map_to_local_programs(
    image: str, command: list[str] | None, args: list[str] | None, expected: list[str]
) -> None:
    assert images.argv(image, command, args) == expected


def test_an_unknown_image_without_a_command_cannot_run() -> None:
    with pytest.raises(images.NoProgram):
        images.argv("registry.example/app:1", None, ["--flag"])


@pytest.mark.parametrize(
    ("image", "stop", "expected"),
    [
        ("registry.example/app:1", None, signal.SIGTERM),
        ("nginx:1.27", None, signal.SIGQUIT),
        ("docker.io/library/nginx@sha256:abc", None, signal.SIGQUIT),
        ("nginx:1.27", "SIGTERM", signal.SIGTERM),
        ("busybox", "SIGUSR1", signal.SIGUSR1),
    ],
)
def test_the_stop_signal_is_lifecycle_then_image_then_sigterm(
    image: str, stop: str | None, expected: signal.Signals
) -> None:
    assert images.stop_signal(image, stop) == expected


def _pod(deletion: int | None = None, spec: int | None = None) -> dict[str, object]:
    meta: dict[str, object] = {}
    if deletion is not None:
        meta["deletionGracePeriodSeconds"] = deletion
    s: dict[str, object] = {}
    if spec is not None:
        s["terminationGracePeriodSeconds"] = spec
    return {"metadata": meta, "spec": s}


@pytest.mark.parametrize(
    ("deletion", "spec", "current", "expected"),
    [
        (None, None, None, 30),
        (None, 45, None, 45),
        (10, 45, None, 10),
        (60, 45, None, 60),  # the API server's value is bedrock truth
        (5, 45, 10, 5),  # shortened
        (20, 45, 10, 10),  # never lengthened
        (0, 45, None, 1),  # a forced deletion: set, and never below 1
        (None, 0, None, 1),  # never below 1
    ],
)
def test_the_pod_grace_as_calculate_effective_grace_period(
    deletion: int | None, spec: int | None, current: int | None, expected: int
) -> None:
    assert termination.pod_grace(_pod(deletion, spec), current) == expected


@pytest.mark.parametrize(
    ("grace", "elapsed", "expected"),
    [(30, 5.9, 25), (30, 0.4, 30), (5, 3.99, 2), (5, 4.0, 2), (3, 3.0, 2), (10, 12.0, 2)],
)
def test_after_the_hook_whole_seconds_come_off_with_a_floor_of_two(
    grace: int, elapsed: float, expected: int
) -> None:
    assert termination.after_hook(grace, elapsed) == expected


def test_a_failed_probes_own_grace_period_wins() -> None:
    pod = _pod(spec=30)
    container = {"livenessProbe": {"terminationGracePeriodSeconds": 4}}
    assert termination.container_grace(pod, container, probe_kind="liveness") == 4
    assert termination.container_grace(pod, container) == 30


def test_termination_ordering_makes_sidecars_wait_for_apps_and_later_sidecars() -> None:
    spec = {
        "initContainers": [
            {"name": "init"},
            {"name": "s1", "restartPolicy": "Always"},
            {"name": "s2", "restartPolicy": "Always"},
        ],
        "containers": [{"name": "a"}, {"name": "b"}],
    }

    async def scenario() -> list[str]:
        order = termination.TerminationOrdering(spec, ["s1", "s2", "a", "b"])
        finished: list[str] = []

        async def turn(name: str) -> None:
            await order.wait_for_turn(name, 5)
            finished.append(name)
            order.container_terminated(name)

        tasks = [asyncio.create_task(turn(n)) for n in ("s1", "s2")]
        await asyncio.sleep(0.05)
        assert finished == []
        order.container_terminated("a")
        await asyncio.sleep(0.05)
        assert finished == []
        order.container_terminated("b")
        await asyncio.gather(*tasks)
        return finished

    assert asyncio.run(scenario()) == ["s2", "s1"]


def test_waiting_for_a_turn_is_bounded_by_the_grace() -> None:
    spec = {
        "initContainers": [{"name": "s", "restartPolicy": "Always"}],
        "containers": [{"name": "a"}],
    }

    async def scenario() -> float:
        order = termination.TerminationOrdering(spec, ["s", "a"])
        # The guard only gives up on a wait that never ends; "a" never terminates.
        return await asyncio.wait_for(order.wait_for_turn("s", 0.2), 30)

    # It waited out the grace (not less), then returned without its turn.
    assert asyncio.run(scenario()) >= 0.15
