"""Signals: the app's main process is found by its container (cgroup), never by name."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from quiesce.sidecar import signals

from .helpers import APP, FakeContainer, read_events, wait_for

Make = Callable[..., FakeContainer]


def test_main_process_is_found_by_container_id_not_by_name(container: Make) -> None:
    # two containers running the very same command line
    a = container(["sleep", "30"])
    b = container(["sleep", "30"])
    wait_for(lambda: a.pids() and b.pids())
    found_a = signals.main_process(a.id)
    found_b = signals.main_process(b.id)
    assert found_a is not None and found_b is not None
    assert (found_a.pid, found_b.pid) == (a.pid, b.pid)
    assert found_a.argv == ("sleep", "30")
    assert not found_a.swallows(signal.SIGTERM)


def test_an_unknown_container_has_no_main_process() -> None:
    assert signals.main_process("0" * 64) is None


def test_the_main_process_is_the_one_whose_parent_is_outside_the_container(
    container: Make,
) -> None:
    c = container(["sh", "-c", "sleep 30 & sleep 30; wait"])
    wait_for(lambda: len(c.pids()) == 3)
    main = signals.main_process(c.id)
    assert main is not None
    assert main.pid == c.pid
    assert len(main.children) == 2


def test_a_shell_with_children_and_no_trap_is_reported_as_swallowing_signals(
    container: Make,
) -> None:
    c = container(["sh", "-c", "sleep 30; echo done"])
    wait_for(lambda: len(c.pids()) == 2)
    main = signals.main_process(c.id)
    assert main is not None and main.name == "sh"
    assert main.swallows(signal.SIGTERM)


def test_a_shell_that_traps_the_signal_is_not_reported(container: Make) -> None:
    c = container(["sh", "-c", "trap 'kill $!' TERM; sleep 30 & wait"])
    wait_for(lambda: len(c.pids()) == 2)
    main = signals.main_process(c.id)
    assert main is not None
    assert not main.swallows(signal.SIGTERM)
    assert main.swallows(signal.SIGQUIT)


def test_send_and_alive_on_a_real_process(container: Make, tmp_path: Path) -> None:
    events = tmp_path / "events"
    argv = [sys.executable, APP, "--port", "0", "--events", str(events), "--exit-on", "QUIT"]
    c = container(argv)
    # the file exists before the app installs its handlers: wait for its "ready"
    wait_for(lambda: any(e["event"] == "ready" for e in read_events(events)))
    assert signals.alive(c.pid)
    signals.send(c.pid, signal.SIGQUIT)
    c.proc.wait(5)
    time.sleep(0.05)
    assert not signals.alive(c.pid)
    signalled = [e.get("signal") for e in read_events(events) if e["event"] == "signal"]
    assert signalled == ["SIGQUIT"]


def test_own_container_ids_reads_our_cgroup() -> None:
    assert isinstance(signals.own_container_ids(), frozenset)


def test_without_a_shared_pid_namespace_the_app_is_unknown_not_gone(tmp_path: Path) -> None:
    """A container that sees only its own processes cannot tell that the app exited."""
    own = "a" * 64
    for pid in (1, 7):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cgroup").write_text(f"0::/kubepods/pod1/{own}\n")
    (tmp_path / "self").symlink_to(tmp_path / "7")
    assert not signals.others_visible(str(tmp_path))
    (tmp_path / "9").mkdir()
    (tmp_path / "9" / "cgroup").write_text(f"0::/kubepods/pod1/{'b' * 64}\n")
    assert signals.others_visible(str(tmp_path))
