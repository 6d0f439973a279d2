"""The kept hook's URL: one function composes it for the plan and the sidecar."""

from __future__ import annotations

import pytest

from quiesce import hookurl


@pytest.mark.parametrize(
    ("scheme", "host", "port", "path", "url"),
    [
        ("HTTP", "10.0.0.7", 8080, "/drain", "http://10.0.0.7:8080/drain"),
        ("HTTPS", "10.0.0.7", 8443, "/drain", "https://10.0.0.7:8443/drain"),
        ("", "10.0.0.7", 8080, "/drain", "http://10.0.0.7:8080/drain"),
        ("HTTP", "fd00::7", 8080, "/drain", "http://[fd00::7]:8080/drain"),
        ("HTTP", "10.0.0.7", 8080, "drain", "http://10.0.0.7:8080/drain"),
        ("HTTP", "<pod-ip>", 8080, "/drain?now=1", "http://<pod-ip>:8080/drain?now=1"),
    ],
)
def test_the_url_is_the_one_the_kubelet_would_call(
    scheme: str, host: str, port: int, path: str, url: str
) -> None:
    assert hookurl.kept_hook_url(scheme=scheme, host=host, port=port, path=path) == url
