"""Conversion between served versions of a kind that share one stored form.

Kubernetes stores each resource in one version and converts on the way in and out. pocketkube
serves autoscaling/v1 HorizontalPodAutoscalers (what `kubectl autoscale` 1.32 sends) from the
autoscaling/v2 objects in the store, following `pkg/apis/autoscaling/v1/conversion.go`:
targetCPUUtilizationPercentage is the v2 CPU Resource metric with an Utilization target, and
v2 metrics that v1 cannot express travel in the `autoscaling.alpha.kubernetes.io/metrics`
annotation so a round trip through v1 loses nothing.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from typing import Any

import orjson

Obj = dict[str, Any]
Converter = Callable[[Obj], Obj]

METRICS_ANNOTATION = "autoscaling.alpha.kubernetes.io/metrics"
CURRENT_ANNOTATION = "autoscaling.alpha.kubernetes.io/current-metrics"


def _is_cpu_util(m: Obj) -> bool:
    res = m.get("resource") or {}
    return (m.get("type") == "Resource" and res.get("name") == "cpu"
            and (res.get("target") or {}).get("type") == "Utilization")


def hpa_v2_to_v1(obj: Obj) -> Obj:
    out = copy.deepcopy(obj)
    out["apiVersion"] = "autoscaling/v1"
    spec = out.get("spec") or {}
    metrics = spec.pop("metrics", None) or []
    spec.pop("behavior", None)
    others = []
    for m in metrics:
        if _is_cpu_util(m) and "targetCPUUtilizationPercentage" not in spec:
            spec["targetCPUUtilizationPercentage"] = m["resource"]["target"].get(
                "averageUtilization")
        else:
            others.append(m)
    ann = out.setdefault("metadata", {}).setdefault("annotations", {})
    if others:
        ann[METRICS_ANNOTATION] = orjson.dumps(others).decode()
    status = out.get("status") or {}
    current = status.pop("currentMetrics", None) or []
    status.pop("conditions", None)
    for m in current:
        if m.get("type") == "Resource" and (m.get("resource") or {}).get("name") == "cpu":
            util = ((m["resource"].get("current") or {}).get("averageUtilization"))
            if util is not None:
                status["currentCPUUtilizationPercentage"] = util
    if not ann:
        out["metadata"].pop("annotations")
    return out


def hpa_v1_to_v2(obj: Obj) -> Obj:
    out = copy.deepcopy(obj)
    out["apiVersion"] = "autoscaling/v2"
    spec = out.setdefault("spec", {})
    meta = out.setdefault("metadata", {})
    ann = meta.get("annotations") or {}
    metrics: list[Obj] = []
    target = spec.pop("targetCPUUtilizationPercentage", None)
    if target is not None:
        metrics.append({"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}}})
    extra = ann.pop(METRICS_ANNOTATION, None)
    if extra:
        with contextlib.suppress(orjson.JSONDecodeError):
            metrics.extend(m for m in orjson.loads(extra) if isinstance(m, dict))
    if metrics:
        spec["metrics"] = metrics
    if not ann:
        meta.pop("annotations", None)
    status = out.get("status")
    if isinstance(status, dict):
        util = status.pop("currentCPUUtilizationPercentage", None)
        if util is not None:
            status["currentMetrics"] = [{"type": "Resource", "resource": {
                "name": "cpu", "current": {"averageUtilization": util}}}]
    return out


CONVERSIONS: dict[tuple[str, str, str, str], Converter] = {
    ("autoscaling", "HorizontalPodAutoscaler", "v2", "v1"): hpa_v2_to_v1,
    ("autoscaling", "HorizontalPodAutoscaler", "v1", "v2"): hpa_v1_to_v2,
}


def converter(group: str, kind: str, from_version: str, to_version: str) -> Converter:
    return CONVERSIONS[(group, kind, from_version, to_version)]
