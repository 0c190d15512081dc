"""The pod status a simulated node reports, built as the kubelet builds it
(`pkg/kubelet/kubelet_pods.go` generateAPIPodStatus, `pkg/kubelet/status/generate.go`):
conditions with kube's reasons, container and init container statuses, addresses and phase.
Also the finish rule for pods that simulate a batch workload. Pure functions, no I/O.

A pod annotated `pocketkube.io/simulate-run-seconds: "N"` stops N seconds after its containers
started, with the exit code in `pocketkube.io/simulate-exit-code` (default 0): Succeeded on 0,
Failed otherwise; with restartPolicy OnFailure a non-zero exit restarts the containers after the
kubelet's backoff (CrashLoopBackOff meanwhile) instead, and with restartPolicy Always the
annotation is ignored (such pods never finish).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pocketkube.simulator import containers as ctr

Obj = dict[str, Any]

RUN_SECONDS = "pocketkube.io/simulate-run-seconds"
EXIT_CODE = "pocketkube.io/simulate-exit-code"
# Exit code of a container that outlived its grace period and was killed (128 + SIGKILL).
KILLED_EXIT_CODE = 137

KUBELET_CONDITIONS = (
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
)


@dataclass(frozen=True)
class RunPlan:
    seconds: float
    exit_code: int


def run_plan(pod: Obj) -> RunPlan | None:
    """How long the pod runs and how it ends; None if it runs until deleted."""
    spec = pod.get("spec") or {}
    if (spec.get("restartPolicy") or "Always") == "Always":
        return None
    ann = (pod.get("metadata") or {}).get("annotations") or {}
    try:
        seconds = float(ann[RUN_SECONDS])
    except (KeyError, TypeError, ValueError):
        return None
    if seconds < 0 or seconds != seconds:
        return None
    try:
        code = int(ann.get(EXIT_CODE, "0"))
    except (TypeError, ValueError):
        code = 1
    return RunPlan(seconds, min(max(code, 0), 255))


def restarts_on_exit(pod: Obj, exit_code: int) -> bool:
    policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


# --- conditions ------------------------------------------------------------------------------


def _readiness_gates(pod: Obj, previous: dict[str, Obj]) -> list[str]:
    unmet = []
    for gate in (pod.get("spec") or {}).get("readinessGates") or []:
        t = gate.get("conditionType")
        c = previous.get(t)
        if c is None:
            unmet.append(f'corresponding condition of pod readiness gate "{t}" does not exist.')
        elif c.get("status") != "True":
            unmet.append(
                f'the status of pod readiness gate "{t}" is not "True", but {c.get("status")}'
            )
    return unmet


def conditions(pod: Obj, phase: str, now: str, unready: list[str] | None = None) -> list[Obj]:
    """Conditions others own first (kept as they are), then the kubelet's five; a transition
    time moves only when a condition's status changes. `unready` names containers not ready."""
    old = list((pod.get("status") or {}).get("conditions") or [])
    foreign = [c for c in old if c.get("type") not in KUBELET_CONDITIONS]
    previous = {c.get("type"): c for c in old}
    terminal = phase in ("Succeeded", "Failed")
    if terminal:
        containers = ("False", {"Succeeded": "PodCompleted", "Failed": "PodFailed"}[phase], "")
        ready = containers
    elif unready:
        names = " ".join(unready)
        containers = ("False", "ContainersNotReady", f"containers with unready status: [{names}]")
        ready = containers
    else:
        containers = ("True", "", "")
        gates = _readiness_gates(pod, previous)
        ready = ("False", "ReadinessGatesNotReady", ", ".join(gates)) if gates else containers
    wanted = [
        ("PodReadyToStartContainers", "False" if terminal else "True", "", ""),
        ("Initialized", "True", "PodCompleted" if phase == "Succeeded" else "", ""),
        ("Ready", *ready),
        ("ContainersReady", *containers),
        ("PodScheduled", "True", "", ""),
    ]
    out = list(foreign)
    for type_, status, reason, message in wanted:
        prev = previous.get(type_) or {}
        kept = prev.get("lastTransitionTime") if prev.get("status") == status else None
        cond: Obj = {"lastTransitionTime": kept or now, "status": status, "type": type_}
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        out.append(cond)
    return out


# --- whole statuses --------------------------------------------------------------------------


def _addresses(pod_ips: list[str], host_ip: str) -> Obj:
    out: Obj = {"hostIP": host_ip, "hostIPs": [{"ip": host_ip}]}
    if pod_ips:
        out.update(podIP=pod_ips[0], podIPs=[{"ip": ip} for ip in pod_ips])
    return out


def running_status(pod: Obj, pod_ips: list[str], host_ip: str, now: str, restarts: int = 0) -> Obj:
    """The status of a pod whose containers run: Running, Ready, addressed."""
    spec = pod.get("spec") or {}
    old = pod.get("status") or {}
    start = old.get("startTime") or now
    status: Obj = {
        "phase": "Running",
        "conditions": conditions(pod, "Running", now),
        **_addresses(pod_ips, host_ip),
        "startTime": start,
        "containerStatuses": [
            ctr.running_container(pod, c, now, restarts) for c in spec.get("containers") or []
        ],
    }
    if spec.get("initContainers"):
        status["initContainerStatuses"] = ctr.init_statuses(pod, start, running=True)
    if old.get("qosClass"):
        status["qosClass"] = old["qosClass"]
    return status


def _previous(pod: Obj) -> dict[str, Obj]:
    return {c.get("name"): c for c in (pod.get("status") or {}).get("containerStatuses") or []}


def _started_at(st: Obj) -> str | None:
    return ((st.get("state") or {}).get("running") or {}).get("startedAt")


def finished_status(pod: Obj, exit_code: int, now: str) -> Obj:
    """The status of a pod whose containers all exited with `exit_code`: Succeeded or Failed.
    Addresses and the start time stay as the running status reported them."""
    spec = pod.get("spec") or {}
    old = pod.get("status") or {}
    phase = "Succeeded" if exit_code == 0 else "Failed"
    previous = _previous(pod)
    statuses = []
    for c in spec.get("containers") or []:
        prev = previous.get(c["name"]) or {}
        started = _started_at(prev) or old.get("startTime") or now
        restarts = int(prev.get("restartCount", 0))
        statuses.append(ctr.terminated_container(pod, c, started, now, exit_code, restarts))
    status: Obj = {
        "phase": phase,
        "conditions": conditions(pod, phase, now),
        "containerStatuses": statuses,
    }
    if spec.get("initContainers"):
        start = old.get("startTime") or now
        status["initContainerStatuses"] = ctr.init_statuses(pod, start, running=False)
    return status


def crashed_status(pod: Obj, exit_code: int, now: str) -> Obj:
    """Containers that exited with `exit_code` and wait out the restart backoff (restartPolicy
    OnFailure): still Running, not Ready, each container in CrashLoopBackOff."""
    previous = _previous(pod)
    status = {"phase": "Running", "containerStatuses": []}
    unready = []
    for c in (pod.get("spec") or {}).get("containers") or []:
        prev = previous.get(c["name"]) or {}
        restarts = int(prev.get("restartCount", 0))
        started = _started_at(prev) or now
        cid = prev.get("containerID") or ctr.container_id(pod["metadata"]["uid"], c["name"])
        last = {"terminated": ctr.terminated_state(cid, started, now, exit_code)}
        backoff = ctr.restart_backoff(restarts)
        status["containerStatuses"].append(ctr.waiting_container(pod, c, restarts, last, backoff))
        unready.append(c["name"])
    status["conditions"] = conditions(pod, "Running", now, unready)
    return status


def restart_due(pod: Obj) -> float | None:
    """Seconds after the last exit at which a backing-off container starts again (None if no
    container is backing off); the caller adds them to lastState.terminated.finishedAt."""
    for st in (pod.get("status") or {}).get("containerStatuses") or []:
        if ((st.get("state") or {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff":
            return ctr.restart_backoff(int(st.get("restartCount", 0)))
    return None


def last_exit(pod: Obj) -> str | None:
    """When the first container last exited (lastState.terminated.finishedAt)."""
    for st in (pod.get("status") or {}).get("containerStatuses") or []:
        finished = ((st.get("lastState") or {}).get("terminated") or {}).get("finishedAt")
        if finished:
            return finished
    return None


def restarted_status(pod: Obj, now: str) -> Obj:
    """The backing-off containers started again: one more restart each, the exit kept in
    lastState."""
    old = pod.get("status") or {}
    previous = _previous(pod)
    restarts = max((int(c.get("restartCount", 0)) for c in previous.values()), default=0) + 1
    ips = [p["ip"] for p in old.get("podIPs") or [] if p.get("ip")]
    status = running_status(pod, ips, old.get("hostIP", ""), now, restarts=restarts)
    for st in status["containerStatuses"]:
        st["lastState"] = (previous.get(st["name"]) or {}).get("lastState") or {}
    return status


def container_started_at(pod: Obj) -> str | None:
    """When the pod's (first) container last started, as its status says."""
    for st in (pod.get("status") or {}).get("containerStatuses") or []:
        started = _started_at(st)
        if started:
            return started
    return None


def has_run(pod: Obj) -> bool:
    """Whether this node ever started the pod's containers."""
    return bool((pod.get("status") or {}).get("containerStatuses"))
