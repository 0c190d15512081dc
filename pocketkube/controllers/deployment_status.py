"""The status a Deployment reports (kube's `pkg/controller/deployment/sync.go` calculateStatus
and `progress.go`): replica counts summed over its ReplicaSets, the Available condition, and the
Progressing condition that `kubectl rollout status` reads — NewReplicaSetCreated,
FoundNewReplicaSet, ReplicaSetUpdated, NewReplicaSetAvailable, ProgressDeadlineExceeded,
DeploymentPaused/DeploymentResumed — with kube's messages. Pure functions over dicts.
"""

from __future__ import annotations

import copy
from typing import Any

from pocketkube.controllers import deployment_util as du
from pocketkube.controllers.replicaset_util import format_time, parse_time

Obj = dict[str, Any]

# Progressing reasons
RS_UPDATED = "ReplicaSetUpdated"
FAILED_RS_CREATE = "ReplicaSetCreateError"
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
# Available reasons
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"


def new_condition(type_: str, status: str, reason: str, message: str, now: float) -> Obj:
    t = format_time(now)
    return {"type": type_, "status": status, "lastUpdateTime": t, "lastTransitionTime": t,
            "reason": reason, "message": message}


def get_condition(status: Obj, type_: str) -> Obj | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == type_), None)


def set_condition(status: Obj, cond: Obj) -> None:
    """SetDeploymentCondition: unchanged status and reason leave the condition alone; the same
    status keeps its lastTransitionTime; the condition moves to the end of the list."""
    cur = get_condition(status, cond["type"])
    if cur is not None and cur.get("status") == cond["status"] and \
            cur.get("reason") == cond["reason"]:
        return
    if cur is not None and cur.get("status") == cond["status"]:
        cond = dict(cond, lastTransitionTime=cur.get("lastTransitionTime"))
    status["conditions"] = [c for c in status.get("conditions") or []
                            if c.get("type") != cond["type"]] + [cond]


def remove_condition(status: Obj, type_: str) -> None:
    if status.get("conditions"):
        status["conditions"] = [c for c in status["conditions"] if c.get("type") != type_]


def calculate_status(all_rss: list[Obj | None], new_rs: Obj | None, d: Obj, now: float) -> Obj:
    available = du.sum_status(all_rss, "availableReplicas")
    total = du.sum_spec(all_rss)
    old = d.get("status") or {}
    status: Obj = {
        "observedGeneration": d["metadata"].get("generation", 0),
        "replicas": du.sum_status(all_rss, "replicas"),
        "updatedReplicas": du.sum_status([new_rs], "replicas"),
        "readyReplicas": du.sum_status(all_rss, "readyReplicas"),
        "availableReplicas": available,
        "unavailableReplicas": max(total - available, 0),
        "conditions": copy.deepcopy(old.get("conditions") or []),
    }
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    if available >= du.replicas(d) - du.max_unavailable(d):
        set_condition(status, new_condition("Available", "True", MIN_AVAILABLE,
                                            "Deployment has minimum availability.", now))
    else:
        set_condition(status, new_condition("Available", "False", MIN_UNAVAILABLE,
                                            "Deployment does not have minimum availability.", now))
    return status


def deployment_complete(d: Obj, status: Obj) -> bool:
    want = du.replicas(d)
    return status.get("updatedReplicas", 0) == want and status.get("replicas", 0) == want and \
        status.get("availableReplicas", 0) == want and \
        status.get("observedGeneration", 0) >= d["metadata"].get("generation", 0)


def deployment_progressing(d: Obj, status: Obj) -> bool:
    old = d.get("status") or {}

    def g(s: Obj, f: str) -> int:
        return int(s.get(f, 0) or 0)

    return g(status, "updatedReplicas") > g(old, "updatedReplicas") or \
        g(status, "replicas") - g(status, "updatedReplicas") < \
        g(old, "replicas") - g(old, "updatedReplicas") or \
        g(status, "readyReplicas") > g(old, "readyReplicas") or \
        g(status, "availableReplicas") > g(old, "availableReplicas")


def deployment_timed_out(d: Obj, status: Obj, now: float) -> bool:
    if not du.has_progress_deadline(d):
        return False
    cond = get_condition(status, "Progressing")
    if cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    since = parse_time(cond.get("lastUpdateTime"))
    if since is None:
        return False
    return since + d["spec"]["progressDeadlineSeconds"] < now


def replica_failures(all_rss: list[Obj | None], new_rs: Obj | None) -> list[Obj]:
    """ReplicaFailure conditions of the ReplicaSets as Deployment conditions (new RS first)."""

    def of(rs: Obj | None) -> list[Obj]:
        out = []
        for c in ((rs or {}).get("status") or {}).get("conditions") or []:
            if c.get("type") == "ReplicaFailure":
                out.append({"type": "ReplicaFailure", "status": c.get("status"),
                            "lastUpdateTime": c.get("lastTransitionTime"),
                            "lastTransitionTime": c.get("lastTransitionTime"),
                            "reason": c.get("reason", ""), "message": c.get("message", "")})
        return out

    first = of(new_rs)
    if first:
        return first
    return [c for rs in all_rss for c in of(rs)]


def rollout_status(all_rss: list[Obj | None], new_rs: Obj | None, d: Obj, now: float) -> Obj:
    """The status syncRolloutStatus writes: counts plus the Progressing estimate."""
    status = calculate_status(all_rss, new_rs, d, now)
    name = d["metadata"]["name"]
    if not du.has_progress_deadline(d):
        remove_condition(status, "Progressing")
    cur = get_condition(d.get("status") or {}, "Progressing")
    complete = status["replicas"] == status["updatedReplicas"] and cur is not None and \
        cur.get("reason") == NEW_RS_AVAILABLE
    if du.has_progress_deadline(d) and not complete:
        what = f'ReplicaSet "{new_rs["metadata"]["name"]}"' if new_rs is not None \
            else f'Deployment "{name}"'
        if deployment_complete(d, status):
            set_condition(status, new_condition("Progressing", "True", NEW_RS_AVAILABLE,
                                                f"{what} has successfully progressed.", now))
        elif deployment_progressing(d, status):
            cond = new_condition("Progressing", "True", RS_UPDATED, f"{what} is progressing.",
                                 now)
            if cur is not None:
                if cur.get("status") == "True":
                    cond["lastTransitionTime"] = cur.get("lastTransitionTime")
                remove_condition(status, "Progressing")
            set_condition(status, cond)
        elif deployment_timed_out(d, status, now):
            set_condition(status, new_condition("Progressing", "False", TIMED_OUT,
                                                f"{what} has timed out progressing.", now))
    failures = replica_failures(all_rss, new_rs)
    if failures:
        set_condition(status, failures[0])
    else:
        remove_condition(status, "ReplicaFailure")
    return status


def stuck_requeue_after(d: Obj, status: Obj, now: float) -> float | None:
    """requeueStuckDeployment: when to look again for a timeout (0: soon), None for never."""
    cur = get_condition(d.get("status") or {}, "Progressing")
    if not du.has_progress_deadline(d) or cur is None:
        return None
    if deployment_complete(d, status) or cur.get("reason") == TIMED_OUT:
        return None
    since = parse_time(cur.get("lastUpdateTime"))
    if since is None:
        return None
    after = since + d["spec"]["progressDeadlineSeconds"] - now
    return 0.0 if after < 1 else after + 1


def same_status(a: Obj, b: Obj) -> bool:
    """reflect.DeepEqual over Go structs: absent and zero are the same."""

    def norm(s: Obj) -> Obj:
        return {k: v for k, v in s.items() if v not in (None, 0, [], {})}

    return norm(a) == norm(b)
