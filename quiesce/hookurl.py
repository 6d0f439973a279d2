"""The URL of an app's kept ``preStop: httpGet`` hook, composed in one place.

The operator keeps an app's own httpGet hook in the plan and the sidecar calls
it after convergence; the plan shows the same URL in its phase list and notes.
Both compose it here, so what the operator shows is what the sidecar calls.
Pure and dependency-free: the plan may import it, and so may the sidecar,
which never imports the operator.
"""

from __future__ import annotations


def kept_hook_url(*, scheme: str, host: str, port: int, path: str) -> str:
    """``scheme://host:port/path`` as the kubelet would call the hook.

    The scheme lowercased (Kubernetes spells it ``HTTP``/``HTTPS``; empty means
    HTTP), an IPv6 host in brackets, the path made absolute.
    """
    if ":" in host:
        host = f"[{host}]"
    if not path.startswith("/"):
        path = "/" + path
    return f"{(scheme or 'HTTP').lower()}://{host}:{port}{path}"
