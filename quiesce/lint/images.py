"""Which container images run nginx, and which of those already stop it with SIGQUIT.

nginx treats SIGTERM as *fast* shutdown. The official images switched to
``STOPSIGNAL SIGQUIT`` (docker-nginx 1.19.5, nginxinc/docker-nginx#377;
openresty/openresty likewise), so for those the image is already right; for
every other nginx image (bitnami/nginx, tengine, private builds) the linter
cannot see the stop signal and asks for one.
"""

from __future__ import annotations

import re
from typing import Final

NGINX_NAMES: Final = frozenset({"nginx", "nginx-unprivileged", "openresty", "tengine"})
_DOCKER_HUB: Final = frozenset(
    {"", "docker.io", "index.docker.io", "registry-1.docker.io", "mirror.gcr.io"}
)
_OFFICIAL_NGINX: Final = frozenset({"nginx", "library/nginx", "nginxinc/nginx-unprivileged"})


def stops_with_sigquit(image: str) -> bool | None:
    """None: not nginx. True: an official image known to set STOPSIGNAL SIGQUIT."""
    registry, repo, tag = _parse(image)
    if repo.rsplit("/", 1)[-1] not in NGINX_NAMES:
        return None
    if registry in _DOCKER_HUB and repo in _OFFICIAL_NGINX:
        version = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", tag)
        if version is None:
            return True
        major, minor, patch = (int(g) if g else 99 for g in version.groups())
        return (major, minor, patch) >= (1, 19, 5)
    if registry == "public.ecr.aws" and repo == "nginx/nginx":
        return True
    return registry in _DOCKER_HUB and repo == "openresty/openresty"


def is_official_nginx(image: str) -> bool:
    registry, repo, _ = _parse(image)
    return registry in _DOCKER_HUB and repo in _OFFICIAL_NGINX


def _parse(image: str) -> tuple[str, str, str]:
    """``(registry, repository, tag)``; Docker Hub's registry is ``""``."""
    ref = image.split("@", 1)[0]
    tag = ""
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        ref, tag = ref.rsplit(":", 1)
    parts = ref.split("/")
    registry = ""
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        registry, parts = parts[0], parts[1:]
    return registry, "/".join(parts), tag
