"""Rule behaviour users rely on: boundaries, messages, suppression, cross-object links."""

from __future__ import annotations

import textwrap

import pytest

from quiesce.lint import dockerfile, findings, loader, manifests
from quiesce.plan import outer


def lint_yaml(text: str) -> list[findings.Finding]:
    loaded = loader.load_text(textwrap.dedent(text), "test.yaml")
    assert loaded.errors == []
    found, errors = manifests.check(loaded.manifests)
    assert errors == []
    return found


def deployment(
    *, grace: int | None = None, container: str = "", annotations: str = "{}", labels: str = "{}"
) -> str:
    grace_line = f"terminationGracePeriodSeconds: {grace}" if grace is not None else ""
    body = textwrap.indent(textwrap.dedent(container).strip(), " " * 10)
    return f"""\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: shop, annotations: {annotations}}}
spec:
  template:
    metadata: {{labels: {labels}}}
    spec:
      {grace_line}
      containers:
        - name: web
          image: example/web:1
{body}
"""


def rule_ids(found: list[findings.Finding]) -> list[str]:
    return [f.rule_id for f in found]


@pytest.mark.parametrize(
    ("sleep", "grace", "fires"), [(29, 30, False), (30, 30, True), (31, 30, True)]
)
def test_prestop_fires_from_equal_to_grace_upwards(sleep: int, grace: int, fires: bool) -> None:
    container = f"lifecycle: {{preStop: {{exec: {{command: [sleep, '{sleep}']}}}}}}"
    found = lint_yaml(deployment(grace=grace, container=container))
    assert ("QL002" in rule_ids(found)) is fires


@pytest.mark.parametrize(("grace", "fires"), [(0, True), (4, True), (5, False), (None, False)])
def test_short_grace_fires_below_five_seconds_on_serving_workloads(
    grace: int | None, fires: bool
) -> None:
    found = lint_yaml(deployment(grace=grace, container="ports: [{containerPort: 80}]"))
    assert ("QL008" in rule_ids(found)) is fires


def test_app_timeout_after_an_overlong_hook_has_only_the_kubelets_two_seconds() -> None:
    container = """
        args: [--graceful-timeout, "3"]
        lifecycle: {preStop: {sleep: {seconds: 40}}}
    """
    found = lint_yaml(deployment(grace=30, container=container))
    [timeout] = [f for f in found if f.rule_id == "QL006"]
    assert "the app has 2 s" in timeout.message


def test_finding_names_object_container_field_line_and_fix() -> None:
    found = lint_yaml(deployment(container="command: [sh, -c, 'node server.js']"))
    [finding] = found
    assert finding.obj == findings.ObjectRef("Deployment", "web", "shop")
    assert finding.container == "web"
    assert finding.field == "spec.template.spec.containers[0].command"
    assert finding.location == findings.Location("test.yaml", 12)
    assert finding.text().startswith(
        "Deployment shop/web, container 'web', spec.template.spec.containers[0].command: "
    )
    assert "exec" in finding.fix


def test_suppression_silences_only_the_named_rules() -> None:
    container = """
        command: [sh, -c, 'node server.js']
        ports: [{containerPort: 80}]
    """
    found = lint_yaml(
        deployment(grace=0, container=container, annotations='{quiesce.dev/lint-ignore: "QL008"}')
    )
    assert rule_ids(found) == ["QL001"]


def test_ql000_cannot_suppress_itself() -> None:
    found = lint_yaml(deployment(annotations='{quiesce.dev/lint-ignore: "QL000,QLX"}'))
    assert [(f.rule_id, f.message) for f in found] == [
        ("QL000", "'QL000' is not a quiesce lint rule"),
        ("QL000", "'QLX' is not a quiesce lint rule"),
    ]


def test_unknown_ids_are_reported_on_any_kind_of_object() -> None:
    found = lint_yaml(
        """\
        apiVersion: v1
        kind: Service
        metadata:
          name: web
          annotations: {quiesce.dev/lint-ignore: "QL0O1"}
        """
    )
    assert [(f.rule_id, str(f.obj), f.location.line) for f in found] == [
        ("QL000", "Service web", 5)
    ]


SERVICE = """\
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {namespace}}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
---
"""


@pytest.mark.parametrize(
    ("namespace", "labels", "fires"),
    [
        ("shop", "{app: web}", True),
        ("null", "{app: web}", True),  # applied with `-n shop`: assume together
        ("other", "{app: web}", False),
        ("shop", "{app: api}", False),
    ],
)
def test_services_select_pods_by_labels_within_a_namespace(
    namespace: str, labels: str, fires: bool
) -> None:
    text = SERVICE.format(namespace=namespace) + deployment(
        container="ports: [{containerPort: 8080}]", labels=labels
    )
    assert ("QL003" in rule_ids(lint_yaml(text))) is fires


def test_malformed_fields_are_input_errors_with_lines() -> None:
    text = deployment(grace=None).replace(
        "containers:", "terminationGracePeriodSeconds: soon\n      containers:"
    )
    loaded = loader.load_text(text, "test.yaml")
    _, errors = manifests.check(loaded.manifests)
    [error] = errors
    expected = text.splitlines().index("      terminationGracePeriodSeconds: soon") + 1
    assert error.location.line == expected
    assert "terminationGracePeriodSeconds must be an integer" in error.message


def test_dockerfile_entrypoint_resets_an_inherited_cmd() -> None:
    raw = b'FROM python:3.12 AS base\nCMD python app.py\nFROM base\nENTRYPOINT ["/app"]\n'
    assert dockerfile.lint_bytes(raw, "Dockerfile").found == ()


def test_dockerfile_shell_entrypoint_is_reported_and_cmd_then_ignored() -> None:
    raw = b"FROM python:3.12\nENTRYPOINT python app.py\nCMD python other.py\n"
    [finding] = dockerfile.lint_bytes(raw, "Dockerfile").found
    assert (finding.rule_id, finding.field, finding.location.line) == ("QL001", "ENTRYPOINT", 2)


def test_dockerfile_build_arg_in_from_is_resolved_for_nginx() -> None:
    raw = b"ARG BASE=bitnami/nginx:1.25\nFROM ${BASE}\n"
    [finding] = dockerfile.lint_bytes(raw, "Dockerfile").found
    assert finding.rule_id == "QL004"


def test_dockerfile_heredoc_must_be_closed() -> None:
    result = dockerfile.lint_bytes(b"FROM alpine\nRUN <<EOF\necho hi\n", "Dockerfile")
    [error] = result.errors
    assert error.location.line == 2
    assert "never closed" in error.message


@pytest.mark.parametrize(
    ("lines", "fires_on"),
    [
        (['ENTRYPOINT ["sh", "-c"]', 'CMD ["python app.py"]'], "ENTRYPOINT"),
        (['ENTRYPOINT ["tini", "--"]', 'CMD ["python", "app.py"]'], None),
        (['ENTRYPOINT ["tini", "--"]', "CMD python app.py"], "CMD"),
        (['CMD ["/bin/bash", "-c", "exec python app.py"]'], None),
    ],
)
def test_dockerfile_entrypoint_and_cmd_are_read_together(
    lines: list[str], fires_on: str | None
) -> None:
    raw = ("FROM python:3.12\n" + "\n".join(lines) + "\n").encode()
    found = dockerfile.lint_bytes(raw, "Dockerfile").found
    assert [f.field for f in found] == ([fires_on] if fires_on else [])


def test_shell_in_args_without_command_is_reported() -> None:
    found = lint_yaml(deployment(container="args: [sh, -c, 'node server.js']"))
    assert [(f.rule_id, f.field) for f in found] == [
        ("QL001", "spec.template.spec.containers[0].args")
    ]


@pytest.mark.parametrize(
    ("value", "injected"),
    [
        ("true", True),
        ("yes", True),
        ("T", True),
        ("false", False),
        ("off", False),
        ("N", False),
        # Outside the grammar: asked for, and an error the plan reports.
        ("ture", True),
    ],
)
def test_injection_is_recognised_as_the_operator_reads_it(value: str, injected: bool) -> None:
    text = deployment(
        container="env: [{name: CONSUL_HTTP_ADDR, value: 'http://consul:8500'}]",
        annotations=f'{{quiesce.dev/inject: "{value}"}}',
    )
    assert ("QL007" in rule_ids(lint_yaml(text))) is not injected


@pytest.mark.parametrize(
    ("value", "fires"),
    [("true", True), ("false", False), ("F", False), ("no", False), ("disabled", True)],
)
def test_consul_connect_inject_is_off_only_when_false_in_the_one_boolean_grammar(
    value: str, fires: bool
) -> None:
    text = deployment(annotations=f'{{consul.hashicorp.com/connect-inject: "{value}"}}')
    assert ("QL007" in rule_ids(lint_yaml(text))) is fires


@pytest.mark.parametrize(
    ("neg", "fires"),
    [
        ('{"ingress":true}', True),
        ('{"exposed_ports": {"80": {}}}', True),
        ('{"ingress": false}', False),
        ("not json", False),
    ],
)
def test_gke_neg_annotation_is_read_as_json(neg: str, fires: bool) -> None:
    text = (
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\n"
        f"  annotations: {{cloud.google.com/neg: '{neg}'}}\n"
        "spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}\n---\n"
    ) + deployment(
        grace=45,
        container="ports: [{containerPort: 8080}]\nreadinessProbe: {tcpSocket: {port: 8080}}",
        labels="{app: web}",
    )
    assert ("QL005" in rule_ids(lint_yaml(text))) is fires


def lint_with(text: str, budgets: outer.OuterBudgets) -> list[findings.Finding]:
    loaded = loader.load_text(textwrap.dedent(text), "test.yaml")
    found, errors = manifests.check(loaded.manifests, budgets)
    assert loaded.errors == [] and errors == []
    return found


@pytest.mark.parametrize(("grace", "fires"), [(600, False), (601, True), (None, False)])
def test_outer_budget_fires_past_the_autoscalers_600s_by_default(
    grace: int | None, fires: bool
) -> None:
    found = lint_yaml(deployment(grace=grace))
    assert ("QL009" in rule_ids(found)) is fires


def test_outer_budget_names_the_setting_and_the_fix() -> None:
    (finding,) = lint_yaml(deployment(grace=900))
    assert finding.rule_id == "QL009" and finding.severity == findings.Severity.WARNING
    assert finding.field == "spec.template.spec.terminationGracePeriodSeconds"
    assert finding.message == (
        "terminationGracePeriodSeconds 900 is longer than the 600s the cluster-autoscaler's "
        "scale-down gives a pod (outerBudgets.autoscalerMaxGracefulTermination 10m0s): "
        "SIGKILL at 600s"
    )
    assert finding.fix == (
        "raise the autoscaler's --max-graceful-termination-sec to at least 900 (and "
        "autoscalerMaxGracefulTermination with it), or lower the grace period to 600"
    )


def test_outer_budget_checks_a_configured_node_shutdown_and_drain_timeout() -> None:
    budgets = outer.OuterBudgets(
        node_shutdown=outer.NodeShutdown(30 * 10**9, 10 * 10**9),
        autoscaler_max_graceful_termination=None,
        node_group_drain_timeout=25 * 10**9,
    )
    found = lint_with(deployment(), budgets)  # the default grace, 30 s
    assert [f.message for f in found] == [
        "the default terminationGracePeriodSeconds (30) is longer than the 20s a graceful node "
        "shutdown gives pods of priority 0 (no priorityClassName) "
        "(outerBudgets.nodeShutdown.shutdownGracePeriod 30s − shutdownGracePeriodCriticalPods "
        "10s): SIGKILL at 20s",
        "the default terminationGracePeriodSeconds (30) is longer than the 25s a node group's "
        "drain gives a pod (outerBudgets.nodeGroupDrainTimeout 25s): SIGKILL at 25s",
    ]
    assert found[0].fix == (
        "raise the kubelet's shutdownGracePeriod to at least 40s (and outerBudgets.nodeShutdown "
        "with it), or lower the grace period to 20"
    )
    assert lint_with(deployment(grace=20), budgets) == []


def test_outer_budget_can_be_suppressed_like_any_rule() -> None:
    found = lint_yaml(deployment(grace=900, annotations='{quiesce.dev/lint-ignore: "QL009"}'))
    assert "QL009" not in rule_ids(found)
