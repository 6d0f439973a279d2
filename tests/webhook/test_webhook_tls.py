"""The webhook's TLS on the rig: rotation drops no admission, bad certificates are reported.

The API server verifies the webhook's certificate against the configuration's
caBundle on every call; with failurePolicy Ignore a TLS failure lets the pod
through without the sidecar, so "no admission dropped" is checked pod by pod.
"""

from __future__ import annotations

import base64
import datetime
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from operator_rig import wait_for
from webhook_rig import (
    WEBHOOK_LABEL,
    Cluster,
    WebhookOperator,
    create_pod,
    events,
    has_sidecar,
    metric,
    pod,
)

from quiesce.operator import certificates
from quiesce.rig import kubeapi

pytestmark = pytest.mark.rig
SECRETS = "/api/v1/namespaces/quiesce-system/secrets"


@pytest.fixture
def tls_namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace labelled for one test's own operator (label value = the namespace)."""
    name = "wht-" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[5:30].strip("-")
    cluster.create_namespace(name, {WEBHOOK_LABEL: name})
    yield name
    cluster.delete_namespace(name)


def operator_for(
    make: Callable[..., WebhookOperator], namespace: str, *args: str, name: str
) -> WebhookOperator:
    return make(
        f"--namespace={namespace}",
        f"--webhook-namespace-label={WEBHOOK_LABEL}={namespace}",
        "--webhook-cert-check=1s",
        "--webhook-scan-interval=1s",
        *args,
        name=name,
    )


def secret_data(cluster: Cluster, op: WebhookOperator) -> dict[str, bytes]:
    secret = cluster.api.get(f"{SECRETS}/{op.secret.partition('/')[2]}")
    return {k: base64.b64decode(v) for k, v in secret["data"].items()}


def write_secret(cluster: Cluster, name: str, bundle: certificates.Bundle) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "quiesce-system"},
        "type": "kubernetes.io/tls",
        "data": {k: base64.b64encode(v).decode() for k, v in bundle.as_secret_data().items()},
    }
    try:
        current = cluster.api.get(f"{SECRETS}/{name}")
    except kubeapi.ApiError:
        cluster.api.create(SECRETS, body)
        return
    body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    cluster.api.request("PUT", f"{SECRETS}/{name}", body)


def serials(op: WebhookOperator) -> list[str]:
    return re.findall(r"Serving the webhook certificate with serial ([0-9a-f]+)", op.log())


def test_rotation_drops_no_admission_and_replicas_share_one_secret(
    cluster: Cluster,
    make_webhook_operator: Callable[..., WebhookOperator],
    tls_namespace: str,
) -> None:
    op = operator_for(
        make_webhook_operator, tls_namespace, "--webhook-cert-validity=15s", name="rotate"
    )
    created: list[dict[str, Any]] = []
    broke_ca = False
    started = time.monotonic()
    while time.monotonic() - started < 40:
        created.append(create_pod(cluster, pod(tls_namespace, f"p{len(created)}")))
        if not broke_ca and time.monotonic() - started > 12:
            # Lose the CA key: the next renewal needs a new CA, trusted next to the old one.
            data = secret_data(cluster, op)
            write_secret(
                cluster,
                op.secret.partition("/")[2],
                certificates.Bundle(
                    ca=data["ca.crt"], cert=data["tls.crt"], key=data["tls.key"], ca_key=b"lost"
                ),
            )
            broke_ca = True
        time.sleep(0.1)
    missed = [p["metadata"]["name"] for p in created if not has_sidecar(p)]
    assert not missed, f"{len(missed)} of {len(created)} admissions dropped: {missed}"
    assert len(set(serials(op))) >= 3, "the serving certificate should have rotated twice"
    assert len(certificates.split_pem(secret_data(cluster, op)["ca.crt"])) == 2
    config = cluster.api.get(
        f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{op.config_name}"
    )
    ca_bundle = base64.b64decode(config["webhooks"][0]["clientConfig"]["caBundle"])
    assert ca_bundle == secret_data(cluster, op)["ca.crt"]
    assert metric(op, "quiesce_webhook_certificate_rotations_total") >= 2

    # A second replica with the same Secret serves the same certificate, and replaces it
    # only when its renewal is due: with 15 s certificates that can fall within the
    # twin's start on a loaded machine (fresh clones' runs saw it), and then either
    # replica may renew; one wins the write, the other takes its certificate at its next
    # check: so the twin's first certificate is one the first replica serves, or will.
    twin = make_webhook_operator(
        f"--namespace={tls_namespace}", "--webhook-cert-validity=15s",
        f"--webhook-cert-secret={op.secret}", f"--webhook-namespace-label={WEBHOOK_LABEL}=none",
        name="rotate-twin",
    )  # fmt: skip
    first = wait_for(lambda: serials(twin)[:1], what="the twin's first certificate")[0]
    wait_for(
        lambda: first in serials(op),
        timeout=60,
        what=f"the first replica to serve the twin's certificate {first}",
    )
    writes = [line for line in twin.log().splitlines() if "Wrote a new webhook serving" in line]
    assert all("renewal due" in line for line in writes), writes


def test_a_bad_certificate_in_the_secret_is_reported_and_replaced(
    cluster: Cluster,
    make_webhook_operator: Callable[..., WebhookOperator],
    tls_namespace: str,
) -> None:
    op = operator_for(make_webhook_operator, tls_namespace, name="badcert")
    assert has_sidecar(create_pod(cluster, pod(tls_namespace, "before")))
    now = datetime.datetime.now(datetime.UTC)
    expired = certificates.generate(
        [op.host], now - datetime.timedelta(hours=2), validity=datetime.timedelta(hours=1)
    )
    write_secret(cluster, op.secret.partition("/")[2], expired)
    (event,) = wait_for(
        lambda: (
            events(cluster, "quiesce-system", "BadCertificate")
            and [
                e
                for e in events(cluster, "quiesce-system", "BadCertificate")
                if e["involvedObject"]["name"] == op.secret.partition("/")[2]
            ]
        ),
        what="a BadCertificate Event on the Secret",
    )
    assert "expired at" in event["message"] and "quiesce replaces it" in event["message"]
    assert metric(op, "quiesce_webhook_certificate_problems_total") >= 1
    wait_for(
        lambda: (
            not certificates.check(
                certificates.Bundle.from_secret_data(secret_data(cluster, op)),  # type: ignore[arg-type]
                [op.host],
                datetime.datetime.now(datetime.UTC),
            ).problems
        ),
        what="a new certificate in the Secret",
    )
    time.sleep(4)  # the new CA's settle time
    assert has_sidecar(create_pod(cluster, pod(tls_namespace, "after")))


def test_an_expired_provided_certificate_is_reported_and_pods_fail_open_and_are_counted(
    cluster: Cluster,
    make_webhook_operator: Callable[..., WebhookOperator],
    tls_namespace: str,
) -> None:
    host = cluster.rig.network.host_ip
    now = datetime.datetime.now(datetime.UTC)
    ca_cert, ca_key = certificates.generate_ca(now - datetime.timedelta(days=1))
    name = "provided-cert"
    old_cert, old_key = certificates.issue(
        ca_cert, ca_key, [host], now - datetime.timedelta(hours=2),
        validity=datetime.timedelta(hours=1),
    )  # fmt: skip
    # As cert-manager writes it: no CA key.
    write_secret(cluster, name, certificates.Bundle(ca=ca_cert, cert=old_cert, key=old_key))
    try:
        op = operator_for(
            make_webhook_operator, tls_namespace, "--webhook-cert-provided",
            f"--webhook-cert-secret=quiesce-system/{name}", name="provided",
        )  # fmt: skip
        assert "is unusable: the serving certificate expired at" in op.log()
        assert "provided by someone else" in op.log()
        created = create_pod(cluster, pod(tls_namespace, "while-expired"))
        assert not has_sidecar(created), "the API server must refuse an expired certificate"
        wait_for(
            lambda: metric(op, "quiesce_webhook_missed_pods_total") == 1,
            what="the pod created through the failed TLS handshake to be counted",
        )
        assert "Wrote a new webhook serving certificate" not in op.log()  # never writes it
        cert, key = certificates.issue(ca_cert, ca_key, [host], now)
        write_secret(cluster, name, certificates.Bundle(ca=ca_cert, cert=cert, key=key))
        wait_for(lambda: len(set(serials(op))) >= 2, what="the renewed certificate to be loaded")
        assert has_sidecar(create_pod(cluster, pod(tls_namespace, "renewed")))
    finally:
        cluster.api.request("DELETE", f"{SECRETS}/{name}")
