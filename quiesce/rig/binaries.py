"""The rig's real binaries, built from their Go modules and cached by version.

No release download can be reached from this machine, so every binary is
built with the local Go toolchain through the Go module proxy, from a small
wrapper module per binary family under ``quiesce/rig/gobuild/`` (so their
dependency graphs never clash). Results live in
``~/.cache/quiesce/bin/<family>-<version>/`` and are reused on every later run.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

from quiesce.rig import errors

CACHE_ROOT: Final = Path(os.environ.get("QUIESCE_CACHE", Path.home() / ".cache" / "quiesce"))
GOBUILD_DIR: Final = Path(__file__).parent / "gobuild"


@dataclasses.dataclass(frozen=True)
class Family:
    """One wrapper module and the binaries it builds."""

    name: str
    version: str
    binaries: tuple[str, ...]
    ldflags: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    cgo: bool = False
    """Build with CGO (runc links libseccomp: Debian's ``libseccomp-dev``)."""
    module: str | None = None
    """The wrapper module under ``gobuild/``; default: the family's name."""
    packages: tuple[str, ...] = ("tool",)
    """What ``go build`` builds: every ``tool`` of the module, or these packages
    (several families sharing one module each build their own)."""

    @property
    def directory(self) -> Path:
        return CACHE_ROOT / "bin" / f"{self.name}-{self.version}"

    @property
    def module_dir(self) -> Path:
        return GOBUILD_DIR / (self.module or self.name)


def _kubernetes_ldflags(version: str) -> tuple[str, ...]:
    # Without a stamped version, kube-apiserver reports v0.0.0: helm's
    # kubeVersion checks and native-sidecar detection would misbehave.
    major, minor = version.lstrip("v").split(".")[:2]
    flags = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    return tuple(flags)


KUBERNETES_VERSION: Final = "v1.37.2"
ETCD_VERSION: Final = "v3.6.16"
CONSUL_VERSION: Final = "v1.14.11"
HELM_VERSION: Final = "v3.22.0"
# The real node (quiesce.rig.realnode): a kubelet from the same Kubernetes
# release as the control plane, containerd with its runc shim, runc, crictl.
CONTAINERD_VERSION: Final = "v2.4.2"
RUNC_VERSION: Final = "v1.5.3"
CRICTL_VERSION: Final = "v1.37.0"

FAMILIES: Final = {
    f.name: f
    for f in (
        Family(
            "kubernetes",
            KUBERNETES_VERSION,
            ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"),
            _kubernetes_ldflags(KUBERNETES_VERSION),
        ),
        Family("etcd", ETCD_VERSION, ("etcd",)),
        Family(
            "consul",
            CONSUL_VERSION,
            ("consul",),
            (
                f"-X github.com/hashicorp/consul/version.GitVersion={CONSUL_VERSION}",
                "-X github.com/hashicorp/consul/version.VersionPrerelease=",
            ),
        ),
        Family(
            "helm",
            HELM_VERSION,
            ("helm",),
            (f"-X helm.sh/helm/v3/internal/version.version={HELM_VERSION}",),
        ),
        # A family of its own (module gobuild/kubelet), so the control plane's
        # cached build is not invalidated by the kubelet.
        Family(
            "kubelet",
            KUBERNETES_VERSION,
            ("kubelet",),
            _kubernetes_ldflags(KUBERNETES_VERSION),
            packages=("k8s.io/kubernetes/cmd/kubelet",),
        ),
        # kube-proxy for each real node, from the kubelet's module (its tools:
        # both), built and cached apart so neither rebuilds the other.
        Family(
            "kube-proxy",
            KUBERNETES_VERSION,
            ("kube-proxy",),
            _kubernetes_ldflags(KUBERNETES_VERSION),
            module="kubelet",
            packages=("k8s.io/kubernetes/cmd/kube-proxy",),
        ),
        Family(
            "containerd",
            CONTAINERD_VERSION,
            ("containerd", "containerd-shim-runc-v2", "ctr"),
            (
                f"-X github.com/containerd/containerd/v2/version.Version={CONTAINERD_VERSION}",
                "-X github.com/containerd/containerd/v2/version.Package="
                "github.com/containerd/containerd/v2",
            ),
            tags=("no_btrfs", "no_devmapper", "no_zfs"),
        ),
        Family(
            "runc",
            RUNC_VERSION,
            ("runc",),
            (f"-X main.version={RUNC_VERSION.lstrip('v')}",),
            tags=("seccomp", "urfave_cli_no_docs"),
            cgo=True,
        ),
        Family(
            "crictl",
            CRICTL_VERSION,
            ("crictl",),
            (f"-X sigs.k8s.io/cri-tools/pkg/version.Version={CRICTL_VERSION}",),
        ),
    )
}
# Which family provides each binary.
BINARY_FAMILY: Final = {b: f.name for f in FAMILIES.values() for b in f.binaries}


def path(binary: str) -> Path:
    """Where ``binary`` is once built (it may not exist yet)."""
    return FAMILIES[BINARY_FAMILY[binary]].directory / binary


def require(binary: str) -> Path:
    """The path of a built binary, or a clear error saying how to build it."""
    p = path(binary)
    if not os.access(p, os.X_OK):
        raise errors.MissingTool(
            binary,
            f"{binary} is not built at {p}; build the rig's binaries with "
            "`./dev setup` or `python -m quiesce.rig build`",
        )
    return p


def missing() -> list[str]:
    return [b for b in BINARY_FAMILY if not os.access(path(b), os.X_OK)]


def go_env() -> dict[str, str]:
    """Go settings shared by every build: caches under CACHE_ROOT, local toolchain."""
    env = dict(os.environ)
    env.update(
        GOMODCACHE=str(CACHE_ROOT / "go" / "mod"),
        GOCACHE=str(CACHE_ROOT / "go" / "build"),
        GOTOOLCHAIN="local",
        GOFLAGS="-mod=mod",
        CGO_ENABLED="0",
    )
    return env


def build(family: Family, *, log: Path | None = None) -> float:
    """Build one family into its cache directory; returns seconds taken.

    Builds into a temporary directory and renames it, so an interrupted build
    never leaves a half-populated cache entry behind.
    """
    go = shutil.which("go")
    if go is None:
        raise errors.MissingTool("go", "Go is needed to build the rig: apt-get install golang-go")
    tmp = family.directory.with_name(family.directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    ldflags = " ".join(("-s", "-w", "-checklinkname=0", *family.ldflags))
    tags = [f"-tags={','.join(family.tags)}"] if family.tags else []
    argv = [go, "build", "-trimpath", f"-ldflags={ldflags}", *tags, "-o", str(tmp) + "/"]
    argv += family.packages
    env = go_env()
    if family.cgo:
        env["CGO_ENABLED"] = "1"
    started = time.monotonic()
    out = open(log, "ab") if log else None  # noqa: SIM115 - closed below
    try:
        result = subprocess.run(
            argv,
            cwd=family.module_dir,
            env=env,
            stdout=out or sys.stderr,
            stderr=subprocess.STDOUT,
            check=False,
        )
    finally:
        if out:
            out.close()
    if result.returncode != 0:
        raise errors.BuildFailed(family.name, family.version, log)
    # `go build` names each binary after its package's last element.
    for binary in family.binaries:
        built = tmp / binary
        if not built.exists():
            candidates = [p for p in tmp.iterdir() if p.is_file()]
            if len(candidates) == 1:
                candidates[0].rename(built)
            else:
                raise errors.BuildFailed(family.name, family.version, log)
    shutil.rmtree(family.directory, ignore_errors=True)
    tmp.rename(family.directory)
    return time.monotonic() - started


def ensure_all(*, log_dir: Path | None = None, echo: bool = True) -> dict[str, float]:
    """Build every family whose binaries are missing; returns build seconds per family."""
    took: dict[str, float] = {}
    for family in FAMILIES.values():
        if all(os.access(family.directory / b, os.X_OK) for b in family.binaries):
            continue
        if echo:
            print(
                f"building {family.name} {family.version} (first use; cached afterwards)...",
                file=sys.stderr,
                flush=True,
            )
        log = (log_dir / f"build-{family.name}.log") if log_dir else None
        took[family.name] = build(family, log=log)
        if echo:
            print(f"built {family.name} in {took[family.name]:.0f} s", file=sys.stderr, flush=True)
    return took
