"""The pure rules of a DaemonSet (kube's `pkg/controller/daemon` and `daemon/util`): which nodes
should run a daemon pod (nodeSelector, required node affinity, taints against the pod's
tolerations plus the ones every daemon pod gets), how a daemon pod is built and pinned to its
node, when a pod counts as updated, the rolling-update plan, and creation/deletion expectations.

The matching of node selectors and taints is written here rather than shared with the scheduler
because controllers may only depend on `client` and `api`; it follows
`component-helpers/scheduling/corev1` exactly.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from pocketkube.controllers.history import HASH_LABEL, new_controller_ref

Obj = dict[str, Any]
GENERATION_LABEL = "pod-template-generation"
GENERATION_ANNOTATION = "deprecated.daemonset.template.generation"
EXPECTATIONS_TIMEOUT = 300.0  # kube's ExpectationsTimeout


# -- tolerations and taints ------------------------------------------------------------------------

def daemon_tolerations(host_network: bool) -> list[Obj]:
    """Tolerations kube adds to every daemon pod (AddOrUpdateDaemonPodTolerations)."""
    tols = [("node.kubernetes.io/not-ready", "NoExecute"),
            ("node.kubernetes.io/unreachable", "NoExecute"),
            ("node.kubernetes.io/disk-pressure", "NoSchedule"),
            ("node.kubernetes.io/memory-pressure", "NoSchedule"),
            ("node.kubernetes.io/pid-pressure", "NoSchedule"),
            ("node.kubernetes.io/unschedulable", "NoSchedule")]
    if host_network:
        tols.append(("node.kubernetes.io/network-unavailable", "NoSchedule"))
    return [{"key": k, "operator": "Exists", "effect": e} for k, e in tols]


def with_daemon_tolerations(tolerations: list[Obj], host_network: bool) -> list[Obj]:
    """`tolerations` plus the daemon ones it lacks (AddOrUpdateTolerationInPodSpec)."""
    out = list(tolerations)
    for tol in daemon_tolerations(host_network):
        if not any(_same_toleration(t, tol) for t in out):
            out.append(tol)
    return out


def add_daemon_tolerations(spec: Obj) -> None:
    spec["tolerations"] = with_daemon_tolerations(spec.get("tolerations") or [],
                                                  bool(spec.get("hostNetwork")))


def _same_toleration(a: Obj, b: Obj) -> bool:
    return all((a.get(k) or "") == (b.get(k) or "") for k in ("key", "operator", "value",
                                                               "effect"))


def tolerates(tol: Obj, taint: Obj) -> bool:
    """v1.Toleration.ToleratesTaint."""
    if tol.get("effect") and tol["effect"] != taint.get("effect"):
        return False
    if tol.get("key") and tol["key"] != taint.get("key"):
        return False
    op = tol.get("operator") or "Equal"
    if op == "Exists":
        return True
    return op == "Equal" and (tol.get("value") or "") == (taint.get("value") or "")


def untolerated_taint(taints: list[Obj], tolerations: list[Obj],
                      effects: tuple[str, ...]) -> Obj | None:
    for taint in taints:
        if taint.get("effect") in effects and not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


# -- node selection ------------------------------------------------------------------------------------

def _requirement(req: Obj, values: dict[str, str]) -> bool:
    key, op, vals = req.get("key", ""), req.get("operator"), req.get("values") or []
    v = values.get(key)
    if op == "In":
        return v is not None and v in vals
    if op == "NotIn":
        return v is None or v not in vals
    if op == "Exists":
        return v is not None
    if op == "DoesNotExist":
        return v is None
    if op in ("Gt", "Lt") and v is not None and len(vals) == 1:
        try:
            a, b = int(v), int(vals[0])
        except ValueError:
            return False
        return a > b if op == "Gt" else a < b
    return False


def _term(term: Obj, labels: dict[str, str], name: str) -> bool:
    exprs, fields = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not exprs and not fields:
        return False
    return all(_requirement(r, labels) for r in exprs) and all(
        r.get("key") == "metadata.name" and _requirement(r, {"metadata.name": name})
        for r in fields)


def fits_node_affinity(pod_spec: Obj, node: Obj) -> bool:
    """nodeSelector and requiredDuringSchedulingIgnoredDuringExecution both hold."""
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in (pod_spec.get("nodeSelector") or {}).items()):
        return False
    required = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return True
    return any(_term(t, labels, node["metadata"]["name"])
               for t in required.get("nodeSelectorTerms") or ())


def should_run(node: Obj, ds: Obj) -> tuple[bool, bool]:
    """(should run a daemon pod here, should keep one already running) — NodeShouldRunDaemonPod."""
    spec = ds["spec"]["template"].get("spec") or {}
    name = node["metadata"]["name"]
    if spec.get("nodeName") not in (None, "", name):
        return False, False
    if not fits_node_affinity(spec, node):
        return False, False
    taints = (node.get("spec") or {}).get("taints") or []
    if not taints:
        return True, True
    tols = with_daemon_tolerations(spec.get("tolerations") or [], bool(spec.get("hostNetwork")))
    if untolerated_taint(taints, tols, ("NoSchedule", "NoExecute")) is not None:
        return False, untolerated_taint(taints, tols, ("NoExecute",)) is None
    return True, True


def target_node(pod: Obj) -> str:
    """The node a daemon pod is for: where it is bound, else its metadata.name affinity."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution") or {}
    for term in required.get("nodeSelectorTerms") or ():
        for f in term.get("matchFields") or ():
            if f.get("key") == "metadata.name" and f.get("operator") == "In" and \
                    len(f.get("values") or []) == 1:
                return f["values"][0]
    return ""


# -- pods -------------------------------------------------------------------------------------------------

def template_generation(ds: Obj) -> int | None:
    value = (ds["metadata"].get("annotations") or {}).get(GENERATION_ANNOTATION)
    if value is not None:
        try:
            return int(value)
        except ValueError:
            return None
    return ds["metadata"].get("generation")


def pod_template(ds: Obj, hash_: str) -> Obj:
    """CreatePodTemplate: the daemon tolerations and the generation and hash labels."""
    template = copy.deepcopy(ds["spec"]["template"])
    add_daemon_tolerations(template.setdefault("spec", {}))
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    gen = template_generation(ds)
    if gen is not None:
        labels[GENERATION_LABEL] = str(gen)
    if hash_:
        labels[HASH_LABEL] = hash_
    return template


def pod_for_node(ds: Obj, template: Obj, node: str) -> Obj:
    """A pod of `template` pinned to `node` through node affinity, so the scheduler binds it
    (ReplaceDaemonSetPodNodeNameNodeAffinity + GetPodFromTemplate)."""
    tmeta = template.get("metadata") or {}
    meta: Obj = {"generateName": f"{ds['metadata']['name']}-",
                 "namespace": ds["metadata"]["namespace"],
                 "labels": dict(tmeta.get("labels") or {}),
                 "ownerReferences": [new_controller_ref(ds, "apps/v1", "DaemonSet")]}
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    if tmeta.get("finalizers"):
        meta["finalizers"] = list(tmeta["finalizers"])
    spec = copy.deepcopy(template.get("spec") or {})
    pin = {"nodeSelectorTerms": [{"matchFields": [
        {"key": "metadata.name", "operator": "In", "values": [node]}]}]}
    node_affinity = spec.setdefault("affinity", {}).setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = pin
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def is_updated(pod: Obj, hash_: str, generation: int | None) -> bool:
    labels = pod["metadata"].get("labels") or {}
    return bool(hash_ and labels.get(HASH_LABEL) == hash_) or (
        generation is not None and labels.get(GENERATION_LABEL) == str(generation))


def oldest_first(pods: list[Obj]) -> list[Obj]:
    """podByCreationTimestampAndPhase: oldest first, running before pending on a tie."""
    return sorted(pods, key=lambda p: (p["metadata"].get("creationTimestamp") or "",
                                       (p.get("status") or {}).get("phase") != "Running",
                                       p["metadata"]["name"]))


# -- counts -----------------------------------------------------------------------------------------------

def scaled_value(value: Any, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent."""
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.endswith("%"):
        pct = int(value[:-1]) * total / 100
        return math.ceil(pct) if round_up else math.floor(pct)
    return int(value or 0)


def surge_and_unavailable(ds: Obj, desired: int) -> tuple[int, int]:
    strategy = ds["spec"].get("updateStrategy") or {}
    ru = strategy.get("rollingUpdate") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return 0, 0
    surge = scaled_value(ru.get("maxSurge", 0), desired, True)
    unavailable = scaled_value(ru.get("maxUnavailable", 1), desired, True)
    if desired > 0 and surge == 0 and unavailable == 0:
        unavailable = 1  # an impossible configuration falls back to kube's default
    return surge, unavailable


def allows_surge(ds: Obj) -> bool:
    return surge_and_unavailable(ds, 1)[0] > 0


class Expectations:
    """ControllerExpectations: after a DaemonSet creates or deletes pods, its next syncs only
    update status until the informer has seen those changes (or a timeout passes), so a cache
    that is behind never causes a second pod on a node."""

    def __init__(self, now: Any) -> None:
        self._now = now
        self._pending: dict[str, tuple[int, set[str], float]] = {}

    def expect(self, key: str, adds: int, deletes: set[str]) -> None:
        self._pending[key] = (adds, set(deletes), self._now())

    def creation_observed(self, key: str) -> None:
        if key in self._pending:
            adds, dels, t = self._pending[key]
            self._pending[key] = (adds - 1, dels, t)

    def deletion_observed(self, key: str, pod_key: str) -> None:
        if key in self._pending:
            self._pending[key][1].discard(pod_key)

    def lower_adds(self, key: str, n: int) -> None:
        """Creations that failed will never be observed."""
        for _ in range(n):
            self.creation_observed(key)

    def satisfied(self, key: str) -> bool:
        entry = self._pending.get(key)
        if entry is None:
            return True
        adds, dels, t = entry
        if (adds <= 0 and not dels) or self._now() - t > EXPECTATIONS_TIMEOUT:
            del self._pending[key]
            return True
        return False

    def forget(self, key: str) -> None:
        self._pending.pop(key, None)
