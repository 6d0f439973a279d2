"""The chart, rendered by the real helm: lint, golden files, and what each object promises.

No cluster needed. Golden files live in golden/; rewrite them after an intended
change with ``QUIESCE_UPDATE_GOLDEN=1 .venv/bin/pytest tests/install`` and review
the diff.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from install import chartkit
from quiesce import cli
from quiesce import config as configuration

GOLDEN_CASES = {
    "default": (),
    "namespaced": ("-f", str(chartkit.VALUES / "namespaced.yaml")),
    "webhook-cert-manager": (
        "--set", "webhook.enabled=true", "--set", "webhook.certManager.enabled=true",
    ),
    "single-replica-no-pdb": (
        "--set", "operator.replicaCount=1", "--set", "podDisruptionBudget.enabled=false",
    ),
}  # fmt: skip


def test_helm_lint_is_clean_with_default_and_custom_values() -> None:
    for extra in ((), ("-f", str(chartkit.VALUES / "namespaced.yaml"))):
        result = chartkit.helm("lint", "--strict", str(chartkit.CHART), *extra)
        assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout
        assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_helm_template_matches_its_golden_file(case: str) -> None:
    rendered = chartkit.template(*GOLDEN_CASES[case])
    golden = chartkit.GOLDEN / f"{case}.yaml"
    if chartkit.UPDATE_GOLDEN:
        golden.write_text(rendered)
    assert golden.exists(), f"no golden file {golden.name}: run with QUIESCE_UPDATE_GOLDEN=1"
    assert rendered == golden.read_text(), (
        f"helm template differs from {golden.name}; if intended, rerun with "
        "QUIESCE_UPDATE_GOLDEN=1 and review the diff"
    )


def test_the_configmap_is_the_operators_configuration_file_exactly() -> None:
    docs = chartkit.documents(chartkit.template("-f", str(chartkit.VALUES / "namespaced.yaml")))
    text = chartkit.find(docs, "ConfigMap", "quiesce-config")["data"]["config.yaml"]
    config = configuration.load_config(text)  # raises on any key config.py does not know
    assert config.plan.converge_max == 30 and config.plan.margin == 15
    assert config.plan.epsilon == 0.0001 and config.plan.auto_upgrade is False
    assert config.sidecar == configuration.SidecarConfig(
        image="registry.example.com/platform/quiesce-sidecar:0.1.0-rc1",
        image_pull_policy="Always",
        resources={"requests": {"cpu": "20m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
        run_as_user=10001,
        log_format="text",
    )
    assert config.consul == configuration.ConsulConfig(
        address="https://$(HOST_IP):8501",
        token_secret=configuration.SecretRef("consul-acl-token", "token"),
        ca_secret=configuration.SecretRef("consul-ca", "tls.crt"),
    )


def test_outer_budgets_values_reach_the_operators_configuration(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        "outerBudgets:\n"
        "  nodeShutdown:\n"
        "    shutdownGracePeriodByPodPriority:\n"
        "      - {priority: 0, shutdownGracePeriodSeconds: 20}\n"
        '  autoscalerMaxGracefulTermination: "off"\n'
        "  nodeGroupDrainTimeout: 15m\n"
    )
    docs = chartkit.documents(chartkit.template("-f", str(values)))
    text = chartkit.find(docs, "ConfigMap", "quiesce-config")["data"]["config.yaml"]
    budgets = configuration.load_config(text).outer_budgets
    assert budgets.node_shutdown is not None
    assert [
        (e.priority, e.shutdown_grace_period_seconds) for e in budgets.node_shutdown.by_pod_priority
    ] == [(0, 20)]
    assert budgets.autoscaler_max_graceful_termination is None
    assert budgets.node_group_drain_timeout == 900 * 10**9
    with pytest.raises(AssertionError, match="nodeGroupDrainTimeout"):
        chartkit.template("--set", "outerBudgets.nodeGroupDrainTimeout=15")


def test_default_configuration_is_the_operators_built_in_one_with_the_charts_image() -> None:
    docs = chartkit.documents(chartkit.template())
    config = configuration.load_config(
        chartkit.find(docs, "ConfigMap", "quiesce-config")["data"]["config.yaml"]
    )
    # Same image for operator and sidecar: the chart's appVersion is quiesce's version.
    assert config == configuration.Config()
    assert (
        config.sidecar.image == chartkit.container(docs, "StatefulSet", "quiesce-operator")["image"]
    )


def test_quiesce_plan_with_the_charts_configuration_predicts_the_operator(tmp_path: Path) -> None:
    docs = chartkit.documents(chartkit.template("--set", "plan.converge-max=45s"))
    defaults = tmp_path / "config.yaml"
    defaults.write_text(chartkit.find(docs, "ConfigMap", "quiesce-config")["data"]["config.yaml"])
    example = chartkit.MANIFESTS / "examples" / "nginx-sigquit.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "quiesce", "plan", "--defaults", str(defaults), "-f", str(example)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    assert "at most 45s" in result.stdout


def test_operator_rbac_is_the_same_as_manifests_rbac() -> None:
    shipped = chartkit.MANIFESTS / "rbac" / "operator.yaml"
    docs = chartkit.documents(chartkit.template())
    ours = chartkit.find(docs, "ClusterRole", "quiesce-operator")
    theirs = chartkit.find(chartkit.documents(shipped.read_text()), "ClusterRole")
    assert chartkit.rules(ours) == chartkit.rules(theirs)


def test_sidecar_clusterrole_reads_endpointslices_and_pods_and_only_creates_events() -> None:
    docs = chartkit.documents(chartkit.template())
    # The operator binds to this exact name (quiesce/operator/rbac.py).
    role = chartkit.find(docs, "ClusterRole", "quiesce-sidecar")
    assert chartkit.rules(role) == {
        ("discovery.k8s.io", "endpointslices", "list", "*"),
        ("discovery.k8s.io", "endpointslices", "watch", "*"),
        ("", "pods", "get", "*"),
        ("", "events", "create", "*"),
    }
    shipped = chartkit.MANIFESTS / "rbac" / "sidecar-clusterrole.yaml"
    theirs = chartkit.find(chartkit.documents(shipped.read_text()), "ClusterRole")
    assert chartkit.rules(role) == chartkit.rules(theirs)
    # Nothing binds it cluster-wide: the operator binds it per namespace.
    assert not [
        d for d in docs if d["kind"] == "ClusterRoleBinding"
        and d["roleRef"]["name"] == "quiesce-sidecar"
    ]  # fmt: skip


@pytest.mark.parametrize(
    "name", ["rbac-operator.yaml", "rbac-sidecar.yaml", "uninstall-hook.yaml", "webhook.yaml"]
)
def test_every_rbac_rule_says_why_it_exists(name: str) -> None:
    lines = (chartkit.CHART / "templates" / name).read_text().splitlines()
    rule_lines = [i for i, line in enumerate(lines) if line.strip().startswith("- apiGroups:")]
    assert rule_lines
    for i in rule_lines:
        above = lines[i - 1].strip()
        assert above.startswith("#"), f"{name}:{i + 1}: a rule without a comment above it"


def test_replicas_get_distinct_peering_priorities_from_their_ordinal() -> None:
    docs = chartkit.documents(chartkit.template())
    sts = chartkit.find(docs, "StatefulSet", "quiesce-operator")
    assert sts["spec"]["replicas"] == 2
    env = {e["name"]: e for e in chartkit.container(docs, "StatefulSet", "quiesce-operator")["env"]}
    assert env["QUIESCE_PRIORITY"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['apps.kubernetes.io/pod-index']"
    )
    assert env["POD_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    args = chartkit.container(docs, "StatefulSet", "quiesce-operator")["args"]
    assert "--all-namespaces" in args and "--peering=quiesce" in args
    assert "--priority" not in " ".join(args)  # it comes from QUIESCE_PRIORITY
    peering = chartkit.find(docs, "ClusterKopfPeering", "quiesce")
    assert "annotations" not in peering["metadata"]  # an ordinary object: its CRD is in crds/
    # Each replica waits for it before kopf starts (else it runs unpaired for ~50 s).
    (wait,) = sts["spec"]["template"]["spec"]["initContainers"]
    assert wait["name"] == "wait-for-peering" and wait["args"] == ["/quiesce"]


def test_kopf_peering_crds_are_in_crds_installed_first_and_never_deleted() -> None:
    text = (chartkit.CHART / "crds" / "kopf-peering.yaml").read_text()
    assert "{{" not in text  # crds/ is not templated
    crds = chartkit.documents(text)
    assert {c["metadata"]["name"] for c in crds} == {
        "clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev",
    }  # fmt: skip
    assert not [
        d
        for d in chartkit.documents(chartkit.template())
        if d["kind"] == "CustomResourceDefinition"
    ]
    shipped = chartkit.MANIFESTS / "rbac" / "peering.yaml"
    if shipped.exists():
        assert [c["spec"] for c in crds] == [
            c["spec"] for c in chartkit.documents(shipped.read_text())
        ]


def test_namespaced_install_watches_its_namespaces_with_a_kopfpeering_in_each() -> None:
    docs = chartkit.documents(chartkit.template("--set", "watchNamespaces={team-a,team-b}"))
    args = chartkit.container(docs, "StatefulSet", "quiesce-operator")["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args
    assert "--all-namespaces" not in args
    (wait,) = chartkit.find(docs, "StatefulSet", "quiesce-operator")["spec"]["template"]["spec"][
        "initContainers"
    ]
    assert wait["args"] == ["team-a/quiesce", "team-b/quiesce"]
    peerings = [d for d in docs if d["kind"] == "KopfPeering"]
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["team-a", "team-b"]
    assert {p["metadata"]["name"] for p in peerings} == {"quiesce"}
    assert not [d for d in docs if d["kind"] == "ClusterKopfPeering"]


def test_operator_pod_is_locked_down_and_probed_on_kopfs_liveness_endpoint() -> None:
    docs = chartkit.documents(chartkit.template())
    pod = chartkit.find(docs, "StatefulSet", "quiesce-operator")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    c = pod["containers"][0]
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert c["command"] == ["quiesce", "operator"]
    liveness = next(a for a in c["args"] if a.startswith("--liveness="))
    port = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert liveness == f"--liveness=http://0.0.0.0:{port['probes']}/healthz"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "probes"}
    assert f"--metrics-port={port['metrics']}" in c["args"]
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    assert "--config=/etc/quiesce/config.yaml" in c["args"]


def test_pdb_service_and_optional_servicemonitor() -> None:
    docs = chartkit.documents(chartkit.template())
    pdb = chartkit.find(docs, "PodDisruptionBudget", "quiesce-operator")
    sts = chartkit.find(docs, "StatefulSet", "quiesce-operator")
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = chartkit.find(docs, "Service", "quiesce-metrics")
    assert service["spec"]["selector"].items() <= labels.items()
    assert sts["spec"]["serviceName"] == "quiesce-metrics"
    assert not [d for d in docs if d["kind"] == "ServiceMonitor"]  # off by default
    on = chartkit.documents(chartkit.template("--set", "metrics.serviceMonitor.enabled=true"))
    monitor = chartkit.find(on, "ServiceMonitor", "quiesce")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


def test_uninstall_hook_restores_templates_before_anything_is_deleted() -> None:
    docs = chartkit.documents(chartkit.template())
    job = chartkit.find(docs, "Job", "quiesce-uninject")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-delete"
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["command"] == ["quiesce", "uninject"]
    assert c["args"] == ["--stop-operator=quiesce-system/quiesce-operator", "--all"]
    role = chartkit.find(docs, "Role", "quiesce-uninstall")
    assert chartkit.rules(role) == {
        ("apps", "statefulsets", "get", "quiesce-operator"),
        ("apps", "statefulsets", "patch", "quiesce-operator"),
        ("apps", "statefulsets/scale", "get", "quiesce-operator"),
        ("apps", "statefulsets/scale", "patch", "quiesce-operator"),
        ("", "pods", "list", "*"),
    }
    off = chartkit.documents(chartkit.template("--set", "uninstall.restoreTemplates=false"))
    assert not [d for d in off if d["kind"] in ("Job", "Role")]


@pytest.mark.parametrize(
    ("values", "scope"),
    [
        ((), ["--all"]),
        (("--set", "watchNamespaces={shop,pay}"), ["--namespace=shop", "--namespace=pay"]),
        (("--set", "webhook.enabled=true"), ["--all"]),
    ],
)
def test_uninstall_hook_arguments_are_ones_quiesce_uninject_accepts(
    values: tuple[str, ...], scope: list[str]
) -> None:
    """The real CLI parses them: ``--all`` and ``--namespace`` exclude each other."""
    docs = chartkit.documents(chartkit.template(*values))
    job = chartkit.find(docs, "Job", "quiesce-uninject")
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    parsed = cli.build_parser().parse_args(["uninject", *args])
    assert parsed.stop_operator == "quiesce-system/quiesce-operator"
    assert [a for a in args if a == "--all" or a.startswith("--namespace")] == scope


def test_every_value_is_in_the_schema_and_the_defaults_pass_it() -> None:
    values = yaml.safe_load((chartkit.CHART / "values.yaml").read_text())
    schema = yaml.safe_load((chartkit.CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    assert set(values) == set(schema["properties"])
    for key, sub in schema["properties"].items():
        if sub.get("type") == "object" and "properties" in sub:
            assert set(values[key]) <= set(sub["properties"]), key


def test_webhook_mode_ships_service_flags_and_the_rbac_docs_webhook_lists() -> None:
    off = chartkit.documents(chartkit.template())
    assert "--webhook" not in chartkit.container(off, "StatefulSet", "quiesce-operator")["args"]
    docs = chartkit.documents(chartkit.template("--set", "webhook.enabled=true"))
    c = chartkit.container(docs, "StatefulSet", "quiesce-operator")
    assert {
        "--webhook", "--webhook-name=quiesce",
        "--webhook-service=quiesce-system/quiesce-webhook:443",
        "--webhook-cert-secret=quiesce-system/quiesce-webhook-cert",
        "--webhook-failure-policy=Ignore",
    } <= set(c["args"])  # fmt: skip
    assert "--webhook-cert-provided" not in c["args"]
    assert {"name": "webhook", "containerPort": 9443, "protocol": "TCP"} in c["ports"]
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    service = chartkit.find(docs, "Service", "quiesce-webhook")
    assert service["spec"]["ports"] == [
        {"name": "webhook", "port": 443, "targetPort": "webhook", "protocol": "TCP"}
    ]
    # Its own MutatingWebhookConfiguration only, every verb by name (test_webhook_rbac.py
    # shows on the real API server that server-side apply's create narrows too).
    role = chartkit.rules(chartkit.find(docs, "ClusterRole", "quiesce-operator-webhook"))
    assert {r for r in role if r[1] == "mutatingwebhookconfigurations"} == {
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", verb, "quiesce")
        for verb in ("get", "create", "patch")
    }
    # The rules tests/webhook applies until the chart carries them (docs/webhook.md).
    shipped = chartkit.REPO / "tests" / "webhook" / "rbac-webhook.yaml"
    theirs = chartkit.documents(shipped.read_text())
    for kind, name in (
        ("ClusterRole", "quiesce-operator-webhook"),
        ("ClusterRole", "quiesce-operator-webhook-pods"),
        ("Role", "quiesce-operator-webhook-cert"),
    ):
        assert chartkit.rules(chartkit.find(docs, kind, name)) == chartkit.rules(
            chartkit.find(theirs, kind, name)
        ), name
    # Uninstalling deletes the configuration the operator wrote, and only that one.
    job = chartkit.find(docs, "Job", "quiesce-uninject")
    assert "--delete-webhook=quiesce" in job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert chartkit.rules(chartkit.find(docs, "ClusterRole", "quiesce-uninstall")) == {
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "delete", "quiesce")
    }
    # cert-manager: the Secret is provided, so the operator may only read it.
    cm = chartkit.documents(
        chartkit.template(
            "--set", "webhook.enabled=true", "--set", "webhook.certManager.enabled=true"
        )
    )
    assert (
        "--webhook-cert-provided"
        in chartkit.container(cm, "StatefulSet", "quiesce-operator")["args"]
    )
    assert chartkit.rules(chartkit.find(cm, "Role", "quiesce-operator-webhook-cert")) == {
        ("", "secrets", "get", "*")
    }
    cert = chartkit.find(cm, "Certificate", "quiesce-webhook")
    assert cert["spec"]["secretName"] == "quiesce-webhook-cert"
    assert "quiesce-webhook.quiesce-system.svc" in cert["spec"]["dnsNames"]


def test_the_webhook_scan_lists_pods_only_in_the_watched_namespaces_when_they_are_named() -> None:
    """Cluster-wide only when the chart cannot name the namespaces (docs/webhook.md)."""
    everywhere = chartkit.documents(chartkit.template("--set", "webhook.enabled=true"))
    assert chartkit.rules(
        chartkit.find(everywhere, "ClusterRole", "quiesce-operator-webhook-pods")
    ) == {("", "pods", "list", "*")}
    assert chartkit.find(everywhere, "ClusterRoleBinding", "quiesce-operator-webhook-pods")
    assert not [d for d in everywhere if d["kind"] == "RoleBinding"
                and d["metadata"]["name"] == "quiesce-operator-webhook-pods"]  # fmt: skip
    # No other webhook rule reads pods.
    assert not [r for r in chartkit.rules(chartkit.find(everywhere, "ClusterRole",
                "quiesce-operator-webhook")) if r[1] == "pods"]  # fmt: skip
    named = chartkit.documents(
        chartkit.template("--set", "webhook.enabled=true", "--set", "watchNamespaces={shop,pay}")
    )
    bindings = [d for d in named if d["metadata"]["name"] == "quiesce-operator-webhook-pods"
                and d["kind"] in ("RoleBinding", "ClusterRoleBinding")]  # fmt: skip
    assert sorted((d["kind"], d["metadata"]["namespace"]) for d in bindings) == [
        ("RoleBinding", "pay"), ("RoleBinding", "shop")
    ]  # fmt: skip
    for binding in bindings:
        assert binding["roleRef"]["name"] == "quiesce-operator-webhook-pods"
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "quiesce-operator", "namespace": "quiesce-system"}
        ]
