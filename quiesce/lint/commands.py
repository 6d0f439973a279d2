"""Reading command lines and shell scripts the way the stop signal sees them.

Shared by the manifest and Dockerfile rules: whether a process tree started
by ``sh -c`` lets SIGTERM reach the app, how long a hook visibly sleeps, and
which flags on a command line set an application's shutdown timeout.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
from collections.abc import Callable, Sequence
from typing import Final

from quiesce.lint import timeparse

SHELLS: Final = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh", "mksh"})
_EXEC = re.compile(r"(?:^|[;&|(\n]|&&|\|\|)\s*exec\s")
_TRAP_TERM = re.compile(r"\btrap\b[^\n;]*\b(?:TERM|SIGTERM|15|EXIT)\b")
_SLEEP = re.compile(r"(?:^|[;&|(\n]|&&|\|\|)\s*(?:/bin/|/usr/bin/)?sleep\s+([^\s;&|)]+)")
_NGINX_QUIT = re.compile(r"\b(?:nginx|openresty)\b[^;&|\n]*\s-s\s*quit\b")
_KILL_QUIT = re.compile(r"\bkill\s+(?:-s\s*)?-?(?:SIGQUIT|QUIT|3)\b")


def basename(arg: str) -> str:
    return os.path.basename(arg.strip())


def shell_script(argv: Sequence[str]) -> str | None:
    """The script of ``sh -c SCRIPT ...`` (any flags such as ``-ec``), else None."""
    if not argv or basename(argv[0]) not in SHELLS:
        return None
    seen_c = False
    for arg in argv[1:]:
        if not seen_c:
            if arg.startswith("-") and not arg.startswith("--") and "c" in arg[1:]:
                seen_c = True
            elif not arg.startswith("-"):
                return None  # `sh script.sh`: a script file, not `-c`
            continue
        return arg
    return None


def script_forwards_signal(script: str) -> bool:
    """True when the script ``exec``s its command or traps TERM to forward it."""
    return bool(_EXEC.search(script) or _TRAP_TERM.search(script))


def split(text: str) -> list[str]:
    """Shell-style words; falls back to whitespace for unbalanced quotes."""
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def visible_sleep(argv: Sequence[str]) -> float | None:
    """Seconds an exec hook visibly sleeps (``sleep 20``, ``sh -c "sleep 5; ..."``)."""
    if not argv:
        return None
    if basename(argv[0]) == "sleep":
        parts = [timeparse.sleep_seconds(a) for a in argv[1:]]
        if not parts or any(p is None for p in parts):
            return None
        return sum(p for p in parts if p is not None)
    script = shell_script(argv)
    if script is None:
        return None
    total, found = 0.0, False
    for match in _SLEEP.finditer(script):
        value = timeparse.sleep_seconds(match.group(1))
        if value is not None:
            total, found = total + value, True
    return total if found else None


def quits_nginx_gracefully(argv: Sequence[str]) -> bool:
    """A hook that runs ``nginx -s quit`` or sends SIGQUIT itself."""
    joined = " ".join(argv)
    return bool(_NGINX_QUIT.search(joined) or _KILL_QUIT.search(joined))


@dataclasses.dataclass(frozen=True)
class Timeout:
    """An application shutdown timeout found on a command line or in config."""

    setting: str
    seconds: float
    index: int
    """Index of the word that carries the value (for the field path)."""


@dataclasses.dataclass(frozen=True)
class _Flag:
    setting: str
    pattern: re.Pattern[str]
    parse: Callable[[str], float | None]


def _flag(name: str, parse: Callable[[str], float | None], setting: str | None = None) -> _Flag:
    return _Flag(setting or name, re.compile(re.escape(name) + r"(?:=(.*))?$", re.I), parse)


FLAGS: Final = (
    _flag("--graceful-timeout", timeparse.seconds, "gunicorn/hypercorn --graceful-timeout"),
    _flag("--timeout-graceful-shutdown", timeparse.seconds, "uvicorn --timeout-graceful-shutdown"),
    _flag(
        "--spring.lifecycle.timeout-per-shutdown-phase",
        timeparse.spring_duration,
        "spring.lifecycle.timeout-per-shutdown-phase",
    ),
    _flag(
        "-Dspring.lifecycle.timeout-per-shutdown-phase",
        timeparse.spring_duration,
        "spring.lifecycle.timeout-per-shutdown-phase",
    ),
    _flag("--shutdown-timeout", timeparse.go_duration),
    _flag("--graceful-shutdown-timeout", timeparse.go_duration),
    _flag("--shutdown-grace-period", timeparse.go_duration),
    _Flag(
        "traefik lifeCycle.graceTimeOut",
        re.compile(r"--entrypoints\.[^.=]+\.transport\.lifecycle\.gracetimeout(?:=(.*))?$", re.I),
        timeparse.go_duration,
    ),
)

CONFIG_KEYS: Final = (
    # Pingora's server configuration (YAML) and Spring Boot properties/YAML.
    ("pingora grace_period_seconds", re.compile(r"\bgrace_period_seconds\s*[:=]\s*(\d+)")),
    (
        "pingora graceful_shutdown_timeout_seconds",
        re.compile(r"\bgraceful_shutdown_timeout_seconds\s*[:=]\s*(\d+)"),
    ),
    (
        "spring.lifecycle.timeout-per-shutdown-phase",
        re.compile(r"timeout-per-shutdown-phase\"?\s*[:=]\s*\"?([0-9A-Za-z.]+)"),
    ),
)

ENV_SETTINGS: Final[dict[str, tuple[str, Callable[[str], float | None]]]] = {
    "UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN": (
        "uvicorn UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN",
        timeparse.seconds,
    ),
    "SPRING_LIFECYCLE_TIMEOUTPERSHUTDOWNPHASE": (
        "spring.lifecycle.timeout-per-shutdown-phase",
        timeparse.spring_duration,
    ),
    "SPRING_LIFECYCLE_TIMEOUT_PER_SHUTDOWN_PHASE": (
        "spring.lifecycle.timeout-per-shutdown-phase",
        timeparse.spring_duration,
    ),
}
ENV_COMMAND_LINES: Final = frozenset(
    {"GUNICORN_CMD_ARGS", "JAVA_OPTS", "JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS"}
)


def timeouts_in_argv(argv: Sequence[str]) -> list[Timeout]:
    """Shutdown timeouts set by flags, as ``--flag=value`` or ``--flag value``."""
    found: list[Timeout] = []
    for index, word in enumerate(argv):
        for flag in FLAGS:
            match = flag.pattern.match(word)
            if match is None:
                continue
            value_index = index if match.group(1) is not None else index + 1
            if value_index >= len(argv):
                continue
            raw = match.group(1) if match.group(1) is not None else argv[value_index]
            seconds = flag.parse(raw)
            if seconds is not None:
                found.append(Timeout(flag.setting, seconds, value_index))
    # Shutdown timeouts hidden inside `sh -c "gunicorn --graceful-timeout 60 ..."`.
    script = shell_script(argv)
    if script is not None:
        script_index = list(argv).index(script)
        found.extend(
            Timeout(t.setting, t.seconds, script_index) for t in timeouts_in_argv(split(script))
        )
    return found


def timeouts_in_config(text: str) -> list[tuple[str, float]]:
    """Shutdown timeouts in configuration text (Pingora YAML, Spring properties)."""
    found: list[tuple[str, float]] = []
    for setting, pattern in CONFIG_KEYS:
        for match in pattern.finditer(text):
            raw = match.group(1)
            parse = timeparse.spring_duration if "spring" in setting else timeparse.seconds
            seconds = parse(raw)
            if seconds is not None:
                found.append((setting, seconds))
    return found
