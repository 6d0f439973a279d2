"""Fixtures of the GitOps tests: one operator (template mode on go-*, webhook mode on namespaces
labelled quiesce.dev/webhook=gitops) and a GitOps controller played by ``kubectl apply
--server-side --field-manager=argocd --force-conflicts``, as Argo CD and Flux apply."""

# ruff: noqa: F811  (the fixtures imported from webhook_rig are used as parameters)

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "webhook"))

from webhook_rig import (  # noqa: F401  (fixtures)
    WEBHOOK_LABEL,
    Cluster,
    WebhookOperator,
    cluster,
    make_namespace,
    make_webhook_operator,
    operator_kubeconfig,
    operator_logs,
)


@pytest.fixture(scope="session")
def gitops_operator(make_webhook_operator: Callable[..., WebhookOperator]) -> WebhookOperator:
    return make_webhook_operator(
        "--namespace=go-*", f"--webhook-namespace-label={WEBHOOK_LABEL}=gitops", name="gitops"
    )


@pytest.fixture
def template_namespace(
    cluster: Cluster, gitops_operator: WebhookOperator, request: pytest.FixtureRequest
) -> Iterator[str]:
    """Template mode only: not labelled for the webhook."""
    yield from make_namespace(cluster, gitops_operator, request, "go", webhook=False)


@pytest.fixture
def webhook_namespace(
    cluster: Cluster, gitops_operator: WebhookOperator, request: pytest.FixtureRequest
) -> Iterator[str]:
    """Webhook mode: labelled quiesce.dev/webhook=gitops."""
    iterator = make_namespace(cluster, gitops_operator, request, "go", webhook=False)
    name = next(iterator)
    cluster.kubectl("label", "namespace", name, f"{WEBHOOK_LABEL}=gitops")
    yield name
    next(iterator, None)
