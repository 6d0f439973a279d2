"""Every request quiesce itself sends to the API server, through the kubernetes client.

kopf watches and posts Events; writes to workloads go here: server-side apply
under the field manager ``quiesce`` (``application/apply-patch+yaml``, forced,
as controllers do), RFC 6902 JSON patches and merge patches for what apply
cannot express (see :mod:`quiesce.operator.reconcile`). The client is
synchronous; the handlers call it in worker threads, bounded by a semaphore.
"""

from __future__ import annotations

import json
import re
from typing import Any

from quiesce.operator import metrics as metrics_
from quiesce.operator import rbac, resources, settings, writes

CONTENT_TYPES = {
    "apply": "application/apply-patch+yaml",
    "json-patch": "application/json-patch+json",
    "merge-patch": "application/merge-patch+json",
}


class ApiError(Exception):
    """A request failed; ``status`` is the HTTP status (0 when the server was not reached)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.message = message

    @property
    def retriable(self) -> bool:
        """Conflicts (a failed resourceVersion test included), throttling, server errors."""
        if self.status == 422:
            # A failed JSON-patch "test" op: a concurrent change, not an invalid request.
            return "test" in self.message and "resourceVersion" in self.message
        return self.status in (0, 409, 429, 500, 502, 503, 504)


class Client:
    """The operator's API client: ``load`` once, then call from any thread."""

    def __init__(self, api_client: Any, metrics: metrics_.Metrics) -> None:
        self.api = api_client
        self.metrics = metrics

    @classmethod
    def load(cls, kubeconfig: str | None, metrics: metrics_.Metrics) -> Client:
        import kubernetes

        configuration = kubernetes.client.Configuration()
        if kubeconfig is None:
            try:
                kubernetes.config.load_incluster_config(  # type: ignore[no-untyped-call]
                    client_configuration=configuration
                )
            except kubernetes.config.ConfigException:
                kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                    client_configuration=configuration
                )
        else:
            kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, client_configuration=configuration
            )
        configuration.connection_pool_maxsize = 16
        return cls(kubernetes.client.ApiClient(configuration), metrics)

    def connection_info(self) -> dict[str, Any]:
        """What kopf needs to log in with the same credentials (``kopf.ConnectionInfo``)."""
        c = self.api.configuration
        header = c.get_api_key_with_prefix("BearerToken") or c.get_api_key_with_prefix(
            "authorization"
        )
        scheme, _, token = (header or "").rpartition(" ")
        return {
            "server": c.host,
            "ca_path": c.ssl_ca_cert,
            "insecure": not c.verify_ssl,
            "scheme": scheme or ("Bearer" if token else None),
            "token": token or None,
            "certificate_path": c.cert_file,
            "private_key_path": c.key_file,
        }

    def close(self) -> None:
        self.api.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str | None = None,
        query: list[tuple[str, str]] | None = None,
    ) -> Any:
        """One request; the decoded JSON response. Raises :class:`ApiError`."""
        import kubernetes

        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        self.metrics.requests.labels(method.lower()).inc()
        try:
            method_, url, headers_, body_, _ = self.api.param_serialize(
                method=method,
                resource_path=path,
                query_params=query or [],
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self.api.call_api(method_, url, header_params=headers_, body=body_)
            data = response.read()
        except kubernetes.client.ApiException as exc:
            raise ApiError(exc.status or 0, _message(exc.body) or str(exc.reason)) from None
        except Exception as exc:  # urllib3 connection errors and the like
            raise ApiError(0, f"{type(exc).__name__}: {exc}") from None
        if response.status >= 400:
            raise ApiError(response.status, _message(data) or str(response.reason))
        return json.loads(data) if data else None

    # --- what the operator does -------------------------------------------------------
    def server_version(self) -> tuple[int, int]:
        info = self.request("GET", "/version")
        return int(info["major"]), int(re.sub(r"\D.*$", "", str(info["minor"])) or 0)

    def get(self, kind: resources.Kind, namespace: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", kind.path(namespace, name))
        return result

    def list(self, kind: resources.Kind, namespace: str) -> list[dict[str, Any]]:
        data = self.request("GET", kind.path(namespace))
        items: list[dict[str, Any]] = data.get("items") or []
        for item in items:  # list items lack these; reconcile needs them for apply bodies
            item.setdefault("apiVersion", kind.api_version)
            item.setdefault("kind", kind.kind)
        return items

    def write(
        self, kind: resources.Kind, namespace: str, name: str, write: writes.Write
    ) -> dict[str, Any]:
        query = [("fieldManager", settings.FIELD_MANAGER)]
        if write.kind == "apply":
            query.append(("force", "true"))
        result: dict[str, Any] = self.request(
            "PATCH",
            kind.path(namespace, name),
            body=write.body,
            content_type=CONTENT_TYPES[write.kind],
            query=query,
        )
        return result

    def bind_service_account(self, namespace: str, service_account: str) -> None:
        """Apply the sidecar's RoleBinding, owned by the ClusterRole as it is now."""
        role = self.request(
            "GET", f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{rbac.CLUSTER_ROLE}"
        )
        body = rbac.role_binding(namespace, service_account, role_uid=role["metadata"]["uid"])
        path = (
            f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings/"
            f"{body['metadata']['name']}"
        )
        self.request(
            "PATCH",
            path,
            body=body,
            content_type=CONTENT_TYPES["apply"],
            query=[("fieldManager", settings.FIELD_MANAGER), ("force", "true")],
        )


def _message(body: Any) -> str:
    if not body:
        return ""
    try:
        data = json.loads(body)
    except (TypeError, ValueError):
        return str(body)[:500]
    return str(data.get("message", body)) if isinstance(data, dict) else str(body)[:500]
