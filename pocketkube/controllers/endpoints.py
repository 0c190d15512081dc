"""The Endpoints controller (kube's `pkg/controller/endpoint`): for every Service with a selector,
an Endpoints object of the same name listing the selected pods' addresses, ready ones under
`addresses` and the rest under `notReadyAddresses`, grouped into subsets by the ports they
serve. Services without a selector are left alone (their Endpoints are the user's), and so are
ExternalName services; the Endpoints of a deleted Service are deleted.

The subsets are built and packed here (kube's RepackSubsets) so that equal contents always
give equal objects and an unchanged service costs no write.
"""

from __future__ import annotations

import copy
import json
import math
from datetime import datetime
from typing import Any

from pocketkube.api.errors import StatusError
from pocketkube.client.events import EventRecorder
from pocketkube.client.rest import resource
from pocketkube.controllers import endpoint_util as eu
from pocketkube.controllers.base import Controller, InformerFactory, split_key

Obj = dict[str, Any]

SERVICES = resource("", "services")
PODS = resource("", "pods")
ENDPOINTS = resource("", "endpoints")
MAX_CAPACITY = 1000
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
LEADER = "control-plane.alpha.kubernetes.io/leader"
_NO_PORT = ("", -1, "", "")  # stands for "no ports" (headless services without any)


# --- the desired subsets ----------------------------------------------------------------------


def endpoint_address(svc: Obj, pod: Obj) -> Obj | None:
    """The pod's address of the service's (first) IP family; None if it has none."""
    spec = svc.get("spec") or {}
    families = spec.get("ipFamilies") or []
    if families:
        v6 = families[0] == "IPv6"
    elif eu.service_ip_set(svc):
        v6 = eu.is_ipv6(spec["clusterIP"])
    else:
        v6 = eu.is_ipv6((pod.get("status") or {}).get("podIP") or "")
    ip = next((ip for ip in eu.pod_ips(pod) if eu.is_ipv6(ip) == v6), None)
    if ip is None:
        return None
    meta = pod["metadata"]
    addr: Obj = {"ip": ip}
    if eu.should_set_hostname(pod, svc):
        addr["hostname"] = pod["spec"]["hostname"]
    if (pod.get("spec") or {}).get("nodeName"):
        addr["nodeName"] = pod["spec"]["nodeName"]
    addr["targetRef"] = {"kind": "Pod", "namespace": meta.get("namespace"),
                         "name": meta["name"], "uid": meta.get("uid")}
    return addr


def endpoint_port(svc_port: Obj, number: int) -> Obj:
    port: Obj = {"port": number, "protocol": svc_port.get("protocol") or "TCP"}
    if svc_port.get("name"):
        port["name"] = svc_port["name"]
    if svc_port.get("appProtocol"):
        port["appProtocol"] = svc_port["appProtocol"]
    return port


def _port_key(p: Obj) -> tuple[str, int, str, str]:
    return (p.get("name", ""), p["port"], p.get("protocol", ""), p.get("appProtocol", ""))


def _addr_key(a: Obj) -> tuple[str, str]:
    return (a["ip"], (a.get("targetRef") or {}).get("uid") or "")


def compute_subsets(svc: Obj, pods: list[Obj]) -> list[Obj]:
    """The packed subsets for `svc` given the pods its selector matches."""
    spec = svc.get("spec") or {}
    publish = bool(spec.get("publishNotReadyAddresses"))
    ports = spec.get("ports") or []
    entries: list[tuple[Obj, Obj | None, bool]] = []
    for pod in pods:
        if not eu.should_be_in_endpoints(pod, publish):
            continue
        addr = endpoint_address(svc, pod)
        if addr is None:
            continue
        ready = publish or eu.pod_ready(pod)
        if not ports:
            if spec.get("clusterIP") == "None":
                entries.append((addr, None, ready))
            continue
        for sp in ports:
            number = eu.find_port(pod, sp)
            if number is not None:
                entries.append((addr, endpoint_port(sp, number), ready))
    return repack(entries)


def repack(entries: list[tuple[Obj, Obj | None, bool]]) -> list[Obj]:
    """Group (address, port, ready) triples into the canonical subsets: one per set of
    addresses serving the same ports; an address not ready on a port is not ready there."""
    by_port: dict[tuple[str, int, str, str], dict[tuple[str, str], tuple[Obj, bool]]] = {}
    ports: dict[tuple[str, int, str, str], Obj] = {}
    for addr, port, ready in entries:
        pk = _port_key(port) if port is not None else _NO_PORT
        if port is not None:
            ports[pk] = port
        addrs = by_port.setdefault(pk, {})
        ak = _addr_key(addr)
        prev = addrs.get(ak)
        addrs[ak] = (addr, ready and (prev is None or prev[1]))
    groups: dict[frozenset[tuple[tuple[str, str], bool]], list[tuple[str, int, str, str]]] = {}
    members: dict[frozenset[tuple[tuple[str, str], bool]], dict[tuple[str, str], tuple]] = {}
    for pk, addrs in by_port.items():
        sig = frozenset((ak, r) for ak, (_, r) in addrs.items())
        groups.setdefault(sig, []).append(pk)
        members[sig] = addrs
    subsets = []
    for sig, pks in groups.items():
        addrs = sorted(members[sig].items())
        subset: Obj = {}
        ready = [a for _, (a, r) in addrs if r]
        not_ready = [a for _, (a, r) in addrs if not r]
        if ready:
            subset["addresses"] = ready
        if not_ready:
            subset["notReadyAddresses"] = not_ready
        real = sorted(pk for pk in pks if pk != _NO_PORT)
        if real:
            subset["ports"] = [ports[pk] for pk in real]
        subsets.append(subset)
    return sorted(subsets, key=lambda s: json.dumps(s, sort_keys=True))


def count(subsets: list[Obj]) -> int:
    return sum(len(s.get("addresses") or []) + len(s.get("notReadyAddresses") or [])
               for s in subsets)


def truncate(subsets: list[Obj]) -> bool:
    """Cut the subsets down to MAX_CAPACITY addresses in place, ready ones first, each subset
    keeping its share; whether anything was cut."""
    total_ready = sum(len(s.get("addresses") or []) for s in subsets)
    total_not = sum(len(s.get("notReadyAddresses") or []) for s in subsets)
    if total_ready + total_not <= MAX_CAPACITY:
        return False
    cut_ready = total_ready > MAX_CAPACITY
    limit = MAX_CAPACITY if cut_ready else MAX_CAPACITY - total_ready
    total = total_ready if cut_ready else total_not
    room = limit
    field = "addresses" if cut_ready else "notReadyAddresses"
    for s in subsets:
        have = s.get(field) or []
        take = min(math.ceil(len(have) / total * limit), room)
        kept = have[:take]
        if kept:
            s[field] = kept
        else:
            s.pop(field, None)
        if cut_ready:
            s.pop("notReadyAddresses", None)
        room -= len(kept)
    return True


def _without_rv(subsets: list[Obj]) -> list[Obj]:
    out = copy.deepcopy(subsets)
    for s in out:
        for field in ("addresses", "notReadyAddresses"):
            for a in s.get(field) or []:
                (a.get("targetRef") or {}).pop("resourceVersion", None)
    return out


def endpoints_to_write(svc: Obj, subsets: list[Obj], current: Obj | None,
                       trigger: datetime | None) -> Obj | None:
    """The Endpoints object to create or update for `svc`, or None if `current` is right."""
    labels = dict(svc["metadata"].get("labels") or {})
    if current is not None:
        cur_labels = {k: v for k, v in (current["metadata"].get("labels") or {}).items()
                      if k != eu.HEADLESS}
        cur_subsets = current.get("subsets") or []
        annotations = current["metadata"].get("annotations") or {}
        capacity_ok = count(cur_subsets) <= MAX_CAPACITY and OVER_CAPACITY not in annotations
        if _without_rv(cur_subsets) == subsets and cur_labels == labels and capacity_ok:
            return None
        new = copy.deepcopy(current)
    else:
        new = {"apiVersion": "v1", "kind": "Endpoints",
               "metadata": {"name": svc["metadata"]["name"],
                            "namespace": svc["metadata"].get("namespace")}}
    meta = new["metadata"]
    new["subsets"] = copy.deepcopy(subsets)
    annotations = dict(meta.get("annotations") or {})
    if trigger is not None:
        annotations[eu.TRIGGER_TIME] = eu.format_time(trigger)
    else:
        annotations.pop(eu.TRIGGER_TIME, None)
    if truncate(new["subsets"]):
        annotations[OVER_CAPACITY] = "truncated"
    else:
        annotations.pop(OVER_CAPACITY, None)
    if not eu.service_ip_set(svc):
        labels[eu.HEADLESS] = ""
    meta["labels"], meta["annotations"] = labels, annotations
    # Empty fields are left out, as kube's omitempty serialization leaves them out.
    for obj, field in ((meta, "labels"), (meta, "annotations"), (new, "subsets")):
        if not obj[field]:
            del obj[field]
    return new


# --- the controller ---------------------------------------------------------------------------


class EndpointsController(Controller):
    name = "endpoint"

    def __init__(self, client: Any, informers: InformerFactory, clock: Any = None,
                 recorder: EventRecorder | None = None) -> None:
        super().__init__(client, informers, clock)
        self.services = informers.informer(SERVICES)
        self.pods = informers.informer(PODS)
        self.endpoints = informers.informer(ENDPOINTS)
        eu.index_namespaces(self.services, self.pods)
        self.recorder = recorder or EventRecorder(client, "endpoint-controller")
        self.triggers = eu.TriggerTimeTracker()
        self.services.on(add=self.enqueue, update=lambda old, new: self.enqueue(new),
                         delete=self.enqueue)
        self.pods.on(add=self._pod_event, delete=self._pod_event,
                     update=lambda old, new: self._enqueue_all(
                         eu.services_to_update(self.services, old, new)))
        self.endpoints.on(delete=self.enqueue)

    def _pod_event(self, pod: Obj) -> None:
        self._enqueue_all(eu.services_for_pod(self.services, pod))

    def _enqueue_all(self, keys: set[str]) -> None:
        for key in keys:
            self.queue.add(key)

    async def run(self) -> None:
        # Endpoints left behind by services deleted while no controller ran (the caches are
        # synced by now); leader-election records have no service and are not ours to remove.
        for ep in self.endpoints.list():
            if LEADER not in (ep["metadata"].get("annotations") or {}):
                self.enqueue(ep)
        await super().run()

    async def sync(self, key: str) -> None:
        ns, name = split_key(key)
        svc = self.services.get(key)
        if svc is None:
            try:
                await self.client.delete(ENDPOINTS, name, ns)
            except StatusError as e:
                if e.code != 404:
                    raise
            self.triggers.forget(key)
            return
        if not eu.handled(svc):
            return
        pods = eu.selected_pods(self.pods, svc)
        # Computed on every sync, so the tracker sees each change once even if nothing is written.
        trigger = self.triggers.compute(svc, pods)
        current = self.endpoints.get(key)
        new = endpoints_to_write(svc, compute_subsets(svc, pods), current, trigger)
        if new is None:
            return
        try:
            if current is None:
                await self.client.create(ENDPOINTS, new, ns)
            else:
                await self.client.update(ENDPOINTS, new)
        except StatusError as e:
            if current is None and eu.namespace_terminating(e):
                return
            if e.code == 409:
                raise  # the cache was behind: retry from a fresher one
            if current is None:
                self.recorder.record(new, "Warning", "FailedToCreateEndpoint",
                                     f"Failed to create endpoint for service {ns}/{name}: "
                                     f"{e.message}")
            else:
                self.recorder.record(new, "Warning", "FailedToUpdateEndpoint",
                                     f"Failed to update endpoint {ns}/{name}: {e.message}")
            raise
