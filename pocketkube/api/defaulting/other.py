"""Defaults of the smaller API groups: rbac, networking, policy, scheduling, storage,
coordination, discovery and autoscaling.

Each follows its group's `pkg/apis/<group>/v1/defaults.go` (autoscaling: `v2/defaults.go`), plus
the fields Go serializes even when empty (`rules: null`, `spec.podSelector: {}`, PDB counters).
"""

from __future__ import annotations

import copy
from typing import Any

from pocketkube.api.defaulting.util import child, existing, objects, set_if_empty, setdefault

RBAC_GROUP = "rbac.authorization.k8s.io"

_SCALE_UP = {
    "stabilizationWindowSeconds": 0,
    "selectPolicy": "Max",
    "policies": [
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15},
    ],
}
# The scale-down window stays unset: the controller's command line decides it.
_SCALE_DOWN = {
    "selectPolicy": "Max",
    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
}


def role(obj: dict[str, Any]) -> None:
    if "rules" not in obj:
        obj["rules"] = None


def binding(obj: dict[str, Any]) -> None:
    set_if_empty(child(obj, "roleRef"), "apiGroup", RBAC_GROUP)
    for subject in objects(obj, "subjects"):
        if not subject.get("apiGroup") and subject.get("kind") in ("User", "Group"):
            subject["apiGroup"] = RBAC_GROUP


def network_policy(obj: dict[str, Any]) -> None:
    spec = child(obj, "spec")
    if spec is None:
        return
    setdefault(spec, "podSelector", {})
    for direction in ("ingress", "egress"):
        for rule in objects(spec, direction):
            for port in objects(rule, "ports"):
                setdefault(port, "protocol", "TCP")
    if not spec.get("policyTypes"):
        types = ["Ingress"]
        if spec.get("egress"):
            types.append("Egress")
        spec["policyTypes"] = types


def ingress(obj: dict[str, Any]) -> None:
    setdefault(child(obj, "status"), "loadBalancer", {})


def ingress_class(obj: dict[str, Any]) -> None:
    params = existing(existing(obj, "spec"), "parameters")
    setdefault(params, "scope", "Cluster")


def pdb(obj: dict[str, Any]) -> None:
    status = child(obj, "status")
    for key in ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods"):
        setdefault(status, key, 0)


def priority_class(obj: dict[str, Any]) -> None:
    setdefault(obj, "value", 0)
    setdefault(obj, "preemptionPolicy", "PreemptLowerPriority")


def storage_class(obj: dict[str, Any]) -> None:
    setdefault(obj, "provisioner", "")
    setdefault(obj, "reclaimPolicy", "Delete")
    setdefault(obj, "volumeBindingMode", "Immediate")


def lease(obj: dict[str, Any]) -> None:
    child(obj, "spec")


def endpoint_slice(obj: dict[str, Any]) -> None:
    if "endpoints" not in obj:
        obj["endpoints"] = None
    for ep in objects(obj, "endpoints"):
        setdefault(ep, "conditions", {})
    for port in objects(obj, "ports"):
        setdefault(port, "name", "")
        setdefault(port, "protocol", "TCP")


def hpa(obj: dict[str, Any]) -> None:
    spec = child(obj, "spec")
    if spec is None:
        return
    setdefault(spec, "minReplicas", 1)
    if not spec.get("metrics"):
        spec["metrics"] = [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
    behavior = existing(spec, "behavior")
    if behavior is not None:
        for key, defaults in (("scaleUp", _SCALE_UP), ("scaleDown", _SCALE_DOWN)):
            rules = existing(behavior, key) or {}
            merged = copy.deepcopy(defaults)
            for field_name in ("selectPolicy", "stabilizationWindowSeconds", "policies"):
                if rules.get(field_name) is not None:
                    merged[field_name] = rules[field_name]
            behavior[key] = merged
    setdefault(child(obj, "status"), "desiredReplicas", 0)
