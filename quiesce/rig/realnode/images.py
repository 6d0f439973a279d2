"""The real node's images, built here with no registry: OCI archives for ``ctr import``.

Two tiny single-layer images:

- **pause**: the Kubernetes module's own ``build/pause/linux/pause.c``, compiled
  with ``gcc -static`` (as upstream's Makefile does), pinned as containerd's
  sandbox image;
- **busybox**: Debian's static busybox (``busybox-static``) with its applets
  linked under ``/bin``: a shell, ``httpd``, ``sleep``, ``date``, enough for
  probes, hooks and signal handling in tests.

Each archive is an OCI image layout in a tar file (``oci-layout``,
``index.json``, ``blobs/sha256/...``), written deterministically (mtime 0,
owner root) and cached under ``~/.cache/quiesce/images/`` by the content of
its inputs, so a warm rig never rebuilds it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Final

from quiesce.rig import binaries, errors

IMAGES_DIR: Final = binaries.CACHE_ROOT / "images"
PAUSE_IMAGE: Final = "quiesce.local/rig/pause:" + binaries.KUBERNETES_VERSION
BUSYBOX_IMAGE: Final = "quiesce.local/rig/busybox:1"
BUSYBOX: Final = Path("/bin/busybox")
BUSYBOX_APPLETS: Final = (
    "sh", "ash", "cat", "date", "echo", "env", "false", "httpd", "hostname", "id", "kill",
    "ls", "mkdir", "nc", "ps", "rm", "sleep", "sync", "tail", "test", "touch", "true",
    "wget", "[",
)  # fmt: skip


PASSWD: Final = b"root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"


@dataclasses.dataclass(frozen=True)
class Image:
    name: str
    archive: Path


def pause_source() -> Path:
    """``pause.c`` from the Kubernetes module the rig builds (in the Go module cache)."""
    src = (
        binaries.CACHE_ROOT
        / "go"
        / "mod"
        / f"k8s.io/kubernetes@{binaries.KUBERNETES_VERSION}"
        / "build/pause/linux/pause.c"
    )
    if not src.exists():
        raise errors.MissingTool(
            "pause.c",
            f"{src} is not in the Go module cache; build the rig (`python -m quiesce.rig build`)",
        )
    return src


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer(files: dict[str, tuple[bytes, int]], links: dict[str, str]) -> bytes:
    """An uncompressed layer tar: ``files`` maps path -> (content, mode); ``links`` symlinks."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted(
            {str(Path(p).parents[i]) for p in [*files, *links] for i in range(len(Path(p).parts))}
            - {"."}
        )
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for path, (content, mode) in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(content), mode
            tar.addfile(info, io.BytesIO(content))
        for path, target in sorted(links.items()):
            info = tarfile.TarInfo(path)
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
            tar.addfile(info)
    return buf.getvalue()


def oci_archive(
    name: str, layer: bytes, *, entrypoint: list[str], cmd: list[str] | None = None
) -> bytes:
    """A one-layer OCI image layout as a tar archive, named ``name`` for ``ctr import``."""
    layer_digest = _digest(layer)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Entrypoint": entrypoint,
                "Cmd": cmd,
                "Env": ["PATH=/bin"],
                "WorkingDir": "/",
            },
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
            "history": [{"created_by": "quiesce.rig.realnode.images"}],
        },
        sort_keys=True,
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest,
                    "size": len(layer),
                }
            ],
        },
        sort_keys=True,
    ).encode()
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": _digest(manifest),
                    "size": len(manifest),
                    "platform": {"architecture": "amd64", "os": "linux"},
                    "annotations": {
                        "io.containerd.image.name": name,
                        "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1],
                    },
                }
            ],
        },
        sort_keys=True,
    ).encode()
    entries = {
        "oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
        "index.json": index,
        **{f"blobs/sha256/{_digest(b)[7:]}": b for b in (config, manifest, layer)},
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for path, data in entries.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _cached(kind: str, key: bytes, make: Callable[[], bytes]) -> Path:
    out = IMAGES_DIR / f"{kind}-{hashlib.sha256(key).hexdigest()[:16]}.tar"
    if not out.exists():
        IMAGES_DIR.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_bytes(make())
        tmp.rename(out)
    return out


def pause_image() -> Image:
    """The sandbox image, compiled from the Kubernetes release's ``pause.c``."""
    src = pause_source()
    gcc = shutil.which("gcc")
    if gcc is None:
        raise errors.MissingTool("gcc", "the pause image is compiled here: apt-get install gcc")
    version = f"{binaries.KUBERNETES_VERSION}-quiesce"

    def make() -> bytes:
        build = IMAGES_DIR / "pause-build"
        build.mkdir(parents=True, exist_ok=True)
        out = build / "pause"
        # As build/pause/Makefile: -Os -Wall -Werror -static -DVERSION=...
        argv = [gcc, "-Os", "-Wall", "-Werror", "-static", f"-DVERSION={version}", "-o", str(out)]
        result = subprocess.run([*argv, str(src)], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise errors.RigError(f"compiling pause.c failed: {result.stderr.strip()}")
        subprocess.run(["strip", str(out)], capture_output=True, check=False)
        layer = _layer({"pause": (out.read_bytes(), 0o755)}, {})
        shutil.rmtree(build, ignore_errors=True)
        return oci_archive(PAUSE_IMAGE, layer, entrypoint=["/pause"])

    key = src.read_bytes() + version.encode() + PAUSE_IMAGE.encode()
    return Image(PAUSE_IMAGE, _cached("pause", key, make))


def busybox_image() -> Image:
    """A test image: Debian's static busybox and its applets under ``/bin``."""
    if not BUSYBOX.exists():
        raise errors.MissingTool("busybox", "apt-get install busybox-static")
    data = BUSYBOX.read_bytes()

    def make() -> bytes:
        links = {f"bin/{a}": "busybox" for a in BUSYBOX_APPLETS}
        files = {
            "bin/busybox": (data, 0o755),
            "etc/passwd": (PASSWD, 0o644),
            "etc/group": (b"root:x:0:\nnogroup:x:65534:\n", 0o644),
            "tmp/.keep": (b"", 0o644),
        }
        return oci_archive(BUSYBOX_IMAGE, _layer(files, links), entrypoint=[], cmd=["/bin/sh"])

    key = hashlib.sha256(data).digest() + ",".join(BUSYBOX_APPLETS).encode() + b"v1"
    return Image(BUSYBOX_IMAGE, _cached("busybox", key, make))
