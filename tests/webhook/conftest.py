"""Fixtures of the webhook tests: operators in webhook mode against the rig's API server."""

# ruff: noqa: F811  (the fixtures imported from webhook_rig are used as parameters)

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from webhook_rig import (  # noqa: F401  (fixtures)
    Cluster,
    WebhookOperator,
    cluster,
    make_namespace,
    make_webhook_operator,
    operator_kubeconfig,
    operator_logs,
)


@pytest.fixture(scope="session")
def webhook_operator(make_webhook_operator: Callable[..., WebhookOperator]) -> WebhookOperator:
    """The session's webhook operator: namespaces wh-*, labelled quiesce.dev/webhook=enabled."""
    return make_webhook_operator("--namespace=wh-*", "--webhook-scan-interval=2s", name="wh")


@pytest.fixture
def namespace(
    cluster: Cluster, webhook_operator: WebhookOperator, request: pytest.FixtureRequest
) -> Iterator[str]:
    yield from make_namespace(cluster, webhook_operator, request, "wh")
