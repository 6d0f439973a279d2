"""The objects other objects refer to, indexed before any workload is checked.

Some hazards only show when objects are read together: a Service decides which
containers serve traffic (QL003) and which load balancer a pod must outlive (QL005),
a mounted ConfigMap may carry an app's shutdown timeout (QL006). So a run first
indexes Services, Ingresses, TargetGroupBindings and ConfigMaps here; the checks
(:mod:`quiesce.lint.manifests`) then read each workload against the index.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

from quiesce.lint import findings, rules, workloads
from quiesce.lint.workloads import mapping, sequence, string_map, text

_AWS_SVC: Final = "service.beta.kubernetes.io/"
_ALB: Final = "alb.ingress.kubernetes.io/"
_DEREGISTRATION = re.compile(r"deregistration_delay\.timeout_seconds\s*=\s*(\d+)")


@dataclasses.dataclass(frozen=True)
class LoadBalancer:
    """What a load balancer in front of a Service needs from a terminating pod."""

    seconds: float
    description: str


@dataclasses.dataclass(frozen=True)
class Service:
    ref: findings.ObjectRef
    selector: Mapping[str, str]
    target_ports: tuple[int | str, ...]
    annotations: Mapping[str, str]


@dataclasses.dataclass
class Index:
    """Objects that other objects refer to, gathered before any workload is checked."""

    services_by_label: dict[tuple[str, str], list[Service]] = dataclasses.field(
        default_factory=dict
    )
    load_balancers: dict[str, dict[str | None, list[LoadBalancer]]] = dataclasses.field(
        default_factory=dict
    )
    """Service name -> namespace -> load balancers in front of it."""
    config_maps: dict[tuple[str | None, str], str] = dataclasses.field(default_factory=dict)

    def add(self, obj: Mapping[str, Any]) -> None:
        kind = obj.get("kind")
        metadata = mapping(obj.get("metadata"))
        namespace = text(metadata.get("namespace")) or None
        name = text(metadata.get("name"))
        if kind == "Service":
            self._add_service(obj, namespace, name)
        elif kind == "Ingress":
            self._add_ingress(obj, namespace)
        elif kind == "TargetGroupBinding":
            spec = mapping(obj.get("spec"))
            service = text(mapping(spec.get("serviceRef")).get("name"))
            if text(spec.get("targetType")) == "ip" and service:
                lb = LoadBalancer(rules.AWS_IP_TARGET_SECONDS, "an AWS target group (IP targets)")
                self._lb(namespace, service, lb)
        elif kind == "ConfigMap":
            data = mapping(obj.get("data"))
            self.config_maps[(namespace, name)] = "\n".join(text(v) for v in data.values())

    def _add_service(self, obj: Mapping[str, Any], namespace: str | None, name: str) -> None:
        spec = mapping(obj.get("spec"))
        ann = string_map(mapping(obj.get("metadata")).get("annotations"))
        ports: list[int | str] = []
        for port in sequence(spec.get("ports")):
            port = mapping(port)
            target = port.get("targetPort", port.get("port"))
            if isinstance(target, int | str) and not isinstance(target, bool):
                ports.append(target)
        selector = string_map(spec.get("selector"))
        ref = findings.ObjectRef("Service", name or "<unnamed>", namespace)
        if selector:
            first = min(selector.items())
            service = Service(ref, selector, tuple(ports), ann)
            self.services_by_label.setdefault(first, []).append(service)
        nlb_ip = (
            ann.get(_AWS_SVC + "aws-load-balancer-nlb-target-type", "").lower() == "ip"
            or ann.get(_AWS_SVC + "aws-load-balancer-type", "").lower() == "nlb-ip"
        )
        if nlb_ip:
            tuned = _deregistration(ann.get(_AWS_SVC + "aws-load-balancer-target-group-attributes"))
            self._lb(namespace, name, _aws("an AWS NLB with IP targets", tuned))
        if ann.get(_ALB + "target-type", "").lower() == "ip":
            tuned = _deregistration(ann.get(_ALB + "target-group-attributes"))
            self._lb(namespace, name, _aws("an AWS ALB with IP targets", tuned))
        if _uses_neg(ann.get("cloud.google.com/neg", "")):
            lb = LoadBalancer(rules.GKE_NEG_SECONDS, "a GKE NEG (container-native load balancing)")
            self._lb(namespace, name, lb)

    def _add_ingress(self, obj: Mapping[str, Any], namespace: str | None) -> None:
        ann = string_map(mapping(obj.get("metadata")).get("annotations"))
        if ann.get(_ALB + "target-type", "").lower() != "ip":
            return
        tuned = _deregistration(ann.get(_ALB + "target-group-attributes"))
        lb = _aws("an AWS ALB with IP targets", tuned)
        for service in _ingress_backends(mapping(obj.get("spec"))):
            self._lb(namespace, service, lb)

    def _lb(self, namespace: str | None, service: str, lb: LoadBalancer) -> None:
        self.load_balancers.setdefault(service, {}).setdefault(namespace, []).append(lb)

    def selecting(self, workload: workloads.Workload) -> list[Service]:
        """Services whose selector matches the pod template's labels.

        Indexed by each selector's first label, so 10,000 objects are not a
        quadratic scan of every Service for every workload.
        """
        found: list[Service] = []
        for item in workload.pod_labels.items():
            for s in self.services_by_label.get(item, ()):
                if same_namespace(s.ref.namespace, workload.ref.namespace) and all(
                    workload.pod_labels.get(k) == v for k, v in s.selector.items()
                ):
                    found.append(s)
        return found

    def load_balancers_of(self, service: Service) -> list[LoadBalancer]:
        found: list[LoadBalancer] = []
        for namespace, lbs in self.load_balancers.get(service.ref.name, {}).items():
            if same_namespace(namespace, service.ref.namespace):
                found.extend(lbs)
        return found


def _aws(what: str, tuned: float | None) -> LoadBalancer:
    if tuned is None:
        return LoadBalancer(rules.AWS_IP_TARGET_SECONDS, f"{what} (deregistration >= 120 s)")
    return LoadBalancer(tuned, f"{what} (deregistration_delay.timeout_seconds={tuned:g})")


def _uses_neg(value: str) -> bool:
    """``cloud.google.com/neg: '{"ingress": true}'`` or standalone ``exposed_ports``."""
    try:
        parsed = json.loads(value) if value else None
    except ValueError:
        return False
    return isinstance(parsed, dict) and (
        parsed.get("ingress") is True or bool(parsed.get("exposed_ports"))
    )


def _deregistration(attributes: str | None) -> float | None:
    match = _DEREGISTRATION.search(attributes or "")
    return float(match.group(1)) if match else None


def _ingress_backends(spec: Mapping[str, Any]) -> Iterator[str]:
    backends = [mapping(spec.get("defaultBackend")), mapping(spec.get("backend"))]
    for rule in sequence(spec.get("rules")):
        for path in sequence(mapping(mapping(rule).get("http")).get("paths")):
            backends.append(mapping(mapping(path).get("backend")))
    for backend in backends:
        name = text(mapping(backend.get("service")).get("name")) or text(backend.get("serviceName"))
        if name:
            yield name


def same_namespace(a: str | None, b: str | None) -> bool:
    """Objects without a namespace land wherever they are applied: assume together."""
    return a is None or b is None or a == b
