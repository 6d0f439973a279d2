"""Arbitrary input never crashes the linter: it reports input errors instead.

A linter in CI that dies on an odd chart gets switched off; so whatever YAML,
mapping or Dockerfile arrives, the only outcomes are findings and the linter's
own input errors.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quiesce.lint import dockerfile, findings, loader, manifests, output, rules

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from(["sh", "-c", "sleep 30", "nginx", "SIGQUIT", "true", "QL001", "30s", "ip"]),
)
anything = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=12), children, max_size=4),
    ),
    max_leaves=20,
)


def maybe(proper: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The right shape most of the time, anything at all otherwise."""
    return st.one_of(proper, proper, anything)


annotations = maybe(
    st.dictionaries(
        st.sampled_from(
            [
                "quiesce.dev/inject",
                "quiesce.dev/lint-ignore",
                "quiesce.dev/grace-period",
                "quiesce.dev/converge-max",
                "quiesce.dev/signal",
                "consul.hashicorp.com/connect-inject",
                "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type",
                "cloud.google.com/neg",
            ]
        ),
        scalars,
        max_size=4,
    )
)
container = maybe(
    st.fixed_dictionaries(
        {"name": maybe(st.text(max_size=8))},
        optional={
            "image": maybe(st.sampled_from(["nginx:1.17", "bitnami/nginx", "app:1", ""])),
            "command": maybe(st.lists(scalars, max_size=4)),
            "args": maybe(st.lists(scalars, max_size=4)),
            "ports": maybe(st.lists(maybe(st.fixed_dictionaries({"containerPort": scalars})))),
            "env": maybe(
                st.lists(maybe(st.fixed_dictionaries({"name": scalars, "value": scalars})))
            ),
            "lifecycle": maybe(
                st.fixed_dictionaries(
                    {"preStop": maybe(st.fixed_dictionaries({"exec": anything, "sleep": anything}))}
                )
            ),
            "readinessProbe": anything,
        },
    )
)
pod_spec = maybe(
    st.fixed_dictionaries(
        {"containers": maybe(st.lists(container, max_size=3))},
        optional={
            "terminationGracePeriodSeconds": scalars,
            "volumes": maybe(st.lists(anything, max_size=2)),
        },
    )
)
metadata = maybe(
    st.fixed_dictionaries(
        {},
        optional={
            "name": scalars,
            "namespace": scalars,
            "annotations": annotations,
            "labels": anything,
        },
    )
)
objects = st.one_of(
    st.fixed_dictionaries(
        {
            "kind": st.sampled_from(["Deployment", "StatefulSet", "DaemonSet", "Job", "Rollout"]),
            "metadata": metadata,
            "spec": maybe(
                st.fixed_dictionaries(
                    {
                        "template": maybe(
                            st.fixed_dictionaries({"metadata": metadata, "spec": pod_spec})
                        )
                    }
                )
            ),
        }
    ),
    st.fixed_dictionaries(
        {
            "kind": st.sampled_from(["Pod", "CronJob", "PodTemplate"]),
            "metadata": metadata,
            "spec": pod_spec,
        }
    ),
    st.fixed_dictionaries(
        {
            "kind": st.sampled_from(
                ["Service", "Ingress", "ConfigMap", "TargetGroupBinding", "List"]
            ),
            "metadata": metadata,
            "spec": anything,
            "data": anything,
            "items": anything,
        }
    ),
    st.dictionaries(st.text(max_size=10), anything, max_size=5),
)


def as_manifest(obj: Any) -> loader.Manifest:
    return loader.Manifest(obj, findings.Location("gen.yaml", 1))


@SETTINGS
@given(st.lists(objects, max_size=5))
def test_arbitrary_objects_give_findings_never_exceptions(objs: list[Any]) -> None:
    manifestlist = [as_manifest(o) for o in objs if loader.is_object(o)]
    found, errors = manifests.check(manifestlist)
    report = findings.Report(tuple(found), tuple(errors), len(manifestlist))
    for fmt in output.FORMATS:
        output.render(report, fmt)  # every format can render whatever was found
    json.loads(output.to_json(report))


@SETTINGS
@given(st.lists(objects, max_size=4))
def test_arbitrary_yaml_streams_load_and_lint(objs: list[Any]) -> None:
    text = yaml.safe_dump_all(objs)
    loaded = loader.load_text(text, "gen.yaml")
    assert loaded.errors == []
    manifests.check(loaded.manifests)


@SETTINGS
@given(st.lists(anything, max_size=4))
def test_fast_loader_builds_what_the_safe_loader_builds(values: list[Any]) -> None:
    text = yaml.safe_dump_all(values)
    wrapped = [{"kind": "Thing", "value": v} for v in values]
    loaded = loader.load_text(yaml.safe_dump_all(wrapped), "gen.yaml")
    assert [m.obj for m in loaded.manifests] == list(
        yaml.safe_load_all(yaml.safe_dump_all(wrapped))
    )
    assert list(yaml.safe_load_all(text)) == values


@SETTINGS
@given(st.text(max_size=300))
def test_arbitrary_text_is_read_or_reported(text: str) -> None:
    loaded = loader.load_text(text, "gen.yaml")
    for error in loaded.errors:
        assert error.location.path == "gen.yaml"
    manifests.check(loaded.manifests)


yaml_fragments = st.lists(
    st.sampled_from(
        [
            "kind: Deployment\n",
            "---\n",
            "spec:\n",
            "  template:\n",
            "    spec:\n",
            "      containers:\n",
            "        - name: a\n",
            "          command: [sh, -c, x]\n",
            "  - [unclosed\n",
            "{",
            "}",
            ": :\n",
            "&a x\n",
            "*a\n",
            "!!binary zz\n",
            "!tag x\n",
            "\t\n",
            "key: 'quoted\n",
            "- - -\n",
            "? x\n",
            "%YAML 1.1\n",
            "...\n",
        ]
    ),
    max_size=15,
)


@SETTINGS
@given(yaml_fragments)
def test_yaml_shaped_garbage_is_read_or_reported(parts: list[str]) -> None:
    loaded = loader.load_text("".join(parts), "gen.yaml")
    manifests.check(loaded.manifests)


dockerfile_lines = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "FROM nginx\n",
                "FROM base AS x\n",
                "FROM x\n",
                "ARG B=nginx\n",
                "FROM $B\n",
                "CMD nginx\n",
                'CMD ["nginx"]\n',
                "CMD [\n",
                "ENTRYPOINT sh -c x\n",
                "STOPSIGNAL\n",
                "STOPSIGNAL 3\n",
                "RUN <<EOF\n",
                "EOF\n",
                "RUN apk add nginx\n",
                "# quiesce.dev/lint-ignore: QL001,X\n",
                "\\\n",
                "FROM\n",
                "ONBUILD CMD x\n",
            ]
        ),
        st.text(max_size=30).map(lambda s: s + "\n"),
    ),
    max_size=12,
)


@SETTINGS
@given(dockerfile_lines)
def test_arbitrary_dockerfiles_give_findings_or_input_errors(lines: list[str]) -> None:
    result = dockerfile.lint_bytes("".join(lines).encode(), "Dockerfile")
    assert result.errors or result.found is not None
    for error in result.errors:
        assert error.location.path == "Dockerfile"


@SETTINGS
@given(st.binary(max_size=200))
def test_arbitrary_bytes_as_dockerfile(raw: bytes) -> None:
    dockerfile.lint_bytes(raw, "Dockerfile")


ALL_RULES = ",".join(r for r in rules.RULES if r != "QL000")


@SETTINGS
@given(st.lists(objects, max_size=5))
def test_ignoring_every_rule_on_every_object_leaves_no_findings(objs: list[Any]) -> None:
    for obj in objs:
        if isinstance(obj, dict):
            obj["metadata"] = {"annotations": {"quiesce.dev/lint-ignore": ALL_RULES}}
    manifestlist = [as_manifest(o) for o in objs if loader.is_object(o)]
    found, _ = manifests.check(manifestlist)
    # Only QL000 may remain: generated pod-template annotations can hold bad IDs.
    assert {f.rule_id for f in found} <= {"QL000"}
