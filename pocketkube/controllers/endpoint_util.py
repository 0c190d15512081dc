"""What the Endpoints and EndpointSlice controllers share (kube's `k8s.io/endpointslice/util`
and `pkg/api/v1/pod`): which pods a Service selects and which Services select a pod, whether a
pod belongs in a Service's endpoints at all, its readiness, the port a (possibly named)
targetPort resolves to, and the last-change-trigger-time bookkeeping. Pure functions over
dicts, plus the namespace index both controllers put on the shared pod and service informers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pocketkube.api.podutil import is_pod_ready as pod_ready
from pocketkube.api.podutil import ready_condition
from pocketkube.client.informer import Informer, key_of

Obj = dict[str, Any]

NAMESPACE_INDEX = "namespace"
TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
HEADLESS = "service.kubernetes.io/headless"
ZONE = "topology.kubernetes.io/zone"


def by_namespace(obj: Obj) -> list[str]:
    return [(obj.get("metadata") or {}).get("namespace") or ""]


def index_namespaces(*informers: Informer) -> None:
    for inf in informers:
        inf.add_index(NAMESPACE_INDEX, by_namespace)


# --- services and the pods they select ----------------------------------------------------------


def selector_of(svc: Obj) -> dict[str, str] | None:
    """The service's selector; None (not {}) when it has none: such a Service selects nothing."""
    return (svc.get("spec") or {}).get("selector")


def handled(svc: Obj) -> bool:
    """Whether the controllers compute endpoints for `svc`. Without a selector its endpoints are
    the user's to write; an ExternalName service has none."""
    return (svc.get("spec") or {}).get("type") != "ExternalName" and selector_of(svc) is not None


def matches(selector: dict[str, str] | None, labels: dict[str, str] | None) -> bool:
    if selector is None:
        return False
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


def selected_pods(pods: Informer, svc: Obj) -> list[Obj]:
    """The pods in the service's namespace its selector matches, in name order."""
    sel = selector_of(svc)
    ns = svc["metadata"].get("namespace") or ""
    found = [p for p in pods.by_index(NAMESPACE_INDEX, ns)
             if matches(sel, (p.get("metadata") or {}).get("labels"))]
    return sorted(found, key=lambda p: p["metadata"]["name"])


def services_for_labels(services: Informer, namespace: str,
                        labels: dict[str, str] | None) -> set[str]:
    return {key_of(s) for s in services.by_index(NAMESPACE_INDEX, namespace)
            if matches(selector_of(s), labels)}


def services_for_pod(services: Informer, pod: Obj) -> set[str]:
    meta = pod.get("metadata") or {}
    return services_for_labels(services, meta.get("namespace") or "", meta.get("labels"))


def services_to_update(services: Informer, old: Obj, new: Obj) -> set[str]:
    """The services a pod update may change the endpoints of (kube's
    GetServicesToUpdateOnPodChange): none if nothing endpoints show changed; when its labels
    changed, those entering or leaving a selector, or all old and new ones if more changed."""
    if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
        return set()
    pod_changed, labels_changed = pod_endpoints_changed(old, new)
    if not pod_changed and not labels_changed:
        return set()
    now = services_for_pod(services, new)
    if not labels_changed:
        return now
    before = services_for_pod(services, old)
    return now | before if pod_changed else now ^ before


def pod_endpoints_changed(old: Obj, new: Obj) -> tuple[bool, bool]:
    """(whether endpoints built from the pod may differ, whether the services selecting it may)."""
    def host(p: Obj) -> tuple[Any, Any]:
        spec = p.get("spec") or {}
        return spec.get("hostname"), spec.get("subdomain")

    labels_changed = (old["metadata"].get("labels") or {}) != \
        (new["metadata"].get("labels") or {}) or host(old) != host(new)
    if old["metadata"].get("deletionTimestamp") != new["metadata"].get("deletionTimestamp"):
        return True, labels_changed
    if pod_ready(old) != pod_ready(new):
        return True, labels_changed
    return pod_ips(old) != pod_ips(new), labels_changed


# --- pods -----------------------------------------------------------------------------------------






def terminating(pod: Obj) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def pod_ips(pod: Obj) -> list[str]:
    status = pod.get("status") or {}
    ips = [e.get("ip") for e in status.get("podIPs") or [] if e.get("ip")]
    if not ips and status.get("podIP"):
        ips = [status["podIP"]]
    return ips


def should_be_in_endpoints(pod: Obj, include_terminating: bool) -> bool:
    """Terminal pods never are, nor pods without an address (not yet scheduled or started);
    terminating ones only when asked for."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    if not pod_ips(pod):
        return False
    return include_terminating or not terminating(pod)


def should_set_hostname(pod: Obj, svc: Obj) -> bool:
    spec = pod.get("spec") or {}
    return bool(spec.get("hostname")) and spec.get("subdomain") == svc["metadata"]["name"] and \
        (pod.get("metadata") or {}).get("namespace") == svc["metadata"].get("namespace")


def is_ipv6(ip: str) -> bool:
    return ":" in ip


def service_ip_set(svc: Obj) -> bool:
    ip = (svc.get("spec") or {}).get("clusterIP") or ""
    return ip not in ("", "None")


def find_port(pod: Obj, svc_port: Obj) -> int | None:
    """The pod port a service port's targetPort names: the number itself, or the containerPort
    of a same-named port with the same protocol in a container (or a restartable init container,
    i.e. a sidecar). None if the pod has no such port."""
    target = svc_port.get("targetPort", svc_port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    proto = svc_port.get("protocol") or "TCP"
    spec = pod.get("spec") or {}
    sidecars = [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    for c in [*(spec.get("containers") or []), *sidecars]:
        for p in c.get("ports") or []:
            if p.get("name") == target and (p.get("protocol") or "TCP") == proto:
                return p.get("containerPort")
    return None


# --- last-change-trigger-time -------------------------------------------------------------------


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def format_time(t: datetime) -> str:
    """As Go's RFC3339Nano in UTC: fractional seconds only when there are any."""
    t = t.astimezone(UTC)
    base = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        base += ("." + f"{t.microsecond:06d}").rstrip("0")
    return base + "Z"


class TriggerTimeTracker:
    """kube's TriggerTimeTracker: the time of the earliest change (a pod's Ready transition, the
    service's creation) not yet reflected in the endpoints, for the
    `endpoints.kubernetes.io/last-change-trigger-time` annotation. The first sync of a service
    reports its creation time; a sync with no new change reports None (the annotation is then
    removed). Only the annotation depends on this memory."""

    def __init__(self) -> None:
        self._states: dict[str, tuple[datetime | None, dict[str, datetime]]] = {}

    def compute(self, svc: Obj, pods: list[Obj]) -> datetime | None:
        key = key_of(svc)
        known = key in self._states
        last_svc, last_pods = self._states.get(key, (None, {}))
        earliest: datetime | None = None
        pod_times: dict[str, datetime] = {}
        for pod in pods:
            t = parse_time((ready_condition(pod) or {}).get("lastTransitionTime"))
            if t is None:
                continue
            name = pod["metadata"]["name"]
            pod_times[name] = t
            prev = last_pods.get(name)
            if prev is None or t > prev:
                earliest = t if earliest is None or t < earliest else earliest
        created = parse_time(svc["metadata"].get("creationTimestamp"))
        if created is not None and (last_svc is None or created > last_svc):
            earliest = created if earliest is None or created < earliest else earliest
        self._states[key] = (created, pod_times)
        return created if not known else earliest

    def forget(self, key: str) -> None:
        self._states.pop(key, None)


def namespace_terminating(e: Exception) -> bool:
    """A create refused because its namespace is being deleted: retrying cannot succeed."""
    if getattr(e, "code", None) != 403:
        return False
    causes = ((getattr(e, "details", None) or {}).get("causes")) or []
    return any(c.get("type") == "NamespaceTerminating" for c in causes) or \
        "because it is being terminated" in (getattr(e, "message", "") or "")
