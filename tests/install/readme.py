"""The README's ``sh`` blocks, found by section and heading, and a shell to run them in.

A block runs as a user pastes it: ``bash -eu -o pipefail`` from the repository
root, with the rig's kubeconfig in ``KUBECONFIG`` and the rig's real ``kubectl``
and ``helm`` and this checkout's ``quiesce`` first on ``PATH``.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from install import chartkit
from quiesce.rig import binaries, rig


def section(name: str) -> str:
    text = (chartkit.REPO / "README.md").read_text()
    start = text.index(f"<!-- section: {name} -->")
    return text[start : text.index(f"<!-- /section: {name} -->", start)]


def blocks(name: str, heading: str | None = None) -> list[str]:
    """The ``sh`` blocks of section ``name``, or of its ``### heading`` only."""
    body = section(name)
    if heading is not None:
        (body,) = [p for p in re.split(r"^### ", body, flags=re.M) if p.startswith(heading)]
    return re.findall(r"```sh\n(.*?)```", body, flags=re.S)


def commands(block: str) -> list[list[str]]:
    """A block's commands, one argv each (continuation lines joined, comments dropped)."""
    out = []
    for line in block.replace("\\\n", " ").splitlines():
        argv = shlex.split(line, comments=True)
        if argv:
            out.append(argv)
    return out


class Shell:
    """Runs README blocks against one rig; ``bin_dir`` is where the tools are linked."""

    def __init__(self, r: rig.Rig, bin_dir: Path) -> None:
        bin_dir.mkdir(parents=True, exist_ok=True)
        for tool in ("kubectl", "helm"):
            link = bin_dir / tool
            if not link.exists():
                link.symlink_to(binaries.require(tool))
        self.env = {
            **os.environ,
            "KUBECONFIG": str(r.kubeconfig),
            "PATH": os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent),
                                     os.environ.get("PATH", "")]),
        }  # fmt: skip

    def run(self, block: str, *, timeout: float = 600) -> str:
        result = subprocess.run(
            ["bash", "-eu", "-o", "pipefail", "-c", block],
            cwd=chartkit.REPO, env=self.env, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip
        assert result.returncode == 0, (
            f"this README block failed ({result.returncode}):\n{block}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
        return result.stdout
