"""containerd's configuration for a real node (config version 4, containerd 2.4).

The CRI plugin runs pods with runc through the runc v2 shim, takes the pause
image built here as its pinned sandbox image (never pulled: no registry is
reachable), keeps pod network namespaces under its private state directory,
and reads the node's CNI configuration from the node's own directory.
``restrict_oom_score_adj`` is needed here: processes lack
``CAP_SYS_RESOURCE``, so runc could not lower a container's ``oom_score_adj``.
"""

from __future__ import annotations

from pathlib import Path

SOCKET = "/run/containerd/containerd.sock"


def _q(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def config(*, runc: Path, sandbox_image: str, cni_bin_dir: Path, cni_conf_dir: Path) -> str:
    return f"""\
version = 4
root = "/var/lib/containerd"
state = "/run/containerd"
# Never the host's /etc/containerd/conf.d (the default).
imports = []
# The "opt" plugin would create /opt/containerd; nothing here uses it.
disabled_plugins = ["io.containerd.internal.v1.opt"]

[grpc]
  address = {_q(SOCKET)}

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = {_q(sandbox_image)}

[plugins.'io.containerd.cri.v1.runtime']
  enable_selinux = false
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = {_q(str(runc))}
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = [{_q(str(cni_bin_dir))}]
    conf_dir = {_q(str(cni_conf_dir))}
    max_conf_num = 1
"""
