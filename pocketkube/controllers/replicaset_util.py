"""Pure functions of the ReplicaSet/ReplicationController controller (kube's
`pkg/controller/replicaset/replica_set_utils.go` and the pod helpers of `controller_utils.go`):
which pods count, when a pod is ready or available, which pods to delete first when scaling
down, and the status a ReplicaSet reports.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pocketkube.api.podutil import is_pod_available, is_pod_ready, parse_time, ready_condition
from pocketkube.api.resources import Resource
from pocketkube.api.selectors import LabelSelector, selector_from_label_selector
from pocketkube.client.rest import resource

Obj = dict[str, Any]

@dataclass(frozen=True)
class SetKind:
    """What differs between ReplicaSets and ReplicationControllers."""

    resource: Resource
    api_version: str
    kind: str
    component: str
    # the pod selector of a set of this kind
    selector: Callable[[Obj], LabelSelector]


REPLICASET = SetKind(resource("apps", "replicasets"), "apps/v1", "ReplicaSet",
                     "replicaset-controller",
                     lambda o: selector_from_label_selector((o.get("spec") or {}).get("selector")))
REPLICATION_CONTROLLER = SetKind(
    resource("", "replicationcontrollers"), "v1", "ReplicationController",
    "replication-controller",
    lambda o: selector_from_label_selector(
        {"matchLabels": (o.get("spec") or {}).get("selector") or {}}))


DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
_PHASE_ORDINAL = {"Pending": 0, "Unknown": 1, "Running": 2}




def format_time(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- pods ------------------------------------------------------------------------------------------
def is_pod_active(pod: Obj) -> bool:
    """Not terminal and not being deleted (FilterActivePods)."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")








def _ready_time(pod: Obj) -> float | None:
    if not is_pod_ready(pod):
        return None
    return parse_time((ready_condition(pod) or {}).get("lastTransitionTime"))


def _max_restarts(pod: Obj) -> tuple[int, int]:
    """(regular containers, restartable init containers): the highest restart count of each."""
    status = pod.get("status") or {}
    regular = max((c.get("restartCount", 0) for c in status.get("containerStatuses") or []),
                  default=0)
    sidecars = {c.get("name") for c in (pod.get("spec") or {}).get("initContainers") or []
                if c.get("restartPolicy") == "Always"}
    sidecar = max((c.get("restartCount", 0) for c in status.get("initContainerStatuses") or []
                   if c.get("name") in sidecars), default=0)
    return regular, sidecar


def _deletion_cost(pod: Obj) -> int:
    raw = ((pod["metadata"].get("annotations")) or {}).get(DELETION_COST)
    try:
        return int(raw) if raw is not None else 0
    except ValueError:
        return 0


def _log_rank(t: float, now: float) -> int:
    d = (now - t) * 1e9  # Go durations are nanoseconds
    return int(math.log2(d)) if d > 0 else -1


def _after_or_zero(t1: float | None, t2: float | None) -> bool:
    if t1 is None or t2 is None:
        return t1 is None
    return t1 > t2


def _newer_first(t1: float | None, t2: float | None, uid1: str, uid2: str,
                 now: float) -> bool | None:
    """Logarithmic comparison of two timestamps (LogarithmicScaleDown, on in 1.32); None when
    equal."""
    if t1 == t2:
        return None
    if t1 is None or t2 is None:
        return _after_or_zero(t1, t2)
    diff = _log_rank(t1, now) - _log_rank(t2, now)
    if diff == 0:
        return uid1 < uid2
    return diff < 0


def pod_less(a: Obj, b: Obj, rank_a: int, rank_b: int, now: float) -> bool:
    """ActivePodsWithRanks.Less: whether `a` should be deleted before `b`."""
    na, nb = (a.get("spec") or {}).get("nodeName", ""), (b.get("spec") or {}).get("nodeName", "")
    if na != nb and (not na or not nb):
        return not na
    pa = _PHASE_ORDINAL.get((a.get("status") or {}).get("phase", ""), 0)
    pb = _PHASE_ORDINAL.get((b.get("status") or {}).get("phase", ""), 0)
    if pa != pb:
        return pa < pb
    ra, rb = is_pod_ready(a), is_pod_ready(b)
    if ra != rb:
        return not ra
    ca, cb = _deletion_cost(a), _deletion_cost(b)
    if ca != cb:
        return ca < cb
    if rank_a != rank_b:
        return rank_a > rank_b
    ua, ub = a["metadata"].get("uid", ""), b["metadata"].get("uid", "")
    if ra and rb:
        res = _newer_first(_ready_time(a), _ready_time(b), ua, ub, now)
        if res is not None:
            return res
    (ga, sa), (gb, sb) = _max_restarts(a), _max_restarts(b)
    if ga != gb:
        return ga > gb
    if sa != sb:
        return sa > sb
    res = _newer_first(parse_time(a["metadata"].get("creationTimestamp")),
                       parse_time(b["metadata"].get("creationTimestamp")), ua, ub, now)
    return bool(res)


def pods_to_delete(pods: list[Obj], related: list[Obj], diff: int, now: float) -> list[Obj]:
    """The `diff` pods to delete first (getPodsToDelete): ranked by how many related pods
    (those of every ReplicaSet with the same owner) share their node."""
    if diff >= len(pods):
        return list(pods)
    on_node: dict[str, int] = {}
    for p in related:
        if is_pod_active(p):
            node = (p.get("spec") or {}).get("nodeName", "")
            on_node[node] = on_node.get(node, 0) + 1
    ranked = [(p, on_node.get((p.get("spec") or {}).get("nodeName", ""), 0)) for p in pods]

    def cmp(x: tuple[Obj, int], y: tuple[Obj, int]) -> int:
        if pod_less(x[0], y[0], x[1], y[1], now):
            return -1
        if pod_less(y[0], x[0], y[1], x[1], now):
            return 1
        return 0

    ranked.sort(key=functools.cmp_to_key(cmp))
    return [p for p, _ in ranked[:diff]]


# -- status ----------------------------------------------------------------------------------------
def get_condition(status: Obj, type_: str) -> Obj | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == type_), None)


def calculate_status(rs: Obj, pods: list[Obj], manage_error: BaseException | None,
                     now: float) -> Obj:
    """The ReplicaSet's status (everything but observedGeneration) given the pods it owns."""
    spec = rs.get("spec") or {}
    status = dict(rs.get("status") or {})
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = spec.get("minReadySeconds", 0) or 0
    fully = ready = available = 0
    for p in pods:
        labels = p["metadata"].get("labels") or {}
        if all(labels.get(k) == v for k, v in template_labels.items()):
            fully += 1
        if is_pod_ready(p):
            ready += 1
            if is_pod_available(p, min_ready, now):
                available += 1
    conds = [c for c in status.get("conditions") or []]
    failure = get_condition(status, "ReplicaFailure")
    if manage_error is not None and failure is None:
        diff = len(pods) - spec.get("replicas", 1)
        reason = "FailedCreate" if diff < 0 else "FailedDelete" if diff > 0 else ""
        conds.append({"type": "ReplicaFailure", "status": "True",
                      "lastTransitionTime": format_time(now), "reason": reason,
                      "message": str(manage_error)})
    elif manage_error is None and failure is not None:
        conds = [c for c in conds if c.get("type") != "ReplicaFailure"]
    status.update(replicas=len(pods), fullyLabeledReplicas=fully, readyReplicas=ready,
                  availableReplicas=available)
    if conds:
        status["conditions"] = conds
    else:
        status.pop("conditions", None)
    return status


def selector_matches(sel: LabelSelector, obj: Obj) -> bool:
    """An empty selector matches nothing for a controller (kube refuses to adopt everything)."""
    return not sel.empty() and sel.matches((obj.get("metadata") or {}).get("labels") or {})


def _zero(v: Any) -> bool:
    return v is None or v == 0 or v == [] or v == {}


def status_patch(old: Obj, new: Obj, always: tuple[str, ...] = ()) -> Obj | None:
    """A merge patch turning status `old` into `new`, with zero values left out as Go's
    `omitempty` leaves them out (except the `always` fields); None when nothing changes."""
    want = {k: v for k, v in new.items() if k in always or not _zero(v)}
    have = {k: v for k, v in old.items() if k in always or not _zero(v)}
    if want == have:
        return None
    patch: Obj = {k: v for k, v in want.items() if have.get(k) != v}
    for k in have:
        if k not in want:
            patch[k] = None
    return patch
