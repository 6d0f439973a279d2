"""Image names mapped to local programs: the rig has no images, only this machine.

A container's argv is built as a container runtime does (``command`` replaces
the image's ENTRYPOINT, ``args`` replace its CMD), from a small table of what
the images the rig uses would contain. The table is keyed by the image's
repository base name (registry, path and tag are ignored), so
``ghcr.io/quiesce-dev/quiesce:0.1.0`` and ``quiesce/quiesce:dev`` are the same.

Programs named in a command are mapped too: ``quiesce`` is this venv's
``quiesce`` entry point and ``python``/``python3`` is this venv's interpreter,
so a manifest written for a real cluster runs here unchanged. Anything else is
run as is, found on the host's PATH.
"""

from __future__ import annotations

import dataclasses
import signal
import sys
from collections.abc import Sequence
from typing import Final


@dataclasses.dataclass(frozen=True)
class Image:
    """What the rig pretends an image contains."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    stop_signal: signal.Signals = signal.SIGTERM
    """The image's STOPSIGNAL (the runtime sends it; the kubelet never chooses)."""


PROGRAMS: Final[dict[str, tuple[str, ...]]] = {
    "quiesce": (sys.executable, "-m", "quiesce"),
    "python": (sys.executable,),
    "python3": (sys.executable,),
}
"""Program names in a command replaced by this venv's equivalents."""

IMAGES: Final[dict[str, Image]] = {
    # The sidecar image: ENTRYPOINT ["quiesce"].
    "quiesce": Image(entrypoint=PROGRAMS["quiesce"]),
    # The rig's graceful HTTP app.
    "testapp": Image(entrypoint=(sys.executable, "-m", "quiesce.rig.testapp")),
    "quiesce-testapp": Image(entrypoint=(sys.executable, "-m", "quiesce.rig.testapp")),
    # Official python images: CMD ["python3"].
    "python": Image(cmd=(sys.executable,)),
    # nginx's Dockerfile says STOPSIGNAL SIGQUIT (graceful stop); no nginx binary
    # here, so a command is required and runs as is.
    "nginx": Image(stop_signal=signal.SIGQUIT),
    "nginx-unprivileged": Image(stop_signal=signal.SIGQUIT),
    "openresty": Image(stop_signal=signal.SIGQUIT),
}


class NoProgram(Exception):
    """The image maps to no program and the container gives no command."""


def repository(image: str) -> str:
    """``ghcr.io/org/name:tag@sha256:...`` -> ``name``."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def lookup(image: str) -> Image:
    return IMAGES.get(repository(image), Image())


def argv(image: str, command: Sequence[str] | None, args: Sequence[str] | None) -> list[str]:
    """The process argv, as a runtime combines ENTRYPOINT/CMD with command/args."""
    if not command and repository(image) not in IMAGES:
        raise NoProgram(
            f"image {image!r} has no local program in the rig: give the container a command"
        )
    known = lookup(image)
    if command:
        head: list[str] = list(command)
        tail: list[str] = list(args or [])
    else:
        head = list(known.entrypoint)
        tail = list(args) if args else list(known.cmd)
    full = head + tail
    if not full:
        raise NoProgram(
            f"image {image!r} has no local program in the rig: give the container a command"
        )
    mapped = PROGRAMS.get(full[0])
    if mapped is not None:
        full = [*mapped, *full[1:]]
    return full


def stop_signal(image: str, lifecycle_stop_signal: str | None) -> signal.Signals:
    """``lifecycle.stopSignal`` if set, else the image's STOPSIGNAL, else SIGTERM."""
    if lifecycle_stop_signal:
        return signal.Signals[lifecycle_stop_signal]
    return lookup(image).stop_signal
