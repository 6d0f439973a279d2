"""Rules QL001 and QL004 over Dockerfiles, parsed with ``dockerfile-parse``.

The image decides what PID 1 is and which signal stops it, so a shell-form
``CMD`` or a missing ``STOPSIGNAL SIGQUIT`` for nginx is visible before any
manifest exists. Only the final stage runs; it inherits ``CMD``,
``ENTRYPOINT`` and ``STOPSIGNAL`` from the stages it is built ``FROM``.

dockerfile-parse is lenient (unknown instructions pass, heredoc bodies come
back as instructions), so this module checks the structure itself and
reports what a build would reject, with its line.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
from collections.abc import Mapping, Sequence
from typing import Final

from dockerfile_parse import DockerfileParser

from quiesce import annotations as keys
from quiesce.lint import commands, findings, images, rules

INSTRUCTIONS: Final = frozenset(
    {
        "ADD",
        "ARG",
        "CMD",
        "COPY",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "FROM",
        "HEALTHCHECK",
        "LABEL",
        "MAINTAINER",
        "ONBUILD",
        "RUN",
        "SHELL",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
        "COMMENT",
    }
)
_HEREDOC = re.compile(r"<<-?\s*[\"']?([A-Za-z_][A-Za-z0-9_]*)[\"']?")
_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)(?::?-[^}]*)?\}?")
_INSTALLS_NGINX = re.compile(
    r"\b(?:apt-get|apt|apk|yum|dnf|microdnf|zypper)\b[^;&|]*\b(?:nginx|openresty|tengine)\b"
)
_RUNS_NGINX = re.compile(r"(?:^|[/\s\"'\[])(?:nginx|openresty|tengine)\b")
_QUIT: Final = frozenset({"SIGQUIT", "QUIT", "3"})


@dataclasses.dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str
    line: int


@dataclasses.dataclass(frozen=True)
class Stage:
    base: str
    alias: str | None
    instructions: tuple[Instruction, ...]
    line: int


@dataclasses.dataclass(frozen=True)
class Result:
    """The outcome of one Dockerfile: findings, or errors when it could not be read."""

    found: tuple[findings.Finding, ...] = ()
    errors: tuple[findings.InputError, ...] = ()

    @property
    def checked(self) -> bool:
        return not self.errors


def lint_file(path: str) -> Result:
    """Read and check one Dockerfile."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        return _fail(path, None, f"cannot read Dockerfile: {e.strerror or e}")
    return lint_bytes(raw, path)


def lint_bytes(raw: bytes, path: str) -> Result:
    """Check Dockerfile content; ``path`` only names it in messages."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return _fail(path, raw[: e.start].count(b"\n") + 1, "Dockerfile is not UTF-8 text")
    try:
        structure = DockerfileParser(fileobj=io.BytesIO(raw)).structure
    except Exception as e:  # dockerfile-parse raises plain exceptions on odd input
        return _fail(path, None, f"cannot parse Dockerfile: {e}")
    parsed = _instructions(structure, path)
    if isinstance(parsed, findings.InputError):
        return Result(errors=(parsed,))
    stages = _stages(parsed, path)
    if isinstance(stages, findings.InputError):
        return Result(errors=(stages,))
    ignored, unknown = _ignored(parsed, path)
    out = [*unknown]
    ref = findings.ObjectRef("Dockerfile", path)
    out.extend(f for f in _check(stages, ref, path) if f.rule_id not in ignored)
    return Result(found=tuple(out))


def _fail(path: str, line: int | None, message: str) -> Result:
    return Result(errors=(findings.InputError(findings.Location(path, line), message),))


def _instructions(
    structure: Sequence[Mapping[str, object]], path: str
) -> list[Instruction] | findings.InputError:
    """Instructions with heredoc bodies folded back into their instruction."""
    out: list[Instruction] = []
    terminator: str | None = None
    for item in structure:
        keyword = str(item.get("instruction", "")).upper()
        value = str(item.get("value", ""))
        line_index = item.get("startline", 0)
        line = (line_index if isinstance(line_index, int) else 0) + 1
        if terminator is not None:
            content = str(item.get("content", "")).strip()
            last = out[-1]
            out[-1] = Instruction(last.keyword, f"{last.value}\n{content}", last.line)
            if content == terminator:
                terminator = None
            continue
        if keyword not in INSTRUCTIONS:
            return findings.InputError(
                findings.Location(path, line), f"unknown Dockerfile instruction {keyword!r}"
            )
        out.append(Instruction(keyword, value, line))
        if keyword != "COMMENT":
            heredoc = _HEREDOC.search(value)
            terminator = heredoc.group(1) if heredoc else None
    if terminator is not None:
        where = findings.Location(path, out[-1].line)
        return findings.InputError(where, f"heredoc <<{terminator} is never closed")
    return out


def _stages(instructions: Sequence[Instruction], path: str) -> list[Stage] | findings.InputError:
    args: dict[str, str] = {}
    stages: list[Stage] = []
    current: list[Instruction] | None = None
    base, alias, line = "", None, 0
    for ins in instructions:
        if ins.keyword == "COMMENT":
            continue
        if ins.keyword == "FROM":
            if current is not None:
                stages.append(Stage(base, alias, tuple(current), line))
            words = ins.value.split()
            words = [w for w in words if not w.startswith("--")]  # --platform=...
            if not words:
                return findings.InputError(findings.Location(path, ins.line), "FROM needs an image")
            base = _VARIABLE.sub(lambda m: args.get(m.group(1), ""), words[0])
            alias = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            current, line = [], ins.line
            continue
        if current is None:
            if ins.keyword == "ARG":
                name, _, default = ins.value.partition("=")
                args[name.strip()] = default.strip().strip("\"'")
                continue
            return findings.InputError(
                findings.Location(path, ins.line), f"{ins.keyword} before the first FROM"
            )
        current.append(ins)
    if current is None:
        return findings.InputError(findings.Location(path, 1), "no FROM instruction")
    stages.append(Stage(base, alias, tuple(current), line))
    return stages


@dataclasses.dataclass(frozen=True)
class _Effective:
    """What the final image inherits: its external base and the last of each setting."""

    root: str
    entrypoint: Instruction | None
    cmd: Instruction | None
    stopsignal: Instruction | None
    runs: tuple[Instruction, ...]


def _effective(stages: Sequence[Stage], index: int, depth: int = 0) -> _Effective:
    stage = stages[index]
    parent: _Effective | None = None
    if depth < len(stages):
        for i in range(index):
            if stages[i].alias == stage.base or str(i) == stage.base:
                parent = _effective(stages, i, depth + 1)
    entrypoint = parent.entrypoint if parent else None
    cmd = parent.cmd if parent else None
    stopsignal = parent.stopsignal if parent else None
    runs = list(parent.runs) if parent else []
    for ins in stage.instructions:
        if ins.keyword == "ENTRYPOINT":
            entrypoint, cmd = ins, None  # ENTRYPOINT resets a CMD inherited from the base
        elif ins.keyword == "CMD":
            cmd = ins
        elif ins.keyword == "STOPSIGNAL":
            stopsignal = ins
        elif ins.keyword == "RUN":
            runs.append(ins)
    root = parent.root if parent else stage.base
    return _Effective(root, entrypoint, cmd, stopsignal, tuple(runs))


def exec_form(value: str) -> list[str] | None:
    """The argv of an exec-form (JSON array) value; None for shell form.

    Docker treats anything that is not a JSON array of strings as shell form,
    so `CMD ['nginx']` (single quotes) is shell form too.
    """
    stripped = value.strip()
    if not stripped.startswith("["):
        return None
    try:
        parsed = json.loads(stripped)
    except ValueError:
        return None
    if isinstance(parsed, list) and all(isinstance(p, str) for p in parsed):
        return parsed
    return None


def _check(stages: Sequence[Stage], ref: findings.ObjectRef, path: str) -> list[findings.Finding]:
    final = _effective(stages, len(stages) - 1)
    out: list[findings.Finding] = []

    def report(rule_id: str, ins_line: int, field: str, message: str, fix: str) -> None:
        rule = rules.RULES[rule_id]
        location = findings.Location(path, ins_line)
        out.append(
            findings.Finding(rule_id, rule.severity, ref, None, field, message, fix, location)
        )

    # QL001: what becomes PID 1. A shell-form ENTRYPOINT ignores CMD entirely;
    # an exec-form ENTRYPOINT gets an exec-form CMD appended as arguments.
    entrypoint, cmd = final.entrypoint, final.cmd
    ep_argv = exec_form(entrypoint.value) if entrypoint is not None else None
    cmd_argv = exec_form(cmd.value) if cmd is not None else None

    def shell_form(ins: Instruction) -> None:
        if commands.script_forwards_signal(ins.value):
            return
        quoted = ins.value.strip().startswith("[")
        report(
            "QL001",
            ins.line,
            ins.keyword,
            (
                f"shell form `{ins.keyword} {ins.value.strip()[:60]}` runs /bin/sh -c as"
                " PID 1; SIGTERM reaches the shell, not the app"
                + (" (not valid JSON, so Docker treats it as shell form)" if quoted else "")
            ),
            f'use the exec form: {ins.keyword} ["app", "arg", ...] (double quotes)',
        )

    def shell_script(ins: Instruction, argv: list[str]) -> None:
        script = commands.shell_script(argv)
        if script is not None and not commands.script_forwards_signal(script):
            report(
                "QL001",
                ins.line,
                ins.keyword,
                f"`{' '.join(argv[:2])} ...` runs the app under a shell without `exec`",
                "start the script's last command with `exec`, or run the app directly",
            )

    if entrypoint is not None and ep_argv is None:
        shell_form(entrypoint)
    else:
        if entrypoint is not None and ep_argv is not None:
            shell_script(entrypoint, ep_argv + (cmd_argv or []))
        if cmd is not None and cmd_argv is None:
            shell_form(cmd)
        elif cmd is not None and cmd_argv is not None and entrypoint is None:
            shell_script(cmd, cmd_argv)

    # QL004: nginx in the image, stopped by something other than SIGQUIT.
    runs_nginx = any(
        ins is not None and _RUNS_NGINX.search(ins.value) for ins in (final.entrypoint, final.cmd)
    )
    base_quits = images.stops_with_sigquit(final.root)
    nginx_base = base_quits is not None
    installs = any(_INSTALLS_NGINX.search(ins.value) for ins in final.runs)
    inherits_cmd = final.entrypoint is None and final.cmd is None
    if (runs_nginx and (nginx_base or installs)) or (nginx_base and inherits_cmd):
        signal = final.stopsignal.value.strip().upper() if final.stopsignal else None
        if signal is None:
            anchor = final.cmd or final.entrypoint
            line = anchor.line if anchor is not None else stages[-1].line
            if not base_quits:
                report(
                    "QL004",
                    line,
                    "STOPSIGNAL",
                    "nginx runs here but the image sets no STOPSIGNAL, so it is stopped with"
                    " SIGTERM (fast shutdown, open connections cut)",
                    "add `STOPSIGNAL SIGQUIT`",
                )
        elif signal not in _QUIT:
            report(
                "QL004",
                final.stopsignal.line if final.stopsignal else 1,
                "STOPSIGNAL",
                f"STOPSIGNAL {signal} stops nginx with its fast shutdown (open connections cut)",
                "use `STOPSIGNAL SIGQUIT`",
            )
    return out


def _ignored(
    instructions: Sequence[Instruction], path: str
) -> tuple[frozenset[str], list[findings.Finding]]:
    """``# quiesce.dev/lint-ignore: QL001,...`` comments; unknown IDs become QL000."""
    ignored: set[str] = set()
    unknown: list[findings.Finding] = []
    for ins in instructions:
        if ins.keyword != "COMMENT" or not ins.value.startswith(keys.LINT_IGNORE):
            continue
        value = ins.value[len(keys.LINT_IGNORE) :].lstrip(" :=")
        for item in (p.strip().upper() for p in value.split(",")):
            if not item:
                continue
            if item in rules.RULES and item != "QL000":
                ignored.add(item)
                continue
            rule = rules.RULES["QL000"]
            unknown.append(
                findings.Finding(
                    "QL000",
                    rule.severity,
                    findings.ObjectRef("Dockerfile", path),
                    None,
                    "comment",
                    f"{item!r} is not a quiesce lint rule",
                    rule.fix,
                    findings.Location(path, ins.line),
                )
            )
    return frozenset(ignored), unknown
