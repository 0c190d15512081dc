"""What the scheduler writes to the API: bindings, the PodScheduled condition and
nominatedNodeName of pods it could not place, and the eviction of preemption victims — with
kube-scheduler's exact condition reasons and messages.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from pocketkube.api.errors import StatusError
from pocketkube.client.rest import ApiClient, resource

log = logging.getLogger("pocketkube.scheduler")
PODS = resource("", "pods")
Obj = dict[str, Any]
SCHEDULER_NAME = "default-scheduler"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def bind(client: ApiClient, pod: Obj, node: str) -> None:
    meta = pod["metadata"]
    body = {"apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": meta["name"], "namespace": meta.get("namespace"),
                         "uid": meta.get("uid")},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
    await client.create(PODS, body, meta.get("namespace"), subresource="binding",
                        name=meta["name"])


def condition_patch(pod: Obj, condition: Obj, nominated: str | None) -> Obj | None:
    """The status patch that sets `condition` (and nominatedNodeName, unless None), or None
    when the pod already shows exactly that (kube's updatePod skips no-op writes)."""
    status = pod.get("status") or {}
    cur = next((c for c in status.get("conditions") or []
                if c.get("type") == condition["type"]), None)
    same = cur is not None and all(cur.get(k) == condition.get(k)
                                   for k in ("status", "reason", "message"))
    nominated_same = nominated is None or (status.get("nominatedNodeName") or "") == nominated
    if same and nominated_same:
        return None
    cond = dict(condition, lastProbeTime=None)
    cond["lastTransitionTime"] = cur["lastTransitionTime"] if (
        cur is not None and cur.get("status") == condition["status"]
        and cur.get("lastTransitionTime")) else now()
    patch: Obj = {"status": {"conditions": [cond]}}
    if not nominated_same:
        patch["status"]["nominatedNodeName"] = nominated or None
    return patch


async def update_pod_status(client: ApiClient, pod: Obj, condition: Obj,
                            nominated: str | None) -> None:
    patch = condition_patch(pod, condition, nominated)
    if patch is None:
        return
    meta = pod["metadata"]
    try:
        await client.patch(PODS, meta["name"], patch, meta.get("namespace"),
                           patch_type="strategic", subresource="status")
    except StatusError as e:
        if e.code != 404:
            raise


async def clear_nominated(client: ApiClient, pod: Obj) -> None:
    meta = pod["metadata"]
    try:
        await client.patch(PODS, meta["name"], {"status": {"nominatedNodeName": None}},
                           meta.get("namespace"), patch_type="strategic", subresource="status")
    except StatusError as e:
        if e.code != 404:
            raise


async def evict_victim(client: ApiClient, victim: Obj, scheduler_name: str) -> bool:
    """Mark the victim with the DisruptionTarget condition, then delete it (its own grace
    period). False if it was already gone."""
    meta = victim["metadata"]
    ns, name = meta.get("namespace"), meta["name"]
    condition = {"type": "DisruptionTarget", "status": "True",
                 "reason": "PreemptionByScheduler",
                 "message": f"{scheduler_name}: preempting to accommodate a higher priority pod"}
    try:
        patch = condition_patch(victim, condition, None)
        if patch is not None:
            await client.patch(PODS, name, patch, ns, patch_type="strategic",
                               subresource="status")
        await client.delete(PODS, name, ns)
    except StatusError as e:
        if e.code == 404:
            return False
        raise
    return True
