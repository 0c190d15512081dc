"""Informer handlers (kube's `eventhandlers.go`): unscheduled pods feed the queue, assigned
pods and nodes feed the cache, and each change that could let a waiting pod fit is turned into
a cluster event that moves the interested unschedulable pods back to the queue.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pocketkube.scheduler.scheduler import Scheduler

log = logging.getLogger("pocketkube.scheduler")
Obj = dict[str, Any]


def node_events(old: Obj, new: Obj) -> list[str]:
    """The specific Node/Update* events an update amounts to."""
    events = []
    om, nm = old.get("metadata") or {}, new.get("metadata") or {}
    os_, ns_ = old.get("spec") or {}, new.get("spec") or {}
    ost, nst = old.get("status") or {}, new.get("status") or {}
    if om.get("labels") != nm.get("labels"):
        events.append("Node/UpdateLabel")
    if os_.get("taints") != ns_.get("taints") or \
            bool(os_.get("unschedulable")) != bool(ns_.get("unschedulable")):
        events.append("Node/UpdateTaint")
    if ost.get("allocatable") != nst.get("allocatable"):
        events.append("Node/UpdateAllocatable")
    if _conditions(ost) != _conditions(nst):
        events.append("Node/UpdateCondition")
    return events


def _conditions(status: Obj) -> dict[str, str]:
    return {c.get("type", ""): c.get("status", "") for c in status.get("conditions") or []}


class Handlers:
    def __init__(self, sched: Scheduler) -> None:
        self.s = sched

    def responsible(self, pod: Obj) -> bool:
        spec = pod.get("spec") or {}
        return (spec.get("schedulerName") or "default-scheduler") == self.s.scheduler_name \
            and not spec.get("nodeName")

    # -- unscheduled pods ---------------------------------------------------------------------
    def unscheduled_add(self, pod: Obj) -> None:
        if not self.responsible(pod):
            return
        info = self.s.pod_info(pod)
        if self.s.cache.is_assumed(info.uid):
            return
        if pod["metadata"].get("deletionTimestamp"):
            return
        self.s.queue.add(info)

    def unscheduled_update(self, old: Obj, new: Obj) -> None:
        if not self.responsible(new):
            return
        info = self.s.pod_info(new)
        if self.s.cache.is_assumed(info.uid):
            return
        if new["metadata"].get("deletionTimestamp"):
            self.s.queue.delete(info.uid)
            return
        self.s.queue.update(info)

    def unscheduled_delete(self, pod: Obj) -> None:
        self.s.queue.delete(pod["metadata"].get("uid", ""))

    # -- assigned pods --------------------------------------------------------------------------
    def assigned_add(self, pod: Obj) -> None:
        self.s.cache.add_pod(self.s.pod_info(pod))
        self.s.queue.delete_nominated(pod["metadata"].get("uid", ""))
        self.s.queue.move_all("AssignedPod/Add")

    def assigned_update(self, old: Obj, new: Obj) -> None:
        self.s.cache.add_pod(self.s.pod_info(new))
        if (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get(
                "labels") or old.get("spec") != new.get("spec"):
            self.s.queue.move_all("AssignedPod/Update")

    def assigned_delete(self, pod: Obj) -> None:
        self.s.cache.remove_pod(pod["metadata"].get("uid", ""))
        self.s.queue.move_all("AssignedPod/Delete")

    # -- nodes ----------------------------------------------------------------------------------
    def node_add(self, node: Obj) -> None:
        self.s.cache.add_node(node)
        self.s.queue.move_all("Node/Add")

    def node_update(self, old: Obj, new: Obj) -> None:
        self.s.cache.add_node(new)
        for event in node_events(old, new):
            self.s.queue.move_all(event)

    def node_delete(self, node: Obj) -> None:
        self.s.cache.remove_node(node["metadata"]["name"])
        self.s.queue.move_all("Node/Delete")

    # -- priority classes and namespaces ----------------------------------------------------------
    def priority_class_set(self, pc: Obj, _new: Obj | None = None) -> None:
        pc = _new or pc
        self.s.priority_classes[pc["metadata"]["name"]] = pc

    def priority_class_delete(self, pc: Obj) -> None:
        self.s.priority_classes.pop(pc["metadata"]["name"], None)

    def namespace_set(self, ns: Obj, _new: Obj | None = None) -> None:
        ns = _new or ns
        self.s.cache.namespace_labels[ns["metadata"]["name"]] = \
            ns["metadata"].get("labels") or {}

    def namespace_delete(self, ns: Obj) -> None:
        self.s.cache.namespace_labels.pop(ns["metadata"]["name"], None)
