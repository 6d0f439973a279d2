"""The product image, built here from the repository's own ``Dockerfile``: no registry.

Two steps, each cached in ``~/.cache/quiesce/images/`` by the hash of its inputs:

1. **The base** (``python-base-<hash>.tar``): Debian bookworm made with
   ``mmdebstrap`` (``minbase`` plus ``python3``, ``python3-venv``,
   ``python-is-python3`` and ``ca-certificates``: what the Dockerfile's
   ``python -m venv`` and pip need; no manuals, docs or locales), written as a
   one-layer OCI archive. Its installed packages and versions are listed beside
   it (``.packages``). Key: the suite, the mirror, the package list and the
   path filters.
2. **The image** (``quiesce-<hash>.tar``): ``buildah bud`` of the repository's
   ``Dockerfile`` (vfs storage and chroot isolation: no daemon, no overlay, no
   user namespaces) with ``--build-arg PYTHON_IMAGE=`` the base, pushed to an
   OCI archive named ``quiesce.local/quiesce:<hash>``. Key: the base's key
   and every file the build context holds (the ``Dockerfile``, ``pyproject.toml``,
   ``README.md`` and ``quiesce/`` without the rig, as ``.dockerignore`` says).
   The dependencies pip resolves are not in the key (the build resolves them);
   they are listed beside the archive (``.pip``) after each build.

Each buildah run has a storage root of its own, removed afterwards, so builds
never share state and nothing is left in ``/var/lib/containers``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Final

from quiesce.rig import errors
from quiesce.rig.realnode.images import IMAGES_DIR, Image

REPO: Final = Path(__file__).resolve().parents[3]
SUITE: Final = "bookworm"
MIRROR: Final = "http://deb.debian.org/debian"
PACKAGES: Final = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
PATH_FILTERS: Final = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/info/*",
)
BASE_NAME: Final = "localhost/quiesce-base"
IMAGE_REPO: Final = "quiesce.local/quiesce"
ENV_PATH: Final = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Read-only into the build's RUN steps: pip reaches its index as the host does.
BUILD_VOLUMES: Final = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pip.conf")
TOOLS: Final = {"mmdebstrap": "apt-get install mmdebstrap", "buildah": "apt-get install buildah"}
VERSION: Final = "quiesce-product-image v1"


def base_key() -> str:
    parts = [VERSION, SUITE, MIRROR, ",".join(PACKAGES), ",".join(PATH_FILTERS)]
    return _hash("\0".join(parts).encode())


def context_files(repo: Path = REPO) -> list[Path]:
    """What ``.dockerignore`` lets into the build context (plus the Dockerfile)."""
    files = [repo / "Dockerfile", repo / "pyproject.toml", repo / "README.md"]
    for path in sorted((repo / "quiesce").rglob("*")):
        rel = path.relative_to(repo)
        if rel.parts[:2] == ("quiesce", "rig") or "__pycache__" in rel.parts:
            continue
        if path.is_file() and path.suffix != ".pyc":
            files.append(path)
    return files


def image_key(repo: Path = REPO) -> str:
    h = hashlib.sha256(base_key().encode())
    for path in context_files(repo):
        h.update(str(path.relative_to(repo)).encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()[:16]


def _hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def check_tools() -> None:
    for tool, how in TOOLS.items():
        if shutil.which(tool) is None:
            raise errors.MissingTool(tool, f"the quiesce image is built here: {how}")


def _run(argv: Sequence[str], log: IO[str], *, cwd: Path | None = None, out: bool = False) -> str:
    """Run ``argv`` with its output in ``log``; with ``out``, its stdout is returned instead."""
    log.write("$ " + " ".join(argv) + "\n")
    log.flush()
    stdout = subprocess.PIPE if out else log
    result = subprocess.run(argv, stdout=stdout, stderr=log, cwd=cwd, text=True, check=False)
    if result.returncode != 0:
        raise errors.RigError(
            f"{argv[0]} failed ({result.returncode}) building the quiesce image; see {log.name}"
        )
    return result.stdout or ""


# --- the base ---------------------------------------------------------------------
def base_image(log: IO[str]) -> Image:
    """The Debian base with Python, as an OCI archive (built once per key)."""
    key = base_key()
    out = IMAGES_DIR / f"python-base-{key}.tar"
    name = f"{BASE_NAME}:{key}"
    if out.exists():
        return Image(name, out)
    check_tools()
    IMAGES_DIR.mkdir(parents=True, exist_ok=True)
    rootfs = out.with_suffix(f".{os.getpid()}.rootfs.tar")
    packages = out.with_suffix(".packages")
    listing = f"{packages}.{os.getpid()}.tmp"
    query = "dpkg-query -W -f='${Package} ${Version}\\n'"
    try:
        _run(
            [
                "mmdebstrap",
                "--variant=minbase",
                "--mode=root",
                "--format=tar",
                f"--include={','.join(PACKAGES)}",
                *(f"--dpkgopt={f}" for f in PATH_FILTERS),
                f'--customize-hook=chroot "$1" {query} > {listing}',
                SUITE,
                str(rootfs),
                MIRROR,
            ],
            log,
        )
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        write_oci_archive(tmp, name, rootfs, cmd=["python3"])
        tmp.rename(out)
        Path(listing).rename(packages)
    finally:
        rootfs.unlink(missing_ok=True)
        Path(listing).unlink(missing_ok=True)
    return Image(name, out)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def write_oci_archive(out: Path, name: str, layer: Path, *, cmd: list[str]) -> None:
    """A one-layer OCI image layout tar at ``out``, streaming the (uncompressed) layer."""
    layer_digest = _sha256_file(layer)
    config = _json(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": [ENV_PATH], "Cmd": cmd, "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
            "history": [{"created_by": f"mmdebstrap {SUITE} {' '.join(PACKAGES)}"}],
        }
    )
    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": _descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest,
                    "size": layer.stat().st_size,
                }
            ],
        }
    )
    index = _json(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    **_descriptor("application/vnd.oci.image.manifest.v1+json", manifest),
                    "platform": {"architecture": "amd64", "os": "linux"},
                    "annotations": {"org.opencontainers.image.ref.name": name},
                }
            ],
        }
    )
    with tarfile.open(out, mode="w") as tar:
        for d in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        small = {"oci-layout": _json({"imageLayoutVersion": "1.0.0"}), "index.json": index}
        small |= {f"blobs/sha256/{_sha(b)}": b for b in (config, manifest)}
        for path, data in small.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo(f"blobs/sha256/{layer_digest[7:]}")
        info.size, info.mode = layer.stat().st_size, 0o644
        with layer.open("rb") as f:
            tar.addfile(info, f)


def _json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True).encode()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _descriptor(media_type: str, data: bytes) -> dict[str, object]:
    return {"mediaType": media_type, "digest": "sha256:" + _sha(data), "size": len(data)}


# --- the image ------------------------------------------------------------------------
class Buildah:
    """buildah with a storage root of its own (vfs), removed by :meth:`close`."""

    def __init__(self, log: IO[str]) -> None:
        self.dir = IMAGES_DIR / f"buildah-{os.getpid()}"
        self.log = log

    def __call__(self, *args: str, out: bool = False) -> str:
        return _run(
            [
                "buildah",
                f"--root={self.dir / 'root'}",
                f"--runroot={self.dir / 'run'}",
                "--storage-driver=vfs",
                *args,
            ],
            self.log,
            out=out,
        )

    def close(self) -> None:
        if not self.dir.exists():
            return
        # A build interrupted mid-RUN may leave its chroot's mounts: unmount, deepest first.
        for target in sorted(_mounts_under(self.dir), key=len, reverse=True):
            subprocess.run(["umount", "-l", target], capture_output=True, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def _mounts_under(top: Path) -> Iterator[str]:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        target = line.split()[4]
        if Path(target).is_relative_to(top):
            yield target


def quiesce_image(repo: Path = REPO) -> Image:
    """The product image from ``repo``'s Dockerfile, as an OCI archive (built once per key)."""
    key = image_key(repo)
    name = f"{IMAGE_REPO}:{key}"
    out = IMAGES_DIR / f"quiesce-{key}.tar"
    if out.exists():
        return Image(name, out)
    check_tools()
    IMAGES_DIR.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    log_path = IMAGES_DIR / f"quiesce-{key}.log"
    with log_path.open("w") as log:
        base = base_image(log)
        buildah = Buildah(log)
        buildah.close()
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        try:
            pulled = buildah("pull", "--quiet", f"oci-archive:{base.archive}", out=True)
            buildah("tag", pulled.strip().splitlines()[-1], base.name)
            volumes = [f"--volume={v}:{v}:ro" for v in BUILD_VOLUMES if Path(v).exists()]
            buildah(
                "bud",
                "--isolation=chroot",
                "--pull=false",
                "--layers=false",
                *volumes,
                f"--build-arg=PYTHON_IMAGE={base.name}",
                f"--tag={name}",
                f"--file={repo / 'Dockerfile'}",
                str(repo),
            )
            tmp.unlink(missing_ok=True)
            buildah("push", "--quiet", name, f"oci-archive:{tmp}:{name}")
            tmp.rename(out)
        finally:
            tmp.unlink(missing_ok=True)
            buildah.close()
        log.write(f"# built {name} in {time.monotonic() - started:.1f} s\n")
    # What pip resolved (not in the key: the build resolves it), beside the archive.
    installed = [
        line.removeprefix("Successfully installed ")
        for line in log_path.read_text().splitlines()
        if line.startswith("Successfully installed ")
    ]
    out.with_suffix(".pip").write_text("\n".join(" ".join(installed).split()) + "\n")
    return Image(name, out)
