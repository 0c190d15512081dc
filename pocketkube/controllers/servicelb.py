"""ServiceLB: a load balancer for Services of type LoadBalancer with nothing but the nodes
themselves, as k3s's ServiceLB does on bare metal.

A Service that wants a load balancer (type LoadBalancer, spec.loadBalancerClass unset — a class
names some other implementation) gets status.loadBalancer.ingress = the addresses of the nodes
that may carry its traffic: every node kube's service controller would hand a cloud balancer
(NodeReady True, not labelled node.kubernetes.io/exclude-from-external-load-balancers, not
tainted ToBeDeletedByClusterAutoscaler) and, with externalTrafficPolicy Local, only the nodes
holding a ready endpoint. As in k3s the ExternalIPs of those nodes are used if any has one, else
their InternalIPs, grouped by the Service's ipFamilies and sorted. The proxy then opens the
Service's ports on those addresses, so `kubectl get svc` shows them as EXTERNAL-IP.

The lifecycle follows kube's cloud-provider service controller, whose events clients know: a
Service being ensured gets the service.kubernetes.io/load-balancer-cleanup finalizer and the
events EnsuringLoadBalancer / EnsuredLoadBalancer; one that stops wanting a load balancer (or is
deleted) gets DeletingLoadBalancer / DeletedLoadBalancer, its status cleared and the finalizer
removed. When nodes come and go the addresses are updated with k3s's UpdatedLoadBalancer event
("Updated LoadBalancer with new IPs: [..] -> [..]"), or the warning UnAvailableLoadBalancer when
no node is left.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pocketkube.api.errors import StatusError
from pocketkube.client.events import EventRecorder
from pocketkube.client.informer import key_of
from pocketkube.client.rest import resource
from pocketkube.controllers.base import Controller, InformerFactory, split_key

Obj = dict[str, Any]
SERVICES = resource("", "services")
NODES = resource("", "nodes")
SLICES = resource("discovery.k8s.io", "endpointslices")
FINALIZER = "service.kubernetes.io/load-balancer-cleanup"
EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
TO_BE_DELETED_TAINT = "ToBeDeletedByClusterAutoscaler"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
WRITE_SEEN_TIMEOUT = 30.0  # seconds to wait for the cache to show our own last write


def wants_load_balancer(svc: Obj) -> bool:
    spec = svc.get("spec") or {}
    return spec.get("type") == "LoadBalancer" and not spec.get("loadBalancerClass")


def _ready(node: Obj) -> str:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return str(c.get("status", ""))
    return ""


def eligible(node: Obj) -> bool:
    """kube's getNodeConditionPredicate: which nodes may back a load balancer."""
    if EXCLUDE_LABEL in ((node.get("metadata") or {}).get("labels") or {}):
        return False
    if any(t.get("key") == TO_BE_DELETED_TAINT for t in (node.get("spec") or {}).get("taints")
           or []):
        return False
    conds = (node.get("status") or {}).get("conditions") or []
    return bool(conds) and _ready(node) == "True"


def _family(ip: str) -> str:
    try:
        return "IPv6" if ipaddress.ip_address(ip).version == 6 else "IPv4"
    except ValueError:
        return ""


def ingress_ips(svc: Obj, nodes: list[Obj], local_nodes: set[str] | None = None) -> list[str]:
    """The addresses a Service's load balancer answers on (k3s's podIPs + filterByIPFamily)."""
    external: set[str] = set()
    internal: set[str] = set()
    for node in nodes:
        if not eligible(node):
            continue
        if local_nodes is not None and node["metadata"]["name"] not in local_nodes:
            continue
        for a in (node.get("status") or {}).get("addresses") or []:
            if a.get("type") == "ExternalIP":
                external.add(a.get("address", ""))
            elif a.get("type") == "InternalIP":
                internal.add(a.get("address", ""))
    ips = external or internal
    out: list[str] = []
    for fam in (svc.get("spec") or {}).get("ipFamilies") or ["IPv4"]:
        out.extend(sorted(ip for ip in ips if _family(ip) == fam))
    return out


def ready_endpoint_nodes(slices: list[Obj]) -> set[str]:
    """Nodes with a ready pod endpoint of the Service (externalTrafficPolicy Local)."""
    nodes: set[str] = set()
    for s in slices:
        for ep in s.get("endpoints") or []:
            ref = ep.get("targetRef") or {}
            if ref.get("kind") == "Pod" and (ep.get("conditions") or {}).get("ready") \
                    and ep.get("nodeName"):
                nodes.add(ep["nodeName"])
    return nodes


def ingress_of(svc: Obj) -> list[Obj]:
    return list(((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [])


def _rv(obj: Obj) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def _ip_list(ingress: list[Obj]) -> str:
    """Go's %v of a []string, as k3s prints the old and new addresses."""
    return "[" + " ".join(i.get("ip") or i.get("hostname", "") for i in ingress) + "]"


def _node_view(node: Obj) -> tuple:
    """What about a node changes the load balancers' addresses."""
    meta, spec, status = node.get("metadata") or {}, node.get("spec") or {}, \
        node.get("status") or {}
    return (EXCLUDE_LABEL in (meta.get("labels") or {}), _ready(node),
            bool(status.get("conditions")),
            tuple(sorted(t.get("key", "") for t in spec.get("taints") or [])),
            tuple((a.get("type"), a.get("address")) for a in status.get("addresses") or []))


def _lb_view(svc: Obj) -> tuple:
    """The parts of a Service spec a change of which makes kube ensure its balancer again."""
    spec = svc.get("spec") or {}
    return (wants_load_balancer(svc), repr(spec.get("ports")), spec.get("sessionAffinity"),
            repr(spec.get("sessionAffinityConfig")), spec.get("loadBalancerIP"),
            repr(spec.get("loadBalancerSourceRanges")), repr(spec.get("externalIPs")),
            spec.get("externalTrafficPolicy"), spec.get("healthCheckNodePort"),
            repr((svc.get("metadata") or {}).get("annotations")),
            (svc.get("metadata") or {}).get("uid"))


class ServiceLBController(Controller):
    name = "service-lb-controller"

    def __init__(self, client: Any, informers: InformerFactory, clock: Any = None,
                 recorder: EventRecorder | None = None) -> None:
        super().__init__(client, informers, clock)
        self.recorder = recorder or EventRecorder(client, "service-controller")
        self.services = informers.informer(SERVICES)
        self.nodes = informers.informer(NODES)
        self.slices = informers.informer(SLICES)
        # Services whose spec asked for the balancer to be ensured again since their last
        # sync: only decides which events a sync records, never what it writes.
        self._ensure: set[str] = set()
        # Expectations, as kube's controllers keep them: (uid, resourceVersion, deadline) of
        # our last write to a Service. Until the cache has caught up with it (resourceVersion
        # is the store's global revision) a sync would act on what we already changed.
        self._written: dict[str, tuple[str, int, float]] = {}
        self.services.on(add=self._service_added, update=self._service_updated)
        self.nodes.on(add=lambda n: self._nodes_changed(),
                      update=lambda old, new: self._node_updated(old, new),
                      delete=lambda n: self._nodes_changed())
        self.slices.on(add=self._slice_changed,
                       update=lambda old, new: self._slice_changed(new),
                       delete=self._slice_changed)

    # -- handlers -------------------------------------------------------------------------------
    def _relevant(self, svc: Obj) -> bool:
        return wants_load_balancer(svc) or \
            FINALIZER in ((svc.get("metadata") or {}).get("finalizers") or [])

    def _service_added(self, svc: Obj) -> None:
        if self._relevant(svc):
            self._ensure.add(key_of(svc))
            self.enqueue(svc)

    def _service_updated(self, old: Obj, new: Obj) -> None:
        if not self._relevant(old) and not self._relevant(new):
            return
        if wants_load_balancer(old) != wants_load_balancer(new):
            self.recorder.record(new, "Normal", "Type",
                                 f"{(old.get('spec') or {}).get('type')} -> "
                                 f"{(new.get('spec') or {}).get('type')}")
        if _lb_view(old) != _lb_view(new):
            self._ensure.add(key_of(new))
        self.enqueue(new)

    def _nodes_changed(self) -> None:
        for svc in self.services.list():
            if self._relevant(svc):
                self.enqueue(svc)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if _node_view(old) != _node_view(new):
            self._nodes_changed()

    def _slice_changed(self, s: Obj) -> None:
        name = ((s.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL)
        if not name:
            return
        svc = self.services.get(f"{s['metadata'].get('namespace')}/{name}")
        if svc is not None and wants_load_balancer(svc) and \
                (svc.get("spec") or {}).get("externalTrafficPolicy") == "Local":
            self.enqueue(svc)

    # -- sync -----------------------------------------------------------------------------------
    def desired(self, svc: Obj) -> list[Obj]:
        local: set[str] | None = None
        if (svc.get("spec") or {}).get("externalTrafficPolicy") == "Local":
            ns, name = svc["metadata"].get("namespace"), svc["metadata"]["name"]
            local = ready_endpoint_nodes(
                [s for s in self.slices.list() if s["metadata"].get("namespace") == ns and
                 (s["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL) == name])
        return [{"ip": ip, "ipMode": "VIP"}
                for ip in ingress_ips(svc, self.nodes.list(), local)]

    async def sync(self, key: str) -> None:
        svc = self.services.get(key)
        if svc is None:
            self._ensure.discard(key)
            self._written.pop(key, None)
            return
        meta = svc["metadata"]
        w = self._written.get(key)
        if w is not None:
            uid, rv, deadline = w
            now = self.clock.now()
            if uid == meta.get("uid") and _rv(svc) < rv and now < deadline:
                # The watch event of our write re-queues the key; this is the backstop.
                self.queue.add_after(key, deadline - now)
                return
            del self._written[key]
        if wants_load_balancer(svc) and not meta.get("deletionTimestamp"):
            await self._ensure_lb(key, svc)
        elif FINALIZER in (meta.get("finalizers") or []):
            await self._delete_lb(key, svc)

    async def _ensure_lb(self, key: str, svc: Obj) -> None:
        full = key in self._ensure or FINALIZER not in (svc["metadata"].get("finalizers") or [])
        self._ensure.discard(key)
        try:
            await self._write_lb(key, svc, full)
        except Exception:
            if full:  # the retry ensures again, and says so
                self._ensure.add(key)
            raise

    async def _write_lb(self, key: str, svc: Obj, full: bool) -> None:
        ns, name = split_key(key)
        if full:
            self.recorder.record(svc, "Normal", "EnsuringLoadBalancer", "Ensuring load balancer")
            await self._set_finalizers(svc, add=True)
        want, have = self.desired(svc), ingress_of(svc)
        if not want and (full or want != have):
            self.recorder.record(svc, "Warning", "UnAvailableLoadBalancer",
                                 "There are no available nodes for LoadBalancer")
        if want != have:
            self._wrote(key, await self.client.patch(SERVICES, name, {"status": {
                "loadBalancer": {"ingress": want or None}}}, ns, subresource="status"))
            self.log.info("service %s: load balancer ingress %s", key,
                          [i["ip"] for i in want])
            if not full and want:
                self.recorder.record(svc, "Normal", "UpdatedLoadBalancer",
                                     f"Updated LoadBalancer with new IPs: {_ip_list(have)} -> "
                                     f"{_ip_list(want)}")
        if full:
            self.recorder.record(svc, "Normal", "EnsuredLoadBalancer", "Ensured load balancer")

    async def _delete_lb(self, key: str, svc: Obj) -> None:
        ns, name = split_key(key)
        self._ensure.discard(key)
        had = ingress_of(svc)
        if had:
            self.recorder.record(svc, "Normal", "DeletingLoadBalancer", "Deleting load balancer")
            if not svc["metadata"].get("deletionTimestamp"):
                svc = await self.client.patch(SERVICES, name, {"status": {"loadBalancer": {
                    "ingress": None}}}, ns, subresource="status")
                self._wrote(key, svc)
        await self._set_finalizers(svc, add=False)
        self.recorder.record(svc, "Normal", "DeletedLoadBalancer", "Deleted load balancer")

    async def _set_finalizers(self, svc: Obj, add: bool) -> None:
        meta = svc["metadata"]
        fins = list(meta.get("finalizers") or [])
        if (FINALIZER in fins) == add:
            return
        fins = fins + [FINALIZER] if add else [f for f in fins if f != FINALIZER]
        # The resourceVersion precondition keeps a concurrent finalizer change from being lost.
        patch = {"metadata": {"resourceVersion": meta["resourceVersion"],
                              "finalizers": fins or None}}
        try:
            out = await self.client.patch(SERVICES, meta["name"], patch, meta.get("namespace"))
        except StatusError as e:
            if e.code == 404 and not add:
                return
            raise
        self._wrote(key_of(svc), out)

    def _wrote(self, key: str, obj: Obj) -> None:
        self._written[key] = (obj["metadata"].get("uid", ""), _rv(obj),
                              self.clock.now() + WRITE_SEEN_TIMEOUT)
