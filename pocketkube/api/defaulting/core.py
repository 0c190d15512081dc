"""Defaults of the core/v1 kinds other than Pod.

Follows kubernetes `pkg/apis/core/v1/defaults.go` (Service, Namespace, Secret, PV/PVC,
Endpoints, Node, ReplicationController, LimitRange), and adds what kube-apiserver shows for
fields that Go serializes even when empty (`status: {loadBalancer: {}}`, `status.replicas: 0`).
Secret `stringData` is folded into `data` here because kube does it while decoding the request.
"""

from __future__ import annotations

import base64
from typing import Any

from pocketkube.api.defaulting import core_pod
from pocketkube.api.defaulting.util import (
    child,
    existing,
    objects,
    set_if_empty,
    setdefault,
    template_meta,
)


def service(obj: dict[str, Any]) -> None:
    spec = child(obj, "spec")
    if spec is None:
        return
    set_if_empty(spec, "sessionAffinity", "None")
    if spec.get("sessionAffinity") == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec.get("sessionAffinity") == "ClientIP":
        cfg = child(spec, "sessionAffinityConfig")
        setdefault(child(cfg, "clientIP"), "timeoutSeconds", 10800)
    set_if_empty(spec, "type", "ClusterIP")
    stype = spec.get("type")
    for port in objects(spec, "ports"):
        set_if_empty(port, "protocol", "TCP")
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port")
    external = stype in ("NodePort", "LoadBalancer") or (stype == "ClusterIP" and spec.get("externalIPs"))
    if external:
        set_if_empty(spec, "externalTrafficPolicy", "Cluster")
    if stype in ("NodePort", "LoadBalancer", "ClusterIP"):
        setdefault(spec, "internalTrafficPolicy", "Cluster")
    if stype == "LoadBalancer":
        setdefault(spec, "allocateLoadBalancerNodePorts", True)
    if stype != "ExternalName":
        # The IP-family fields the service registry fills in on a single-stack IPv4 cluster.
        headless_selectorless = spec.get("clusterIP") == "None" and not spec.get("selector")
        setdefault(spec, "ipFamilyPolicy", "RequireDualStack" if headless_selectorless else "SingleStack")
        set_if_empty(spec, "ipFamilies", ["IPv4"])
    status = child(obj, "status")
    setdefault(status, "loadBalancer", {})


def namespace(obj: dict[str, Any]) -> None:
    md = child(obj, "metadata")
    name = md.get("name") if md is not None else None
    if isinstance(name, str) and name:
        labels = child(md, "labels")
        if labels is not None:
            labels["kubernetes.io/metadata.name"] = name
    # The namespace strategy adds the finalizer on create; `spec: {}` would otherwise show.
    spec = child(obj, "spec")
    set_if_empty(spec, "finalizers", ["kubernetes"])
    set_if_empty(child(obj, "status"), "phase", "Active")


def secret(obj: dict[str, Any]) -> None:
    set_if_empty(obj, "type", "Opaque")
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = child(obj, "data")
        if data is not None:
            for key, value in string_data.items():
                text = value if isinstance(value, str) else ""
                data[key] = base64.b64encode(text.encode()).decode()


def persistent_volume(obj: dict[str, Any]) -> None:
    set_if_empty(child(obj, "status"), "phase", "Pending")
    spec = child(obj, "spec")
    set_if_empty(spec, "persistentVolumeReclaimPolicy", "Retain")
    setdefault(spec, "volumeMode", "Filesystem")


def claim(obj: dict[str, Any], nested: bool = False) -> None:
    """A PersistentVolumeClaim, or one embedded in a StatefulSet's volumeClaimTemplates."""
    if nested:
        template_meta(obj)
    set_if_empty(child(obj, "status"), "phase", "Pending")
    spec = child(obj, "spec")
    setdefault(spec, "volumeMode", "Filesystem")
    setdefault(spec, "resources", {})


def endpoints(obj: dict[str, Any]) -> None:
    for subset in objects(obj, "subsets"):
        for port in objects(subset, "ports"):
            set_if_empty(port, "protocol", "TCP")


def node(obj: dict[str, Any]) -> None:
    status = existing(obj, "status")
    capacity = existing(status, "capacity")
    if status is not None and capacity is not None and status.get("allocatable") is None:
        status["allocatable"] = dict(capacity)


def replication_controller(obj: dict[str, Any]) -> None:
    spec = child(obj, "spec")
    if spec is None:
        return
    tpl = existing(spec, "template")
    labels = existing(existing(tpl, "metadata"), "labels")
    if labels is not None:
        if not spec.get("selector"):
            spec["selector"] = dict(labels)
        md = child(obj, "metadata")
        if md is not None and not md.get("labels"):
            md["labels"] = dict(labels)
    setdefault(spec, "replicas", 1)
    core_pod.template(tpl)
    setdefault(child(obj, "status"), "replicas", 0)


def pod_template(obj: dict[str, Any]) -> None:
    core_pod.template(child(obj, "template"))


def limit_range(obj: dict[str, Any]) -> None:
    for item in objects(existing(obj, "spec"), "limits"):
        if item.get("type") != "Container":
            continue
        default = child(item, "default")
        request = child(item, "defaultRequest")
        if default is None or request is None:
            continue
        for key, value in (existing(item, "max") or {}).items():
            default.setdefault(key, value)
        for key, value in default.items():
            request.setdefault(key, value)
        for key, value in (existing(item, "min") or {}).items():
            request.setdefault(key, value)


def event(obj: dict[str, Any]) -> None:
    """core/v1 Event fields that Go serializes even when unset."""
    for key in ("eventTime", "firstTimestamp", "lastTimestamp"):
        if key not in obj:
            obj[key] = None
    for key in ("reportingComponent", "reportingInstance"):
        setdefault(obj, key, "")
    setdefault(obj, "involvedObject", {})
    setdefault(obj, "source", {})
