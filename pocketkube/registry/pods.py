"""Pods: kube's `pkg/registry/core/pod/strategy.go`.

A new pod starts Pending with its QoS class; the spec is mostly immutable (validation says
which fields may change); deletion is graceful for pods on a node (the node agent finishes it)
and immediate for pods never scheduled or already terminated. Binding and eviction live in
pod_subresources.py.
"""

from __future__ import annotations

from typing import Any

from pocketkube.registry.admission import default_toleration_seconds
from pocketkube.registry.priority import admit_priority
from pocketkube.registry.serviceaccount_admission import admit_service_account
from pocketkube.registry.strategy import Context, Obj, Strategy

DEFAULT_GRACE = 30


def qos_class(spec: dict[str, Any]) -> str:
    """Guaranteed, Burstable or BestEffort (`pkg/apis/core/helper/qos`)."""
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    requests_any = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            requests_any = True
        for r in ("cpu", "memory"):
            if r not in lim or (r in req and str(req[r]) != str(lim[r])):
                guaranteed = False
    if not requests_any:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


class PodStrategy(Strategy):
    def initial_status(self, obj: Obj) -> Obj:
        return {"phase": "Pending", "qosClass": qos_class(obj.get("spec") or {})}

    def prepare_for_create(self, obj: Obj, ctx: Context) -> None:
        super().prepare_for_create(obj, ctx)
        spec = obj.setdefault("spec", {})
        # The deprecated `serviceAccount` is an alias; serviceAccountName wins when both are
        # given. Admission (admit) defaults it for pods that are not mirror pods.
        if not spec.get("serviceAccountName") and spec.get("serviceAccount"):
            spec["serviceAccountName"] = spec["serviceAccount"]
        default_toleration_seconds(obj)

    def prepare_for_update(self, new: Obj, old: Obj, ctx: Context) -> None:
        super().prepare_for_update(new, old, ctx)
        spec = new.get("spec")
        if isinstance(spec, dict) and "serviceAccountName" in (old.get("spec") or {}):
            spec.setdefault("serviceAccountName", old["spec"]["serviceAccountName"])
            spec.setdefault("serviceAccount", old["spec"].get("serviceAccount"))

    def prepare_for_status_update(self, new: Obj, old: Obj, ctx: Context) -> Obj:
        out = super().prepare_for_status_update(new, old, ctx)
        # The node agent reports the node it runs on; nominatedNodeName comes from the
        # scheduler. Neither may move the pod's spec.
        return out

    async def admit(self, obj: Obj, old: Obj | None, ctx: Context) -> None:
        if old is None:
            await admit_service_account(self.registry, obj)
            spec = obj.get("spec")
            if isinstance(spec, dict):
                if spec.get("serviceAccountName"):
                    spec["serviceAccount"] = spec["serviceAccountName"]
                else:
                    spec.pop("serviceAccount", None)
            await admit_priority(self.registry, obj)

    def grace_period(self, obj: Obj, options: Obj) -> int:
        spec = obj.get("spec") or {}
        phase = (obj.get("status") or {}).get("phase")
        grace = options.get("gracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE)
        grace = self.int_or(grace, DEFAULT_GRACE)
        # Never scheduled, or already finished: nothing to stop, delete at once.
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            return 0
        return max(grace, 0)
