"""Defaults of apps/v1: Deployment, ReplicaSet, StatefulSet, DaemonSet.

Follows kubernetes `pkg/apis/apps/v1/defaults.go` (1.32, with StatefulSetAutoDeletePVC on and
MaxUnavailableStatefulSet off) plus the pod template defaults, and the status fields Go always
serializes (`replicas`, the DaemonSet counters).
"""

from __future__ import annotations

from typing import Any

from pocketkube.api.defaulting import core, core_pod
from pocketkube.api.defaulting.util import child, existing, objects, set_if_empty, setdefault


def deployment(obj: dict[str, Any]) -> None:
    spec = child(obj, "spec")
    if spec is None:
        return
    setdefault(spec, "replicas", 1)
    strategy = child(spec, "strategy")
    if strategy is not None:
        set_if_empty(strategy, "type", "RollingUpdate")
        if strategy.get("type") == "RollingUpdate":
            ru = child(strategy, "rollingUpdate")
            setdefault(ru, "maxUnavailable", "25%")
            setdefault(ru, "maxSurge", "25%")
    setdefault(spec, "revisionHistoryLimit", 10)
    setdefault(spec, "progressDeadlineSeconds", 600)
    core_pod.template(child(spec, "template"))
    child(obj, "status")


def replica_set(obj: dict[str, Any]) -> None:
    spec = child(obj, "spec")
    if spec is None:
        return
    setdefault(spec, "replicas", 1)
    core_pod.template(child(spec, "template"))
    setdefault(child(obj, "status"), "replicas", 0)


def stateful_set(obj: dict[str, Any]) -> None:
    spec = child(obj, "spec")
    if spec is None:
        return
    set_if_empty(spec, "podManagementPolicy", "OrderedReady")
    strategy = child(spec, "updateStrategy")
    if strategy is not None:
        if not strategy.get("type"):
            strategy["type"] = "RollingUpdate"
            child(strategy, "rollingUpdate")
        ru = existing(strategy, "rollingUpdate")
        if strategy.get("type") == "RollingUpdate" and ru is not None:
            setdefault(ru, "partition", 0)
    retention = child(spec, "persistentVolumeClaimRetentionPolicy")
    set_if_empty(retention, "whenDeleted", "Retain")
    set_if_empty(retention, "whenScaled", "Retain")
    setdefault(spec, "replicas", 1)
    setdefault(spec, "revisionHistoryLimit", 10)
    core_pod.template(child(spec, "template"))
    for claim in objects(spec, "volumeClaimTemplates"):
        core.claim(claim, nested=True)
    status = child(obj, "status")
    setdefault(status, "replicas", 0)
    setdefault(status, "availableReplicas", 0)


def daemon_set(obj: dict[str, Any]) -> None:
    spec = child(obj, "spec")
    if spec is None:
        return
    strategy = child(spec, "updateStrategy")
    if strategy is not None:
        set_if_empty(strategy, "type", "RollingUpdate")
        if strategy.get("type") == "RollingUpdate":
            ru = child(strategy, "rollingUpdate")
            setdefault(ru, "maxUnavailable", 1)
            setdefault(ru, "maxSurge", 0)
    setdefault(spec, "revisionHistoryLimit", 10)
    core_pod.template(child(spec, "template"))
    status = child(obj, "status")
    for key in ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled",
                "numberReady"):
        setdefault(status, key, 0)
