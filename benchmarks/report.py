"""Shared by the benchmarks: the machine they ran on, and their section of docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import re
import time
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    """One line naming the machine: cores, CPU model, Python, load at the start."""
    model = cpu_model()
    load = os.getloadavg()[0]
    return (
        f"{os.cpu_count()} CPUs (nproc), {model}; Python {platform.python_version()}; "
        f"load average {load:.1f} at the start (the machine is shared)"
    )


def today() -> str:
    return time.strftime("%Y-%m-%d")


def write_section(heading: str, block: str, *, doc: Path = DOC) -> None:
    """Replace only the ``## <heading>`` section; other sections belong to other benchmarks."""
    doc.parent.mkdir(parents=True, exist_ok=True)
    current = doc.read_text() if doc.exists() else "# Benchmarks\n\n"
    block = block.rstrip("\n") + "\n"
    pattern = re.compile(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(current):
        updated = pattern.sub(lambda _: block + "\n", current, count=1)
    else:
        updated = current.rstrip("\n") + "\n\n" + block
    doc.write_text(updated.rstrip("\n") + "\n")
