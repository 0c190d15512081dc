"""Resource strategies, one module per kind that differs from the default."""

from __future__ import annotations

from pocketkube.registry.generic import (
    CreateOnUpdateStrategy,
    GenerationStrategy,
    JobStrategy,
    NodeStrategy,
    PhaseStrategy,
)
from pocketkube.registry.namespaces import NamespaceStrategy
from pocketkube.registry.pods import PodStrategy
from pocketkube.registry.services import ServiceStrategy
from pocketkube.registry.strategy import Strategy

STRATEGIES: dict[tuple[str, str], type[Strategy]] = {
    ("", "pods"): PodStrategy,
    ("", "services"): ServiceStrategy,
    ("", "namespaces"): NamespaceStrategy,
    ("", "nodes"): NodeStrategy,
    ("", "persistentvolumes"): PhaseStrategy,
    ("", "persistentvolumeclaims"): PhaseStrategy,
    ("", "endpoints"): CreateOnUpdateStrategy,
    ("", "replicationcontrollers"): GenerationStrategy,
    ("apps", "deployments"): GenerationStrategy,
    ("apps", "replicasets"): GenerationStrategy,
    ("apps", "statefulsets"): GenerationStrategy,
    ("apps", "daemonsets"): GenerationStrategy,
    ("batch", "jobs"): JobStrategy,
    ("batch", "cronjobs"): GenerationStrategy,
    ("coordination.k8s.io", "leases"): CreateOnUpdateStrategy,
    ("policy", "poddisruptionbudgets"): GenerationStrategy,
    ("autoscaling", "horizontalpodautoscalers"): GenerationStrategy,
    ("networking.k8s.io", "ingresses"): GenerationStrategy,
    ("networking.k8s.io", "networkpolicies"): GenerationStrategy,
}
