"""The node agent's own admission check for a pod bound to it (kube's
pkg/kubelet/lifecycle/predicate.go canAdmitPod, generalFilter): the pod must fit the node's
allocatable resources next to the pods already running, its host ports must be free, and its
node selector must match. A rejected pod goes straight to phase Failed with kube's reason
(OutOfcpu, OutOfmemory, OutOfpods, NodePorts, NodeAffinity) and a "Pod was rejected: ..."
message; the scheduler normally prevents this, but a pod bound by hand (spec.nodeName) is
checked only here.
"""

from __future__ import annotations

from typing import Any

from pocketkube.kubelet.containers import byte_value, milli_value

Obj = dict[str, Any]


def _requests(pod: Obj) -> dict[str, int]:
    """What the pod reserves: its containers and sidecars summed, or its largest init step."""
    spec = pod.get("spec") or {}

    def one(c: Obj) -> dict[str, int]:
        req = (c.get("resources") or {}).get("requests") or {}
        return {"cpu": milli_value(req.get("cpu")), "memory": byte_value(req.get("memory")),
                "ephemeral-storage": byte_value(req.get("ephemeral-storage"))}

    total = {"cpu": 0, "memory": 0, "ephemeral-storage": 0}
    for c in spec.get("containers") or []:
        for k, v in one(c).items():
            total[k] += v
    sidecars = {"cpu": 0, "memory": 0, "ephemeral-storage": 0}
    for c in spec.get("initContainers") or []:
        r = one(c)
        if c.get("restartPolicy") == "Always":
            for k, v in r.items():
                sidecars[k] += v
                total[k] += v
        else:
            for k, v in r.items():
                total[k] = max(total[k], v + sidecars[k])
    for k, v in (spec.get("overhead") or {}).items():
        if k in total:
            total[k] += milli_value(v) if k == "cpu" else byte_value(v)
    return total


def _ports(pod: Obj) -> list[tuple[str, str, int]]:
    out = []
    spec = pod.get("spec") or {}
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                out.append((p.get("hostIP") or "0.0.0.0", p.get("protocol") or "TCP",
                            int(p["hostPort"])))
    return out


def _ports_clash(wanted: list[tuple[str, str, int]], used: list[tuple[str, str, int]]) -> bool:
    for ip, proto, port in wanted:
        for uip, uproto, uport in used:
            if port == uport and proto == uproto and \
                    (ip == uip or "0.0.0.0" in (ip, uip)):
                return True
    return False


def _selector_matches(pod: Obj, node: Obj) -> bool:
    labels = (node.get("metadata") or {}).get("labels") or {}
    selector = (pod.get("spec") or {}).get("nodeSelector") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def check(pod: Obj, active: list[Obj], node: Obj | None) -> tuple[str, str] | None:
    """(reason, message) when the node cannot run `pod` next to `active`, else None."""
    if node is not None:
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        want = _requests(pod)
        used = {"cpu": 0, "memory": 0, "ephemeral-storage": 0}
        for other in active:
            for k, v in _requests(other).items():
                used[k] += v
        capacity = {"cpu": milli_value(allocatable.get("cpu")),
                    "memory": byte_value(allocatable.get("memory")),
                    "ephemeral-storage": byte_value(allocatable.get("ephemeral-storage"))}
        max_pods = byte_value(allocatable.get("pods")) if allocatable.get("pods") else 0
        if max_pods and len(active) + 1 > max_pods:
            return "OutOfpods", _insufficient("pods", 1, len(active), max_pods)
        for name in ("cpu", "memory", "ephemeral-storage"):
            if name not in allocatable:
                continue
            if want[name] > 0 and want[name] > capacity[name] - used[name]:
                return f"OutOf{name}", _insufficient(name, want[name], used[name],
                                                     capacity[name])
        if not _selector_matches(pod, node):
            return "NodeAffinity", _predicate(
                "NodeAffinity", "node(s) didn't match Pod's node affinity/selector")
    wanted = _ports(pod)
    if wanted and _ports_clash(wanted, [p for other in active for p in _ports(other)]):
        return "NodePorts", _predicate(
            "NodePorts", "node(s) didn't have free ports for the requested pod ports")
    return None


def _insufficient(name: str, requested: int, used: int, capacity: int) -> str:
    return (f"Node didn't have enough resource: {name}, requested: {requested}, used: {used}, "
            f"capacity: {capacity}")


def _predicate(name: str, description: str) -> str:
    return f"Predicate {name} failed: {description}"


def rejected_status(pod: Obj, reason: str, message: str) -> Obj:
    from pocketkube.kubelet.containers import qos_class

    return {"phase": "Failed", "reason": reason, "message": f"Pod was rejected: {message}",
            "qosClass": qos_class(pod)}
