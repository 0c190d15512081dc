"""The pure rules of a StatefulSet (kube's `stateful_set_utils.go`): pod identity from ordinals,
claims from volumeClaimTemplates, which revision a new pod gets, the status counts, and where
each claim's owner references belong under the persistentVolumeClaimRetentionPolicy.

Also the pod predicates (ready, available after minReadySeconds) the DaemonSet controller shares.
Nothing here does I/O, so the unit tests exercise it directly.
"""

from __future__ import annotations

import copy
import re
import time
from typing import Any

from pocketkube.api.podutil import is_pod_available as is_available
from pocketkube.api.podutil import is_pod_ready as is_ready
from pocketkube.client.workqueue import Clock
from pocketkube.controllers.history import HASH_LABEL, new_controller_ref

Obj = dict[str, Any]
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
_ORDINAL_RE = re.compile(r"^(.*)-([0-9]+)$")


class WallClock:
    """Wall time that moves with an injected clock (a FakeClock moves it too), for comparing
    against timestamps the API holds."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._offset = time.time() - clock.now()

    def now(self) -> float:
        return self.clock.now() + self._offset


# -- pod predicates ---------------------------------------------------------------------------------









def phase(pod: Obj) -> str:
    return (pod.get("status") or {}).get("phase") or ""


def is_created(pod: Obj) -> bool:
    return phase(pod) != ""


def is_terminating(pod: Obj) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def running_and_ready(pod: Obj) -> bool:
    return phase(pod) == "Running" and is_ready(pod)


def is_healthy(pod: Obj) -> bool:
    return running_and_ready(pod) and not is_terminating(pod)


def is_unavailable(pod: Obj, min_ready_seconds: int, now: float) -> bool:
    return not is_healthy(pod) or not (phase(pod) == "Running"
                                       and is_available(pod, min_ready_seconds, now))


# -- identity -----------------------------------------------------------------------------------------

def parent_and_ordinal(name: str) -> tuple[str, int]:
    m = _ORDINAL_RE.match(name)
    if not m or int(m.group(2)) > 2**31 - 1:
        return "", -1
    return m.group(1), int(m.group(2))


def ordinal(pod: Obj) -> int:
    return parent_and_ordinal(pod["metadata"]["name"])[1]


def start_ordinal(sts: Obj) -> int:
    return ((sts["spec"].get("ordinals") or {}).get("start")) or 0


def replicas(sts: Obj) -> int:
    r = sts["spec"].get("replicas")
    return 1 if r is None else r


def in_range(pod: Obj, sts: Obj) -> bool:
    start = start_ordinal(sts)
    return start <= ordinal(pod) < start + replicas(sts)


def is_member(sts: Obj, pod: Obj) -> bool:
    return parent_and_ordinal(pod["metadata"]["name"])[0] == sts["metadata"]["name"]


def pod_name(sts: Obj, ordinal_: int) -> str:
    return f"{sts['metadata']['name']}-{ordinal_}"


def claim_name(sts: Obj, template: Obj, ordinal_: int) -> str:
    return f"{template['metadata']['name']}-{sts['metadata']['name']}-{ordinal_}"


def revision_of(pod: Obj) -> str:
    return (pod["metadata"].get("labels") or {}).get(HASH_LABEL, "")


def identity_matches(sts: Obj, pod: Obj) -> bool:
    parent, ord_ = parent_and_ordinal(pod["metadata"]["name"])
    return (ord_ >= 0 and parent == sts["metadata"]["name"]
            and pod["metadata"].get("namespace") == sts["metadata"]["namespace"]
            and (pod["metadata"].get("labels") or {}).get(POD_NAME_LABEL)
            == pod["metadata"]["name"])


def storage_matches(sts: Obj, pod: Obj) -> bool:
    ord_ = ordinal(pod)
    if ord_ < 0:
        return False
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or ()}
    for t in sts["spec"].get("volumeClaimTemplates") or ():
        v = volumes.get(t["metadata"]["name"])
        if v is None or (v.get("persistentVolumeClaim") or {}).get("claimName") != \
                claim_name(sts, t, ord_):
            return False
    return True


def identity_labels(sts: Obj, ordinal_: int) -> dict[str, str]:
    return {POD_NAME_LABEL: pod_name(sts, ordinal_), POD_INDEX_LABEL: str(ordinal_)}


def claims(sts: Obj, ordinal_: int) -> list[Obj]:
    """The claims the pod at `ordinal_` mounts, one per volumeClaimTemplate."""
    out = []
    match_labels = (sts["spec"].get("selector") or {}).get("matchLabels") or {}
    for t in sts["spec"].get("volumeClaimTemplates") or ():
        claim = copy.deepcopy(t)
        meta = claim.setdefault("metadata", {})
        meta["name"] = claim_name(sts, t, ordinal_)
        meta["namespace"] = sts["metadata"]["namespace"]
        meta["labels"] = {**(meta.get("labels") or {}), **match_labels}
        claim.pop("status", None)
        out.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim", **claim})
    return out


def new_pod(sts: Obj, template: Obj, ordinal_: int, revision: str) -> Obj:
    """The pod at `ordinal_` from `template` (GetPodFromTemplate + initIdentity +
    updateStorage), labelled with its revision."""
    tmeta = template.get("metadata") or {}
    name = pod_name(sts, ordinal_)
    meta: Obj = {"name": name, "generateName": f"{sts['metadata']['name']}-",
                 "namespace": sts["metadata"]["namespace"],
                 "labels": {**(tmeta.get("labels") or {}), **identity_labels(sts, ordinal_),
                            HASH_LABEL: revision},
                 "ownerReferences": [new_controller_ref(sts, "apps/v1", "StatefulSet")]}
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    if tmeta.get("finalizers"):
        meta["finalizers"] = list(tmeta["finalizers"])
    spec = copy.deepcopy(template.get("spec") or {})
    spec["hostname"] = name
    if sts["spec"].get("serviceName"):
        spec["subdomain"] = sts["spec"]["serviceName"]
    templates = sts["spec"].get("volumeClaimTemplates") or []
    if templates:
        names = {t["metadata"]["name"] for t in templates}
        spec["volumes"] = [
            {"name": t["metadata"]["name"],
             "persistentVolumeClaim": {"claimName": claim_name(sts, t, ordinal_)}}
            for t in templates] + [v for v in spec.get("volumes") or () if v["name"] not in names]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def uses_current_revision(sts: Obj, ordinal_: int) -> bool:
    """Whether a missing pod is recreated at the current revision rather than the update one
    (newVersionedStatefulSetPod, with its operator precedence kept)."""
    strategy = sts["spec"].get("updateStrategy") or {}
    ru = strategy.get("rollingUpdate")
    start = start_ordinal(sts)
    current = (sts.get("status") or {}).get("currentReplicas") or 0
    return ((strategy.get("type", "RollingUpdate") == "RollingUpdate" and ru is None
             and ordinal_ < start + current)
            or (ru is not None and ordinal_ < start + (ru.get("partition") or 0)))


# -- status ---------------------------------------------------------------------------------------------

def count_status(pods: list[Obj], min_ready: int, now: float, current: str,
                 update: str) -> dict[str, int]:
    n = {"replicas": 0, "readyReplicas": 0, "availableReplicas": 0, "currentReplicas": 0,
         "updatedReplicas": 0}
    for pod in pods:
        created = is_created(pod)
        n["replicas"] += created
        if running_and_ready(pod):
            n["readyReplicas"] += 1
            n["availableReplicas"] += is_available(pod, min_ready, now)
        if created and not is_terminating(pod):
            rev = revision_of(pod)
            n["currentReplicas"] += rev == current
            n["updatedReplicas"] += rev == update
    return n


def complete_rolling_update(sts: Obj, status: Obj) -> None:
    want = replicas(sts)
    if ((sts["spec"].get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"
            and status["updatedReplicas"] == want and status["readyReplicas"] == want
            and status["replicas"] == want):
        status["currentReplicas"] = status["updatedReplicas"]
        status["currentRevision"] = status["updateRevision"]


_STATUS_KEYS = ("replicas", "currentReplicas", "readyReplicas", "updatedReplicas",
                "currentRevision", "availableReplicas", "updateRevision")


def status_differs(sts: Obj, status: Obj) -> bool:
    old = sts.get("status") or {}
    if status["observedGeneration"] > (old.get("observedGeneration") or 0):
        return True
    if status.get("collisionCount") != old.get("collisionCount"):
        return True
    return any((status.get(k) or 0) != (old.get(k) or 0) for k in _STATUS_KEYS)


# -- claim ownership (persistentVolumeClaimRetentionPolicy) --------------------------------------------

def retention(sts: Obj) -> tuple[str, str]:
    p = sts["spec"].get("persistentVolumeClaimRetentionPolicy") or {}
    return p.get("whenDeleted") or "Retain", p.get("whenScaled") or "Retain"


def claim_owner_refs(claim: Obj, sts: Obj, pod: Obj) -> list[Obj]:
    """The ownerReferences `claim` should carry for `pod` of `sts` (updateClaimOwnerRefForSetAndPod):
    the set owns it when deleting the set deletes claims, the pod when scaling down does and the
    pod is beyond the replicas. Other owners are kept."""
    set_uid, pod_uid = sts["metadata"]["uid"], pod["metadata"].get("uid")
    refs = [r for r in claim["metadata"].get("ownerReferences") or ()
            if r.get("uid") not in (set_uid, pod_uid)
            and not (r.get("kind") == "StatefulSet" and r.get("name") == sts["metadata"]["name"])
            and not (r.get("kind") == "Pod" and r.get("name") == pod["metadata"]["name"])]
    when_deleted, when_scaled = retention(sts)
    scaled_down = not in_range(pod, sts)
    if when_scaled == "Delete" and scaled_down and pod_uid:
        refs.append(new_controller_ref(pod, "v1", "Pod"))
    elif when_deleted == "Delete" and not (when_scaled == "Delete" and scaled_down):
        refs.append(new_controller_ref(sts, "apps/v1", "StatefulSet"))
    return refs
