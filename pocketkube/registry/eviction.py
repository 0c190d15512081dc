"""`pods/eviction` (kube's pkg/registry/core/pod/storage/eviction.go): delete a pod only if
its PodDisruptionBudget allows one more disruption, and record the granted disruption in the
budget's `status.disruptedPods` so the disruption controller stops counting the pod healthy.

Pods that are already terminal, still Pending or being deleted are deleted without consulting
any budget, as kube does; a pod covered by more than one budget cannot be evicted.
"""

from __future__ import annotations

import copy
from typing import Any

from pocketkube.api import errors
from pocketkube.api.podutil import is_pod_ready
from pocketkube.api.selectors import (
    FieldSelector,
    LabelSelector,
    selector_from_label_selector,
)
from pocketkube.registry.codec import now_rfc3339
from pocketkube.registry.strategy import Context

Obj = dict[str, Any]
MAX_DISRUPTED_PODS = 2000
RETRIES = 20
VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."


def can_ignore_pdb(pod: Obj) -> bool:
    phase = (pod.get("status") or {}).get("phase")
    return phase in ("Succeeded", "Failed", "Pending") or \
        bool(pod["metadata"].get("deletionTimestamp"))


def _budget_error(message: str, cause: str, retry_after: int) -> errors.StatusError:
    e = errors.too_many_requests(message, retry_after)
    details = dict(e.details or {})
    if not retry_after:
        details.pop("retryAfterSeconds", None)
        e.headers = {}
    details["causes"] = [{"reason": "DisruptionBudget", "message": cause}]
    e.details = details
    return e


def still_processing(name: str) -> errors.StatusError:
    return _budget_error(VIOLATION, f"The disruption budget {name} is still being processed "
                         "by the server.", 10)


def check_and_decrement(pdb: Obj, pod_name: str, dry_run: bool) -> Obj:
    """The budget with one disruption taken (raises when none is allowed)."""
    meta, status = pdb["metadata"], dict(pdb.get("status") or {})
    name = meta["name"]
    if int(status.get("observedGeneration") or 0) < int(meta.get("generation") or 1):
        raise still_processing(name)
    allowed = int(status.get("disruptionsAllowed") or 0)
    if allowed < 0:
        raise errors.forbidden(f'poddisruptionbudget.policy "{name}" is forbidden: pdb '
                               "disruptions allowed is negative")
    if len(status.get("disruptedPods") or {}) > MAX_DISRUPTED_PODS:
        raise errors.forbidden(f'poddisruptionbudget.policy "{name}" is forbidden: '
                               "DisruptedPods map too big - too many evictions not confirmed "
                               "by PDB controller")
    if allowed == 0:
        raise _budget_error(VIOLATION, f"The disruption budget {name} needs "
                            f"{status.get('desiredHealthy', 0)} healthy pods and has "
                            f"{status.get('currentHealthy', 0)} currently", 0)
    status["disruptionsAllowed"] = allowed - 1
    if allowed - 1 == 0:
        conds = [c for c in status.get("conditions") or [] if c.get("type") != "DisruptionAllowed"]
        conds.append({"type": "DisruptionAllowed", "status": "False",
                      "reason": "InsufficientPods", "message": "",
                      "lastTransitionTime": now_rfc3339()})
        status["conditions"] = conds
    if not dry_run:
        status["disruptedPods"] = {**(status.get("disruptedPods") or {}),
                                   pod_name: now_rfc3339()}
    return {**pdb, "status": status}


async def evict(registry: Any, namespace: str, name: str, body: Obj, ctx: Context) -> None:
    """Evict pod `namespace/name` as the Eviction `body` asks; raises StatusError."""
    body_name = (body.get("metadata") or {}).get("name")
    if body_name and body_name != name:
        raise errors.bad_request("name in URL does not match name in Eviction object")
    options: Obj = copy.deepcopy(body.get("deleteOptions") or {})
    pods = registry.store("", "pods")
    pod = await pods.get(namespace, name)
    if can_ignore_pdb(pod):
        if _enforce_rv(pod) and not _rv_set(options):
            options.setdefault("preconditions", {})["resourceVersion"] = \
                pod["metadata"]["resourceVersion"]
        await pods.delete(namespace, name, options, ctx)
        return
    budgets = await _budgets_for(registry, pod)
    guard_rv = False
    if len(budgets) > 1:
        raise errors.StatusError(500, "InternalError", "This pod has more than one "
                                 "PodDisruptionBudget, which the eviction subresource does not "
                                 "support.")
    if budgets:
        pdb = budgets[0]
        st = pdb.get("status") or {}
        policy = (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy") or "IfHealthyBudget"
        unready = not is_pod_ready(pod)
        if unready and (policy == "AlwaysAllow" or (
                int(st.get("currentHealthy") or 0) >= int(st.get("desiredHealthy") or 0) > 0)):
            guard_rv = True  # an unready pod is no disruption; only make sure it stays unready
        else:
            await _take_disruption(registry, pdb, name, ctx)
    if guard_rv and not _rv_set(options):
        options.setdefault("preconditions", {})["resourceVersion"] = \
            pod["metadata"]["resourceVersion"]
    try:
        await pods.delete(namespace, name, options, ctx)
    except errors.StatusError as e:
        if e.code == 409 and guard_rv and budgets:
            raise still_processing(budgets[0]["metadata"]["name"]) from None
        raise


def _rv_set(options: Obj) -> bool:
    return bool((options.get("preconditions") or {}).get("resourceVersion"))


def _enforce_rv(pod: Obj) -> bool:
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


async def _budgets_for(registry: Any, pod: Obj) -> list[Obj]:
    store = registry.store("policy", "poddisruptionbudgets")
    ns = pod["metadata"]["namespace"]
    items, _, _ = await store.list(ns, LabelSelector([]), FieldSelector([]))
    labels = pod["metadata"].get("labels") or {}
    found = []
    for pdb in items:
        sel_spec = (pdb.get("spec") or {}).get("selector")
        if sel_spec is None:
            continue
        try:
            sel = selector_from_label_selector(sel_spec)
        except errors.StatusError:
            continue
        if sel.matches(labels):
            found.append(pdb)
    return found


async def _take_disruption(registry: Any, pdb: Obj, pod_name: str, ctx: Context) -> None:
    store = registry.store("policy", "poddisruptionbudgets")
    meta = pdb["metadata"]

    async def try_update(cur: Obj | None) -> Obj | None:
        assert cur is not None
        new = check_and_decrement(cur, pod_name, ctx.dry_run)
        return None if ctx.dry_run else new

    await store.guaranteed_update(meta["namespace"], meta["name"], try_update,
                                  Context(dry_run=ctx.dry_run))
