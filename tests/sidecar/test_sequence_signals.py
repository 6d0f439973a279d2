"""Step 3 and 4 against real app processes: custom signal, shutdown URL, kept hook, faults.

The sidecar runs in-process (pytest-aiohttp); the app is a real HTTP server in
a fake container (its own cgroup named by a container ID), signalled for real.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from quiesce import plan as plan_module
from quiesce.sidecar import server

from .helpers import APP, FakeContainer, free_port, make_settings, read_events, wait_for, wall

TOKEN = {"X-Quiesce-Token": "s3cret"}
FAST: dict[str, Any] = {"converge_max": 0.5, "quiet_window": 0.1, "deregister_timeout": 0.5}
Make = Callable[..., FakeContainer]
ClientFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


def start_app(container: Make, tmp_path: Path, *extra: str) -> tuple[FakeContainer, Path, int]:
    events = tmp_path / "events.jsonl"
    port = free_port()
    c = container(
        [sys.executable, APP, "--port", str(port), "--events", str(events), *extra],
    )
    wait_for(lambda: any(e["event"] == "ready" for e in read_events(events)))
    return c, events, port


async def prestop(client: TestClient[web.Request, web.Application]) -> dict[str, Any]:
    resp = await client.get("/prestop", headers=TOKEN)
    assert resp.status == 200
    status: dict[str, Any] = await (await client.get("/status")).json()
    return status


def phase(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in status["phases"] if p["name"] == name)


async def test_custom_signal_reaches_the_app_only_after_convergence_and_the_hook_waits_for_exit(
    aiohttp_client: ClientFactory, container: Make, tmp_path: Path
) -> None:
    app, events, _ = start_app(container, tmp_path, "--exit-on", "QUIT", "--linger", "0.3")
    settings = make_settings(
        plan={**FAST, "signal": int(signal.SIGQUIT), "drain_timeout": 3.0},
        app_container_ids=(app.id,),
    )
    client = await aiohttp_client(server.create_app(settings))
    status = await prestop(client)
    got = [e for e in read_events(events) if e["event"] in ("signal", "exit")]
    assert [e["event"] for e in got] == ["signal", "exit"]
    assert got[0]["signal"] == "SIGQUIT"
    assert got[0]["t"] >= wall(phase(status, "converge")["ended_at"]) - 0.01
    sig = phase(status, "signal")
    assert sig["mode"] == "signal" and sig["sent_to"] == [app.pid]
    assert sig["processes"][0]["pid"] == app.pid
    drain = phase(status, "drain")
    assert drain["waiting_for"] == "app exit" and drain["outcome"] == "ok"
    assert status["errors"] == []
    # the hook returned only after the app had exited
    assert wall(drain["ended_at"]) >= got[1]["t"]


async def test_an_app_that_ignores_its_signal_is_reported_and_the_deadline_holds(
    aiohttp_client: ClientFactory, container: Make, tmp_path: Path
) -> None:
    app, events, _ = start_app(container, tmp_path, "--ignore", "QUIT")
    settings = make_settings(
        plan={**FAST, "signal": int(signal.SIGQUIT), "margin": 1.0},
        app_container_ids=(app.id,),
    )
    client = await aiohttp_client(server.create_app(settings))
    status = await prestop(client)
    assert status["state"] == "done"
    assert phase(status, "drain")["outcome"] == "timeout"
    assert any("ignored its signal" in e["error"] for e in status["errors"])
    assert any(e["event"] == "signal" for e in read_events(events))


async def test_an_app_that_exited_early_is_reported(
    aiohttp_client: ClientFactory, container: Make, tmp_path: Path
) -> None:
    app, _, _ = start_app(container, tmp_path)
    app.stop()
    settings = make_settings(
        plan={**FAST, "signal": int(signal.SIGQUIT)}, app_container_ids=(app.id,)
    )
    client = await aiohttp_client(server.create_app(settings))
    status = await prestop(client)
    assert any("exited early" in w["warning"] for w in status["warnings"])
    assert phase(status, "signal")["outcome"] == "failed"
    assert status["state"] == "done"


async def test_shutdown_url_is_posted_after_convergence(
    aiohttp_client: ClientFactory, container: Make, tmp_path: Path
) -> None:
    app, events, port = start_app(container, tmp_path)
    settings = make_settings(
        plan={**FAST, "shutdown_url": f"http://127.0.0.1:{port}/shutdown", "drain_timeout": 3.0},
        app_container_ids=(app.id,),
    )
    client = await aiohttp_client(server.create_app(settings))
    status = await prestop(client)
    sig = phase(status, "signal")
    assert sig["mode"] == "url" and sig["status"] == 200
    kinds = [e["event"] for e in read_events(events)]
    assert kinds[-2:] == ["shutdown", "exit"]
    assert phase(status, "drain")["outcome"] == "ok"


async def test_the_kept_app_hook_is_called_after_convergence_with_its_headers(
    aiohttp_client: ClientFactory, container: Make, tmp_path: Path
) -> None:
    app, events, port = start_app(container, tmp_path)
    hook = plan_module.KeptHook(
        container="app", path="/hook", port=port, host="127.0.0.1", headers=(("X-From", "q"),)
    )
    settings = make_settings(
        plan={**FAST, "kept_hook": hook, "kept_hook_timeout": 2.0},
        app_container_ids=(app.id,),
    )
    client = await aiohttp_client(server.create_app(settings))
    status = await prestop(client)
    kept = phase(status, "kept_hook")
    assert kept["outcome"] == "ok" and kept["status"] == 200
    hook_events = [e for e in read_events(events) if e["event"] == "hook"]
    assert len(hook_events) == 1
    assert hook_events[0]["headers"]["X-From"] == "q"
    assert hook_events[0]["t"] >= wall(phase(status, "converge")["ended_at"]) - 0.01


async def test_a_shell_main_process_that_will_not_forward_the_stop_signal_is_reported(
    aiohttp_client: ClientFactory, container: Make
) -> None:
    app = container(["sh", "-c", "sleep 30; echo done"])
    wait_for(lambda: len(app.pids()) == 2)
    settings = make_settings(plan=FAST, app_container_ids=(app.id,))
    client = await aiohttp_client(server.create_app(settings))
    status = await prestop(client)
    assert phase(status, "signal")["mode"] == "return"
    warnings = [w for w in status["warnings"] if w["phase"] == "signal"]
    assert len(warnings) == 1
    assert "is a shell" in warnings[0]["warning"] and "SIGTERM" in warnings[0]["warning"]
