"""The pod-template builder: what it adds, what it never touches, and exact restoration."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quiesce import config, plan, template

APP: dict[str, Any] = {
    "name": "app",
    "image": "web:1",
    "ports": [{"name": "http", "containerPort": 8080}],
    "lifecycle": {
        "postStart": {"exec": {"command": ["warm"]}},
        "preStop": {"sleep": {"seconds": 5}},
    },
}
SPEC: dict[str, Any] = {
    "containers": [APP, {"name": "log-shipper", "image": "fluent-bit:3"}],
    "terminationGracePeriodSeconds": 30,
}


def make_plan(
    annotations: dict[str, str] | None = None, spec: dict[str, Any] = SPEC
) -> plan.ShutdownPlan:
    return plan.build_plan({"quiesce.dev/containers": "app", **(annotations or {})}, spec)


def injected(
    p: plan.ShutdownPlan | None = None,
    cfg: config.Config | None = None,
    *,
    native: bool = True,
    spec: dict[str, Any] = SPEC,
) -> template.Injection:
    return template.inject(
        spec, p or make_plan(), cfg or config.Config(), token="s3cret", native=native
    )


def sidecar_of(spec: dict[str, Any], key: str = "initContainers") -> dict[str, Any]:
    (sidecar,) = [c for c in spec[key] if c["name"] == template.SIDECAR_NAME]
    return sidecar


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_native_mode_adds_an_init_container_that_restarts_always() -> None:
    spec = injected(native=True).pod_spec
    sidecar = sidecar_of(spec)
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["command"] == ["quiesce", "sidecar"]
    assert [c["name"] for c in spec["containers"]] == ["app", "log-shipper"]


def test_container_mode_adds_a_regular_container() -> None:
    spec = injected(native=False).pod_spec
    sidecar = sidecar_of(spec, "containers")
    assert "restartPolicy" not in sidecar and "initContainers" not in spec
    assert env_of(sidecar)["QUIESCE_SIDECAR_MODE"] == "container"


def test_targets_get_a_prestop_http_get_to_the_sidecar_with_the_token() -> None:
    spec = injected().pod_spec
    app, shipper = spec["containers"]
    assert app["lifecycle"] == {
        "postStart": {"exec": {"command": ["warm"]}},
        "preStop": {
            "httpGet": {
                "path": "/prestop",
                "port": 7979,
                "scheme": "HTTP",
                "httpHeaders": [{"name": "X-Quiesce-Token", "value": "s3cret"}],
            }
        },
    }
    assert "lifecycle" not in shipper, "only target containers get the hook"


def test_the_grace_comes_from_the_plan() -> None:
    assert injected().pod_spec["terminationGracePeriodSeconds"] == 35


def test_the_env_contract_the_sidecar_reads() -> None:
    p = make_plan()
    sidecar = sidecar_of(injected(p).pod_spec)
    env = env_of(sidecar)
    assert list(env) == [
        "QUIESCE_PLAN",
        "QUIESCE_TOKEN",
        "POD_NAME",
        "POD_NAMESPACE",
        "POD_UID",
        "POD_IP",
        "HOST_IP",
        "CONSUL_HTTP_ADDR",
        "QUIESCE_LOG_FORMAT",
        "QUIESCE_SIDECAR_MODE",
    ]
    assert plan.ShutdownPlan.from_json(env["QUIESCE_PLAN"]) == p
    assert env["QUIESCE_TOKEN"] == "s3cret"
    assert env["POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env["HOST_IP"] == {"fieldRef": {"fieldPath": "status.hostIP"}}
    assert env["POD_UID"] == {"fieldRef": {"fieldPath": "metadata.uid"}}
    assert env["CONSUL_HTTP_ADDR"] == "http://$(HOST_IP):8500"
    assert env["QUIESCE_LOG_FORMAT"] == "json" and env["QUIESCE_SIDECAR_MODE"] == "native"


def test_a_dollar_in_the_plan_survives_kubernetes_env_expansion() -> None:
    p = make_plan(
        {"quiesce.dev/consul-service": "$(POD_NAME)", "quiesce.dev/shutdown-url": "http://x/$$"}
    )
    env = env_of(sidecar_of(injected(p).pod_spec))
    assert '"$$(POD_NAME)"' in env["QUIESCE_PLAN"] and "http://x/$$$$" in env["QUIESCE_PLAN"]


def test_acl_token_and_ca_secrets_are_mounted_and_named_in_env() -> None:
    cfg = config.load_config(
        {
            "consul": {
                "tokenSecret": {"name": "acl", "key": "token"},
                "caSecret": {"name": "ca", "key": "ca.crt"},
            }
        }
    )
    spec = injected(cfg=cfg).pod_spec
    sidecar = sidecar_of(spec)
    env = env_of(sidecar)
    assert env["CONSUL_HTTP_TOKEN_FILE"] == "/var/run/secrets/quiesce/consul-token/token"
    assert env["CONSUL_CACERT"] == "/var/run/secrets/quiesce/consul-ca/ca.crt"
    assert {m["mountPath"] for m in sidecar["volumeMounts"]} == {
        "/var/run/secrets/quiesce/consul-token",
        "/var/run/secrets/quiesce/consul-ca",
    }
    assert all(m["readOnly"] for m in sidecar["volumeMounts"])
    assert spec["volumes"] == [
        {
            "name": "quiesce-consul-token",
            "secret": {"secretName": "acl", "items": [{"key": "token", "path": "token"}]},
        },
        {
            "name": "quiesce-consul-ca",
            "secret": {"secretName": "ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]},
        },
    ]


def test_the_sidecar_is_locked_down_when_it_does_not_signal() -> None:
    sidecar = sidecar_of(injected().pod_spec)
    assert sidecar["securityContext"] == {
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert "shareProcessNamespace" not in injected().pod_spec


def test_signalling_shares_the_pid_namespace_and_adds_only_kill() -> None:
    result = injected(make_plan({"quiesce.dev/signal": "SIGQUIT"}))
    security = sidecar_of(result.pod_spec)["securityContext"]
    assert result.pod_spec["shareProcessNamespace"] is True
    assert security["capabilities"] == {"drop": ["ALL"], "add": ["KILL"]}
    assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]


def test_probes_resources_and_port() -> None:
    sidecar = sidecar_of(injected().pod_spec)
    assert sidecar["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 7979}
    # Started (the app after it) once it serves; probed every second until then, from the
    # kubelet's first tick (no initial delay), each probe waiting for the sidecar's start.
    startup = sidecar["startupProbe"]
    assert startup["httpGet"] == {"path": "/readyz", "port": 7979}
    assert startup.get("initialDelaySeconds", 0) == 0
    assert startup["periodSeconds"] == 1
    assert startup["timeoutSeconds"] > 1
    assert startup["failureThreshold"] == 30
    assert sidecar["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 7979}
    assert sidecar["ports"] == [{"name": "quiesce", "containerPort": 7979, "protocol": "TCP"}]
    assert sidecar["resources"]["limits"]["memory"] == "96Mi"


def test_the_input_is_never_modified() -> None:
    before = copy.deepcopy(SPEC)
    injected()
    assert before == SPEC


def test_the_record_is_json_and_says_what_was_replaced() -> None:
    record = injected().replaced
    assert json.loads(json.dumps(record)) == record
    assert record["lifecycles"]["app"] == {"present": True, "value": APP["lifecycle"]}
    assert record["fields"]["terminationGracePeriodSeconds"] == {
        "present": True,
        "value": 30,
        "set": 35,
    }
    assert record["fields"]["initContainers"] == {"present": False}


def test_restore_gives_back_the_original_byte_for_byte() -> None:
    result = injected(make_plan({"quiesce.dev/signal": "QUIT"}))
    restored = template.restore(result.pod_spec, json.loads(json.dumps(result.replaced)))
    assert json.dumps(restored) == json.dumps(SPEC)


def test_restore_leaves_alone_what_someone_changed_since() -> None:
    result = injected()
    changed = copy.deepcopy(result.pod_spec)
    changed["terminationGracePeriodSeconds"] = 120
    changed["containers"][0]["lifecycle"] = {"preStop": {"sleep": {"seconds": 9}}}
    changed["containers"][0]["image"] = "web:2"
    restored = template.restore(changed, result.replaced)
    assert restored["terminationGracePeriodSeconds"] == 120
    assert restored["containers"][0]["lifecycle"] == {"preStop": {"sleep": {"seconds": 9}}}
    assert restored["containers"][0]["image"] == "web:2"
    assert "initContainers" not in restored


def test_injecting_twice_is_refused() -> None:
    with pytest.raises(template.InjectionError, match="already has a quiesce-sidecar"):
        injected(spec=injected().pod_spec)


@pytest.mark.parametrize("token", ["", "with space", "naïve", "a\nb"])
def test_a_token_that_cannot_be_a_header_value_is_refused(token: str) -> None:
    with pytest.raises(template.InjectionError, match="token"):
        template.inject(SPEC, make_plan(), config.Config(), token=token, native=True)


def test_generated_tokens_are_random_and_header_safe() -> None:
    a, b = template.generate_token(), template.generate_token()
    assert a != b and len(a) == 32 and a.isascii() and " " not in a


@pytest.mark.parametrize(
    ("mode", "cluster", "native"),
    [
        ("auto", True, True),
        ("auto", False, False),
        ("native", False, True),
        ("container", True, False),
    ],
)
def test_sidecar_mode_resolution(mode: str, cluster: bool, native: bool) -> None:
    p = make_plan({"quiesce.dev/sidecar-mode": mode})
    assert template.resolve_native(p, cluster_supports_native=cluster) is native


# --- round trip over arbitrary pod specs ----------------------------------------------

VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=5), inner, max_size=2)
    ),
    max_leaves=6,
)
EXTRA_KEYS = st.sampled_from(["image", "args", "env", "resources", "zz", "a"])


@st.composite
def ordered(draw: st.DrawFn, required: dict[str, Any], optional: dict[str, Any]) -> dict[str, Any]:
    """A dict with the required and some optional keys, in a random order."""
    items = list(required.items()) + [(k, v) for k, v in optional.items() if draw(st.booleans())]
    return dict(draw(st.permutations(items)))


@st.composite
def containers(draw: st.DrawFn, name: str) -> dict[str, Any]:
    lifecycle = draw(
        ordered(
            {},
            {
                "preStop": draw(VALUES),
                "postStart": draw(VALUES),
            },
        )
    )
    extra = {k: draw(VALUES) for k in draw(st.lists(EXTRA_KEYS, max_size=3, unique=True))}
    return draw(ordered({"name": name}, {"lifecycle": lifecycle, **extra}))


@st.composite
def pod_specs(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(
        st.lists(st.sampled_from(["app", "web", "db", "x"]), min_size=1, max_size=3, unique=True)
    )
    init = [
        draw(containers(n))
        for n in draw(st.lists(st.sampled_from(["init", "migrate"]), unique=True))
    ]
    return draw(
        ordered(
            {"containers": [draw(containers(n)) for n in names]},
            {
                "initContainers": init,
                "terminationGracePeriodSeconds": draw(st.integers(0, 100)),
                "shareProcessNamespace": draw(st.booleans()),
                "volumes": draw(
                    st.lists(
                        st.fixed_dictionaries({"name": st.sampled_from(["data", "tmp"])}),
                        max_size=2,
                    )
                ),
                "restartPolicy": "Always",
            },
        )
    )


@given(
    pod_specs(),
    st.data(),
    st.booleans(),
    st.sampled_from([None, 3, 15]),
    st.booleans(),
)
def test_restore_after_inject_is_the_identity(
    spec: dict[str, Any], data: st.DataObject, native: bool, signal: int | None, secrets: bool
) -> None:
    names = [c["name"] for c in spec["containers"]]
    targets = data.draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
    p = plan.build_plan({}, {"containers": [{"name": "app"}]})
    p = plan.ShutdownPlan(**{**vars(p), "containers": tuple(targets), "signal": signal})
    cfg = config.Config()
    if secrets:
        cfg = config.load_config(
            {
                "consul": {
                    "tokenSecret": {"name": "a", "key": "t"},
                    "caSecret": {"name": "c", "key": "k"},
                }
            }
        )
    original = json.dumps(spec)
    result = template.inject(spec, p, cfg, token="t0k", native=native)
    assert json.dumps(spec) == original, "the input is untouched"
    record = json.loads(json.dumps(result.replaced))
    assert json.dumps(template.restore(result.pod_spec, record)) == original


def test_a_job_pod_cannot_get_a_regular_sidecar_container() -> None:
    job = {**SPEC, "restartPolicy": "Never"}
    with pytest.raises(template.InjectionError, match="needs a native sidecar"):
        injected(spec=job, native=False)
    assert sidecar_of(injected(spec=job, native=True).pod_spec)["restartPolicy"] == "Always"
