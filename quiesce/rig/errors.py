"""Errors the rig raises: each names the component and where to look."""

from __future__ import annotations

from pathlib import Path


class RigError(Exception):
    """Base class: the rig could not do what was asked."""


class MissingTool(RigError):
    def __init__(self, tool: str, how: str) -> None:
        super().__init__(f"missing {tool}: {how}")
        self.tool = tool


class BuildFailed(RigError):
    def __init__(self, family: str, version: str, log: Path | None) -> None:
        where = f"; see {log}" if log else ""
        super().__init__(f"building {family} {version} failed{where}")
        self.family = family


class ComponentFailed(RigError):
    """A component exited or did not become ready; names its log file."""

    def __init__(self, component: str, reason: str, log: Path | None) -> None:
        tail = ""
        if log is not None and log.exists():
            lines = log.read_text(errors="replace").splitlines()[-15:]
            tail = "\n  | " + "\n  | ".join(lines) if lines else ""
        super().__init__(f"{component}: {reason} (log: {log}){tail}")
        self.component = component
        self.log = log


class PortInUse(RigError):
    def __init__(self, component: str, address: str, port: int) -> None:
        super().__init__(f"{component}: port {address}:{port} is already in use")
        self.component = component
        self.port = port
