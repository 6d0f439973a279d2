"""Table-driven: durations, shell scripts, images and flags as the rules read them."""

from __future__ import annotations

import pytest

from quiesce.lint import commands, dockerfile, images, timeparse


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("1m30s", 90),
        ("2h", 7200),
        ("45", 45),
        ("1.5s", 1.5),
        ("", None),
        ("10x", None),
        ("s", None),
        ("1m 30s", None),
        ("1h0m0.5s", 3600.5),
        ("-5s", None),
    ],
)
def test_go_durations(text: str, seconds: float | None) -> None:
    assert timeparse.go_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("1m", 60),
        ("PT45S", 45),
        ("pt1m30s", 90),
        ("30000", 30),
        ("500ms", 0.5),
        ("PT", None),
        ("soon", None),
    ],
)
def test_spring_durations_treat_bare_numbers_as_milliseconds(
    text: str, seconds: float | None
) -> None:
    assert timeparse.spring_duration(text) == seconds


@pytest.mark.parametrize(
    ("argv", "seconds"),
    [
        (["sleep", "20"], 20),
        (["/bin/sleep", "1m"], 60),
        (["sleep", "5", "5s"], 10),  # GNU sleep adds its arguments
        (["sh", "-c", "sleep 10 && nginx -s quit && sleep 5"], 15),
        (["sh", "-c", "echo bye; /bin/sleep 2.5"], 2.5),
        (["sleep", "infinity"], None),
        (["sh", "-c", "sleep $DELAY"], None),
        (["sh", "-c", "curl -X POST localhost/drain"], None),
        (["/bin/deregister"], None),
        ([], None),
    ],
)
def test_visible_sleep_of_exec_hooks(argv: list[str], seconds: float | None) -> None:
    assert commands.visible_sleep(argv) == seconds


@pytest.mark.parametrize(
    ("argv", "script"),
    [
        (["sh", "-c", "x"], "x"),
        (["/bin/bash", "-euxc", "x"], "x"),
        (["bash", "-e", "-c", "x"], "x"),
        (["sh", "script.sh"], None),
        (["python", "-c", "x"], None),
        (["sh", "-c"], None),
    ],
)
def test_shell_script_extraction(argv: list[str], script: str | None) -> None:
    assert commands.shell_script(argv) == script


@pytest.mark.parametrize(
    ("script", "forwards"),
    [
        ("exec app", True),
        ("cd /srv && exec app --port 80", True),
        ("set -e\nsetup\nexec app", True),
        ("trap 'kill -TERM $p' TERM; app & p=$!; wait", True),
        ("app", False),
        ("echo exec is a word here; app", False),
        ("./executor", False),
    ],
)
def test_script_forwards_signal(script: str, forwards: bool) -> None:
    assert commands.script_forwards_signal(script) is forwards


@pytest.mark.parametrize(
    ("image", "quits"),
    [
        ("nginx", True),
        ("nginx:1.27", True),
        ("docker.io/library/nginx:1.19.5-alpine", True),
        ("nginx:1.19.4", False),
        ("nginx:1.17", False),
        ("nginx@sha256:abc", True),
        ("nginxinc/nginx-unprivileged:1.25", True),
        ("openresty/openresty:alpine", True),
        ("public.ecr.aws/nginx/nginx:1.27", True),
        ("bitnami/nginx:1.25", False),
        ("registry.example.com/library/nginx:1.27", False),  # a private copy: unknown
        ("localhost:5000/tengine:3", False),
        ("registry.k8s.io/ingress-nginx/controller:v1.10.0", None),
        ("nginx/nginx-prometheus-exporter:1.1", None),
        ("python:3.12", None),
        ("", None),
    ],
)
def test_which_images_run_nginx_and_which_stop_it_with_sigquit(
    image: str, quits: bool | None
) -> None:
    assert images.stops_with_sigquit(image) is quits


@pytest.mark.parametrize(
    ("argv", "found"),
    [
        (
            ["gunicorn", "--graceful-timeout", "60"],
            [("gunicorn/hypercorn --graceful-timeout", 60, 2)],
        ),
        (
            ["uvicorn", "--timeout-graceful-shutdown=15"],
            [("uvicorn --timeout-graceful-shutdown", 15, 1)],
        ),
        (
            ["java", "-Dspring.lifecycle.timeout-per-shutdown-phase=PT1M", "-jar", "a.jar"],
            [("spring.lifecycle.timeout-per-shutdown-phase", 60, 1)],
        ),
        (
            ["traefik", "--entryPoints.web.transport.lifeCycle.graceTimeOut=42s"],
            [("traefik lifeCycle.graceTimeOut", 42, 1)],
        ),
        (["server", "--shutdown-timeout", "1m"], [("--shutdown-timeout", 60, 2)]),
        (
            ["sh", "-c", "exec gunicorn --graceful-timeout 90 app"],
            [("gunicorn/hypercorn --graceful-timeout", 90, 2)],
        ),
        (["gunicorn", "--graceful-timeout"], []),  # no value: nothing to compare
        (["gunicorn", "--graceful-timeout", "soon"], []),
        (["gunicorn", "--timeout", "120"], []),  # the worker timeout is not a shutdown timeout
    ],
)
def test_shutdown_timeouts_on_command_lines(
    argv: list[str], found: list[tuple[str, float, int]]
) -> None:
    assert [(t.setting, t.seconds, t.index) for t in commands.timeouts_in_argv(argv)] == found


@pytest.mark.parametrize(
    ("value", "argv"),
    [
        ('["app", "--x"]', ["app", "--x"]),
        ("app --x", None),
        ("['app']", None),
        ('["app", 1]', None),
        ("[broken", None),
    ],
)
def test_dockerfile_exec_form_is_a_json_array_of_strings(
    value: str, argv: list[str] | None
) -> None:
    assert dockerfile.exec_form(value) == argv
