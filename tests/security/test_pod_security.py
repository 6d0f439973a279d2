"""Injected pods pass Pod Security admission in every stop mode.

Signal mode (``quiesce.dev/signal``) used to run the sidecar as root with
CAP_KILL, which Pod Security "restricted" rejects: the rollout stalled and
nothing said why. Now the sidecar runs as the app's own UID when the pod spec
names one (same-UID signalling needs no capability); when it does not, or it
is root, the sidecar keeps root with KILL alone ("baseline" admits that), and a
namespace that enforces "restricted" gets a refusal that names its label and
the way out instead of pods the API server rejects.

The pure tests pin the sidecar's securityContext; the rig tests hand the
injected pod specs to the rig's real kube-apiserver (PodSecurity admission is
on by default; the rig adds only NodeRestriction) with ``dryRun=All`` in
namespaces labelled ``pod-security.kubernetes.io/enforce=restricted`` and
``=baseline``. Admission needs no kubelet.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from quiesce import annotations as keys
from quiesce import config, template
from quiesce.operator import reconcile, webhook
from quiesce.rig import kubeapi, rig

RESTRICTED_APP: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}
MODES: dict[str, dict[str, str]] = {
    "return": {},
    "signal": {keys.SIGNAL: "SIGQUIT"},
    "shutdown-url": {keys.SHUTDOWN_URL: "http://127.0.0.1:8080/quitquitquit"},
    "drain": {keys.DRAIN_TIMEOUT: "10s"},
}


def spec(
    *, uid: int | None = 1000, gid: int | None = None, pod_uid: int | None = None
) -> dict[str, Any]:
    """A pod spec "restricted" admits on its own: the app non-root, nothing added."""
    app_context = copy.deepcopy(RESTRICTED_APP)
    if uid is not None:
        app_context["runAsUser"] = uid
    if gid is not None:
        app_context["runAsGroup"] = gid
    out: dict[str, Any] = {
        "containers": [
            {
                "name": "app",
                "image": "registry.example/web:1",
                "ports": [{"name": "http", "containerPort": 8080}],
                "securityContext": app_context,
            }
        ],
        "terminationGracePeriodSeconds": 30,
    }
    if pod_uid is not None:
        out["securityContext"] = {"runAsUser": pod_uid}
    return out


def planned(
    mode: str, pod_spec: dict[str, Any], *, pod_security: str | None = None, native: bool = True
) -> template.Planned:
    return template.plan_and_inject(
        {keys.INJECT: "true", **MODES[mode]},
        pod_spec,
        config.Config(),
        cluster_native=native,
        token="t0ken",
        pod_security=pod_security,
    )


def sidecar_of(pod_spec: dict[str, Any]) -> dict[str, Any]:
    for c in (pod_spec.get("initContainers") or []) + pod_spec["containers"]:
        if c["name"] == template.SIDECAR_NAME:
            return dict(c)
    raise AssertionError("no sidecar")


# --- pure: the sidecar's identity ---------------------------------------------------------


def test_signal_mode_runs_the_sidecar_as_the_app_containers_uid_without_capabilities() -> None:
    result = planned("signal", spec(uid=1000, gid=3000))
    assert result.injection is not None, result.errors
    context = sidecar_of(result.injection.pod_spec)["securityContext"]
    assert context["runAsUser"] == 1000 and context["runAsGroup"] == 3000
    assert context["runAsNonRoot"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["allowPrivilegeEscalation"] is False


def test_the_pods_run_as_user_counts_and_the_containers_wins() -> None:
    from_pod = planned("signal", spec(uid=None, pod_uid=2000))
    assert from_pod.injection is not None
    assert sidecar_of(from_pod.injection.pod_spec)["securityContext"]["runAsUser"] == 2000
    both = planned("signal", spec(uid=1500, pod_uid=2000))
    assert both.injection is not None
    context = sidecar_of(both.injection.pod_spec)["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"]) == (1500, 1500)


@pytest.mark.parametrize("uid", [None, 0])
@pytest.mark.parametrize("level", [None, "privileged", "baseline"])
def test_an_unknown_or_root_app_uid_keeps_root_with_kill_alone_outside_restricted(
    uid: int | None, level: str | None
) -> None:
    result = planned("signal", spec(uid=uid), pod_security=level)
    assert result.injection is not None, result.errors
    context = sidecar_of(result.injection.pod_spec)["securityContext"]
    assert context["runAsUser"] == 0
    assert context["capabilities"] == {"drop": ["ALL"], "add": ["KILL"]}


@pytest.mark.parametrize("uid", [None, 0])
def test_restricted_refuses_a_sidecar_that_would_need_root_and_says_the_way_out(
    uid: int | None,
) -> None:
    result = planned("signal", spec(uid=uid), pod_security="restricted")
    assert result.injection is None
    (error,) = result.errors
    assert "pod-security.kubernetes.io/enforce=restricted" in error
    assert "runAsUser" in error and "lifecycle.stopSignal" in error


def test_reconcile_refuses_with_a_warning_event_and_a_status_naming_the_level() -> None:
    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "resourceVersion": "1",
            "annotations": {keys.INJECT: "true", keys.SIGNAL: "SIGQUIT"},
        },
        "spec": {"template": {"spec": spec(uid=None)}},
    }
    decision = reconcile.reconcile(
        obj, config=config.Config(), cluster_native=True, new_token="t", pod_security="restricted"
    )
    assert not decision.changes_template
    (event,) = decision.events
    assert event.type == "Warning" and "enforce=restricted" in event.message
    assert decision.write is not None
    status = decision.write.body["metadata"]["annotations"][keys.STATE_STATUS]
    assert "enforce=restricted" in status


def test_the_webhook_admits_the_pod_unchanged_with_a_warning_naming_the_level() -> None:
    pod = {"metadata": {"namespace": "shop", "annotations": {keys.INJECT: "true",
                                                              keys.SIGNAL: "SIGQUIT"}},
           "spec": spec(uid=None)}  # fmt: skip
    admission = webhook.admit(
        pod, config=config.Config(), cluster_native=True, token="t", pod_security="restricted"
    )
    assert admission.result == "invalid" and not admission.spec and admission.denial is None
    assert any("enforce=restricted" in w for w in admission.warnings)


# --- the rig's real API server: Pod Security admission judges the injected pods ------------

_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def api(rig_instance: rig.Rig) -> kubeapi.ApiClient:
    return rig_instance.control_plane.api()


@pytest.fixture(scope="module")
def namespaces(api: kubeapi.ApiClient) -> Iterator[dict[str, str]]:
    made = {}
    for level in ("restricted", "baseline"):
        name = f"psa-{level}-{next(_numbers)}"
        api.create("/api/v1/namespaces", {
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {template.POD_SECURITY_ENFORCE_LABEL: level}},
        })  # fmt: skip
        made[level] = name
    yield made
    for name in made.values():
        api.request("DELETE", f"/api/v1/namespaces/{name}")


def dry_run_create(api: kubeapi.ApiClient, namespace: str, pod_spec: dict[str, Any]) -> Any:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "psa-", "namespace": namespace},
        "spec": pod_spec,
    }
    return api.create(f"/api/v1/namespaces/{namespace}/pods?dryRun=All", body)


@pytest.mark.parametrize("native", [True, False], ids=["native", "container"])
@pytest.mark.parametrize("level", ["restricted", "baseline"])
@pytest.mark.parametrize("mode", list(MODES))
def test_the_api_server_admits_injected_pods_in_every_stop_mode(
    api: kubeapi.ApiClient, namespaces: dict[str, str], mode: str, level: str, native: bool
) -> None:
    result = planned(mode, spec(uid=1000), pod_security=level, native=native)
    assert result.injection is not None, result.errors
    created = dry_run_create(api, namespaces[level], result.injection.pod_spec)
    assert sidecar_of(created["spec"])["name"] == template.SIDECAR_NAME


def test_baseline_admits_the_root_kill_sidecar_of_an_app_with_unknown_uid(
    api: kubeapi.ApiClient, namespaces: dict[str, str]
) -> None:
    result = planned("signal", spec(uid=None), pod_security="baseline")
    assert result.injection is not None, result.errors
    dry_run_create(api, namespaces["baseline"], result.injection.pod_spec)


def test_restricted_would_reject_the_root_kill_sidecar_that_quiesce_now_refuses(
    api: kubeapi.ApiClient, namespaces: dict[str, str]
) -> None:
    """Why the refusal: the sidecar quiesce injected before (and still does outside
    "restricted") is rejected by the real API server under "restricted"."""
    result = planned("signal", spec(uid=None), pod_security=None)
    assert result.injection is not None
    with pytest.raises(kubeapi.ApiError) as rejected:
        dry_run_create(api, namespaces["restricted"], result.injection.pod_spec)
    assert rejected.value.status == 403
    message = str(rejected.value)
    assert "violates PodSecurity" in message
    assert "KILL" in message and "runAsNonRoot != true" in message
    assert planned("signal", spec(uid=None), pod_security="restricted").injection is None
