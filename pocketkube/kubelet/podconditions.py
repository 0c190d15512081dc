"""The pod conditions the node agent owns (kube's pkg/kubelet/status/generate.go):
PodReadyToStartContainers, Initialized, Ready, ContainersReady and PodScheduled, with kube's
reasons and messages ("containers with unready status: [a b]"). Transition times are added by
the status manager, which knows the previous status.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def _names(names: list[str]) -> str:
    """A Go string slice as %s prints it: [a b]."""
    return "[" + " ".join(names) + "]"


def _cond(type_: str, status: str, reason: str = "", message: str = "") -> Obj:
    c: Obj = {"type": type_, "status": status}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def _by_name(statuses: list[Obj]) -> dict[str, Obj]:
    return {s["name"]: s for s in statuses}


def containers_ready(spec: Obj, statuses: list[Obj], phase: str) -> Obj:
    known = _by_name(statuses)
    unknown: list[str] = []
    unready: list[str] = []
    wanted = [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    for c in [*wanted, *(spec.get("containers") or [])]:
        s = known.get(c["name"])
        if s is None:
            unknown.append(c["name"])
        elif not s.get("ready"):
            unready.append(c["name"])
    if (phase == "Succeeded" and not unknown) or phase == "Failed":
        return _cond("ContainersReady", "False",
                     "PodCompleted" if phase == "Succeeded" else "PodFailed")
    parts = []
    if unknown:
        parts.append(f"containers with unknown status: {_names(unknown)}")
    if unready:
        parts.append(f"containers with unready status: {_names(unready)}")
    if parts:
        return _cond("ContainersReady", "False", "ContainersNotReady", ", ".join(parts))
    return _cond("ContainersReady", "True")


def pod_ready(spec: Obj, conditions: list[Obj], statuses: list[Obj], phase: str) -> Obj:
    cr = containers_ready(spec, statuses, phase)
    if cr["status"] != "True":
        return {**cr, "type": "Ready"}
    by_type = {c.get("type"): c for c in conditions}
    unready = []
    for gate in spec.get("readinessGates") or []:
        t = gate.get("conditionType")
        c = by_type.get(t)
        if c is None:
            unready.append(f'corresponding condition of pod readiness gate "{t}" does not exist.')
        elif c.get("status") != "True":
            unready.append(f'the status of pod readiness gate "{t}" is not "True", but '
                           f'{c.get("status")}')
    if unready:
        return _cond("Ready", "False", "ReadinessGatesNotReady", ", ".join(unready))
    return _cond("Ready", "True")


def initialized(spec: Obj, statuses: list[Obj], phase: str) -> Obj:
    inits = spec.get("initContainers") or []
    known = _by_name(statuses)
    unknown: list[str] = []
    incomplete: list[str] = []
    for c in inits:
        s = known.get(c["name"])
        if s is None:
            unknown.append(c["name"])
            continue
        if c.get("restartPolicy") == "Always":
            if not s.get("started"):
                incomplete.append(c["name"])
            continue
        term = (s.get("state") or {}).get("terminated")
        if not term or term.get("exitCode", 0) != 0:
            incomplete.append(c["name"])
    if phase == "Succeeded" and not unknown:
        return _cond("Initialized", "True", "PodCompleted")
    names = {c["name"] for c in spec.get("containers") or []}
    if any(s["name"] in names and ((s.get("state") or {}).get("running") or
                                   (s.get("state") or {}).get("terminated"))
           for s in statuses):
        return _cond("Initialized", "True")
    parts = []
    if unknown:
        parts.append(f"containers with unknown status: {_names(unknown)}")
    if incomplete:
        parts.append(f"containers with incomplete status: {_names(incomplete)}")
    if parts:
        return _cond("Initialized", "False", "ContainersNotInitialized", ", ".join(parts))
    return _cond("Initialized", "True")


def kubelet_conditions(pod: Obj, statuses: list[Obj], phase: str, sandbox_ready: bool,
                       foreign: list[Obj]) -> list[Obj]:  # fmt: skip
    """Conditions others own (kept), then the node agent's, in kube's order."""
    spec = pod.get("spec") or {}
    out = list(foreign)
    out.append(_cond("PodReadyToStartContainers", "True" if sandbox_ready else "False"))
    out.append(initialized(spec, statuses, phase))
    out.append(pod_ready(spec, out, statuses, phase))
    out.append(containers_ready(spec, statuses, phase))
    out.append(_cond("PodScheduled", "True"))
    return out


def set_transition_times(status: Obj, old: Obj, now: str) -> None:
    """A condition's lastTransitionTime moves only when its status changes."""
    previous = {c.get("type"): c for c in old.get("conditions") or []}
    for c in status.get("conditions") or []:
        if c.get("lastTransitionTime"):
            continue
        p = previous.get(c.get("type"))
        kept = p.get("lastTransitionTime") if p and p.get("status") == c.get("status") else None
        c["lastTransitionTime"] = kept or now
