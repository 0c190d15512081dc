"""The EndpointSlice controller (kube's `pkg/controller/endpointslice` and the reconciler in
`k8s.io/endpointslice`): for every Service with a selector, `discovery.k8s.io/v1`
EndpointSlices named `<service>-<suffix>`, owned by the Service, holding at most 100 endpoints
each, one group of slices per set of resolved ports and per address type. Terminating pods are
kept (ready false, serving as their readiness says), so consumers can drain them.

Updates keep churn low as kube's reconciler does: endpoints stay in the slice they are in, new
ones first fill slices that change anyway, then the slice that would end up closest to full,
and only then a new slice; a slice that would be deleted while another is created is reused.
A Service with nothing to serve keeps one empty placeholder slice.

Writes are remembered by resourceVersion until the informer shows them, and a sync whose cache
is older than its own writes waits (kube's EndpointSliceTracker): a slow cache must never make
the controller create the same slice twice.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pocketkube.api.errors import StatusError
from pocketkube.client.events import EventRecorder
from pocketkube.client.rest import resource
from pocketkube.controllers import endpoint_util as eu
from pocketkube.controllers.base import Controller, InformerFactory, split_key
from pocketkube.controllers.endpointslice_util import (
    MANAGED_BY,
    SERVICE_NAME,
    SliceTracker,
    address_types,
    endpoint_key,
    endpoints_equal,
    new_slice,
    owned_by,
    pod_to_endpoint,
    port_map_key,
    slice_labels,
    slice_ports,
)

Obj = dict[str, Any]

SERVICES = resource("", "services")
PODS = resource("", "pods")
NODES = resource("", "nodes")
SLICES = resource("discovery.k8s.io", "endpointslices")
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
MAX_ENDPOINTS = 100
SERVICE_INDEX = "endpointslice-service"
STALE_RETRY = 0.1  # seconds


@dataclass
class Plan:
    create: list[Obj] = field(default_factory=list)
    update: list[Obj] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def reconcile(svc: Obj, pods: list[Obj], node: Callable[[str], Obj | None],
              existing: list[Obj], max_endpoints: int = MAX_ENDPOINTS) -> Plan:
    """The slice writes that make `existing` (this controller's slices for `svc`) represent
    `pods`; `node(name)` looks a node up. `errors` names pods skipped for want of their node."""
    plan = Plan()
    types = address_types(svc)
    by_type: dict[str, list[Obj]] = {}
    for s in existing:
        if s.get("addressType") in types:
            by_type.setdefault(s["addressType"], []).append(s)
        else:
            plan.delete.append(s)
    for at in types:
        _reconcile_type(plan, svc, pods, node, by_type.get(at, []), at, max_endpoints)
    return plan


def _reconcile_type(plan: Plan, svc: Obj, pods: list[Obj], node: Callable[[str], Obj | None],
                    existing: list[Obj], at: str, max_endpoints: int) -> None:
    deletes: list[Obj] = []
    existing_by_ports: dict[tuple, list[Obj]] = {}
    for s in existing:
        if owned_by(s, svc):
            existing_by_ports.setdefault(port_map_key(s.get("ports") or []), []).append(s)
        else:
            deletes.append(s)
    publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    desired: dict[tuple, dict[tuple, Obj]] = {}
    desired_ports: dict[tuple, list[Obj]] = {}
    for pod in pods:
        if not eu.should_be_in_endpoints(pod, True):
            continue
        ports = slice_ports(svc, pod)
        pm = port_map_key(ports)
        want = desired.setdefault(pm, {})
        desired_ports.setdefault(pm, ports)
        node_name = (pod.get("spec") or {}).get("nodeName") or ""
        n = node(node_name) if node_name else None
        if n is None and not publish:
            # Left out until its node shows up; the sync fails so that it is retried.
            plan.errors.append(f"skipping Pod {pod['metadata']['name']} for Service "
                               f"{svc['metadata'].get('namespace')}/{svc['metadata']['name']}: "
                               f"Node {node_name} Not Found")
            continue
        ep = pod_to_endpoint(pod, n, svc, at)
        if ep["addresses"]:
            want[endpoint_key(ep)] = ep
    creates: list[Obj] = []
    updates: list[Obj] = []
    for pm, want in desired.items():
        c, u, d = _reconcile_ports(svc, existing_by_ports.get(pm, []), want, desired_ports[pm],
                                   at, max_endpoints)
        creates += c
        updates += u
        deletes += d
    for pm, slices in existing_by_ports.items():
        if pm not in desired:
            deletes += slices
    if len(existing) == len(deletes) and not creates:
        placeholder = new_slice(svc, [], at, CONTROLLER_NAME)
        if len(deletes) == 1 and _same_placeholder(deletes[0], placeholder):
            deletes = []
        else:
            creates.append(placeholder)
    # A slice about to be deleted while another is created is reused instead.
    i = 0
    while i < len(deletes) and creates:
        old = deletes[i]
        if old.get("addressType") == at and owned_by(old, svc):
            reused = creates.pop()
            reused["metadata"]["name"] = old["metadata"]["name"]
            reused["metadata"]["resourceVersion"] = old["metadata"].get("resourceVersion")
            reused["metadata"].pop("generateName", None)
            updates.append(reused)
            deletes.pop(i)
        else:
            i += 1
    plan.create += creates
    plan.update += updates
    plan.delete += deletes


def _same_placeholder(s: Obj, placeholder: Obj) -> bool:
    return not s.get("endpoints") and not s.get("ports") and \
        s.get("addressType") == placeholder["addressType"] and \
        s["metadata"].get("namespace") == placeholder["metadata"]["namespace"] and \
        (s["metadata"].get("labels") or {}) == placeholder["metadata"]["labels"]


def _reconcile_ports(svc: Obj, existing: list[Obj], desired: dict[tuple, Obj], ports: list[Obj],
                     at: str, max_endpoints: int) -> tuple[list[Obj], list[Obj], list[Obj]]:
    """Creates, updates and deletes for the slices of one set of ports (`desired` is consumed)."""
    by_name: dict[str, Obj] = {}
    unchanged: list[str] = []
    to_update: list[str] = []
    to_delete: list[str] = []
    # 1. Keep the endpoints still wanted where they are, refreshed; drop the others.
    for s in existing:
        name = s["metadata"]["name"]
        by_name[name] = s
        kept, changed = [], False
        for ep in s.get("endpoints") or []:
            got = desired.pop(endpoint_key(ep), None)
            if got is not None:
                kept.append(got)
                changed = changed or not endpoints_equal(got, ep)
        labels, labels_changed = slice_labels(s, svc, CONTROLLER_NAME)
        if changed or len(kept) != len(s.get("endpoints") or []):
            if not kept:
                to_delete.append(name)
                continue
            by_name[name] = _with(s, kept, labels)
            to_update.append(name)
        elif labels_changed:
            by_name[name] = _with(s, kept, labels)
            to_update.append(name)
        else:
            unchanged.append(name)
    queue = list(desired.values())
    # 2. Fill the slices that are written anyway, fullest first.
    if queue and to_update:
        for s in sorted((by_name[n] for n in to_update), key=lambda s: -len(s["endpoints"])):
            room = max_endpoints - len(s["endpoints"])
            s["endpoints"] += queue[:max(room, 0)]
            queue = queue[max(room, 0):]
    # 3. Then the unchanged slice that would end up closest to full, else new slices.
    creates: list[Obj] = []
    while queue:
        target = None
        if len(queue) < max_endpoints and unchanged:
            target = _slice_to_fill([by_name[n] for n in unchanged], len(queue), max_endpoints)
        if target is None:
            target = new_slice(svc, ports, at, CONTROLLER_NAME)
        else:
            target = by_name[target["metadata"]["name"]] = copy.deepcopy(target)
        room = max_endpoints - len(target["endpoints"])
        target["endpoints"] += queue[:room]
        queue = queue[room:]
        name = target["metadata"].get("name")
        if name:
            to_update.append(name)
            unchanged.remove(name)
        else:
            creates.append(target)
    return creates, [by_name[n] for n in to_update], [by_name[n] for n in to_delete]


def _with(s: Obj, endpoints: list[Obj], labels: dict[str, str]) -> Obj:
    out = copy.deepcopy(s)
    out["endpoints"] = endpoints
    out["metadata"]["labels"] = labels
    return out


def _slice_to_fill(slices: list[Obj], count: int, max_endpoints: int) -> Obj | None:
    best, best_gap = None, max_endpoints
    for s in slices:
        gap = max_endpoints - (count + len(s.get("endpoints") or []))
        if 0 <= gap < best_gap:
            best, best_gap = s, gap
            if gap == 0:
                break
    return best


def _service_of(s: Obj) -> list[str]:
    labels = s["metadata"].get("labels") or {}
    if labels.get(MANAGED_BY) != CONTROLLER_NAME or not labels.get(SERVICE_NAME):
        return []
    return [f"{s['metadata'].get('namespace')}/{labels[SERVICE_NAME]}"]


class EndpointSliceController(Controller):
    name = "endpointslice"

    def __init__(self, client: Any, informers: InformerFactory, clock: Any = None,
                 recorder: EventRecorder | None = None,
                 max_endpoints: int = MAX_ENDPOINTS) -> None:
        super().__init__(client, informers, clock)
        self.services = informers.informer(SERVICES)
        self.pods = informers.informer(PODS)
        self.nodes = informers.informer(NODES)
        self.slices = informers.informer(SLICES)
        eu.index_namespaces(self.services, self.pods)
        self.slices.add_index(SERVICE_INDEX, _service_of)
        self.recorder = recorder or EventRecorder(client, "endpoint-slice-controller")
        self.max_endpoints = max_endpoints
        self.triggers = eu.TriggerTimeTracker()
        self.tracker = SliceTracker()
        self.services.on(add=self.enqueue, update=lambda old, new: self.enqueue(new),
                         delete=self.enqueue)
        self.pods.on(add=self._pod_event, delete=self._pod_event,
                     update=lambda old, new: self._enqueue_all(
                         eu.services_to_update(self.services, old, new)))
        self.slices.on(add=self._slice_changed, update=self._slice_updated,
                       delete=self._slice_deleted)

    # -- handlers ------------------------------------------------------------------------------
    def _pod_event(self, pod: Obj) -> None:
        self._enqueue_all(eu.services_for_pod(self.services, pod))

    def _enqueue_all(self, keys: set[str] | list[str]) -> None:
        for key in keys:
            self.queue.add(key)

    def _slice_changed(self, s: Obj) -> None:
        for key in _service_of(s):
            if self.tracker.observed(key, s):
                self.queue.add(key)

    def _slice_updated(self, old: Obj, new: Obj) -> None:
        if _service_of(old) != _service_of(new):  # labels moved it to or from us
            self._enqueue_all(set(_service_of(old) + _service_of(new)))
        self._slice_changed(new)

    def _slice_deleted(self, s: Obj) -> None:
        for key in _service_of(s):
            if self.tracker.observed_deletion(key, s["metadata"]["name"]):
                self.queue.add(key)

    # -- sync ----------------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        ns, name = split_key(key)
        svc = self.services.get(key)
        existing = [s for s in self.slices.by_index(SERVICE_INDEX, key)
                    if not s["metadata"].get("deletionTimestamp")]
        if svc is None:
            # Owned slices go with their Service (as the garbage collector removes them).
            for s in existing:
                if any(r.get("kind") == "Service" and r.get("name") == name
                       for r in s["metadata"].get("ownerReferences") or []):
                    await self._delete(key, s)
            self.triggers.forget(key)
            self.tracker.forget(key)
            return
        if not eu.handled(svc):
            return
        if self.tracker.stale(key, existing):
            # The cache has not caught up with this controller's last writes: acting on it
            # could create a slice twice. The events of those writes do not queue the
            # service, so look again shortly.
            self.queue.add_after(key, STALE_RETRY)
            return
        pods = eu.selected_pods(self.pods, svc)
        trigger = self.triggers.compute(svc, pods)
        plan = reconcile(svc, pods, lambda n: self.nodes.get(n), existing, self.max_endpoints)
        try:
            await self._apply(key, svc, plan, trigger)
        except StatusError as e:
            if e.code != 409:
                self._failed(svc, e.message)
            raise
        if plan.errors:
            message = plan.errors[0] if len(plan.errors) == 1 else \
                "[" + ", ".join(plan.errors) + "]"
            self._failed(svc, message)
            raise RuntimeError(message)

    def _failed(self, svc: Obj, message: str) -> None:
        meta = svc["metadata"]
        self.recorder.record(svc, "Warning", "FailedToUpdateEndpointSlices",
                             f"Error updating Endpoint Slices for Service "
                             f"{meta.get('namespace')}/{meta['name']}: {message}")

    async def _apply(self, key: str, svc: Obj, plan: Plan, trigger: Any) -> None:
        ns = svc["metadata"].get("namespace")
        # No new slices for a Service being deleted: they would race the garbage collector.
        if not svc["metadata"].get("deletionTimestamp"):
            for s in plan.create:
                _annotate(s, trigger)
                try:
                    created = await self.client.create(SLICES, s, ns)
                except StatusError as e:
                    if eu.namespace_terminating(e):
                        return
                    raise
                self.tracker.written(key, created)
        for s in plan.update:
            _annotate(s, trigger)
            self.tracker.written(key, await self.client.update(SLICES, s))
        for s in plan.delete:
            await self._delete(key, s)

    async def _delete(self, key: str, s: Obj) -> None:
        try:
            await self.client.delete(SLICES, s["metadata"]["name"], s["metadata"].get("namespace"))
        except StatusError as e:
            if e.code != 404:
                raise
            return
        self.tracker.deleted(key, s["metadata"]["name"])


def _annotate(s: Obj, trigger: Any) -> None:
    ann = s["metadata"].setdefault("annotations", {})
    if trigger is not None:
        ann[eu.TRIGGER_TIME] = eu.format_time(trigger)
    else:
        ann.pop(eu.TRIGGER_TIME, None)
    if not ann:
        del s["metadata"]["annotations"]

