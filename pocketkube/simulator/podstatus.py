"""The pod status a simulated node reports, built as the kubelet builds it
(`pkg/kubelet/kubelet_pods.go` generateAPIPodStatus, `pkg/kubelet/status/generate.go`):
conditions with kube's reasons, container and init container statuses, addresses and phase.
Also the finish rule for pods that simulate a batch workload. Pure functions, no I/O.

A pod annotated `pocketkube.io/simulate-run-seconds: "N"` stops N seconds after its containers
started, with the exit code in `pocketkube.io/simulate-exit-code` (default 0): Succeeded on 0,
Failed otherwise; with restartPolicy OnFailure a non-zero exit restarts the containers instead,
and with restartPolicy Always the annotation is ignored (such pods never finish).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

RUN_SECONDS = "pocketkube.io/simulate-run-seconds"
EXIT_CODE = "pocketkube.io/simulate-exit-code"
RUNTIME_SCHEME = "simulated://"
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


# --- containers ------------------------------------------------------------------------------


def normalize_image(image: str) -> str:
    """The image reference as a container runtime reports it (docker.io/library/nginx:latest)."""
    name, digest = (image.split("@", 1) + [""])[:2]
    first = name.split("/", 1)[0]
    if "/" not in name or not ("." in first or ":" in first or first == "localhost"):
        name = ("docker.io/library/" if "/" not in name else "docker.io/") + name
    if digest:
        return f"{name}@{digest}"
    if ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name


def image_id(image: str) -> str:
    """The digest reference a runtime reports: the given digest, else one derived from the
    reference (stable, so a simulated image keeps its id)."""
    ref = normalize_image(image)
    if "@" in ref:
        return ref
    repo = ref.rsplit(":", 1)[0]
    return f"{repo}@sha256:{hashlib.sha256(ref.encode()).hexdigest()}"


def container_id(pod_uid: str, name: str, restarts: int = 0) -> str:
    digest = hashlib.sha256(f"{pod_uid}/{name}/{restarts}".encode()).hexdigest()
    return RUNTIME_SCHEME + digest


def _base(pod: Obj, c: Obj, restarts: int) -> Obj:
    uid = (pod.get("metadata") or {}).get("uid", "")
    image = c.get("image") or ""
    return {
        "containerID": container_id(uid, c["name"], restarts),
        "image": normalize_image(image),
        "imageID": image_id(image),
        "lastState": {},
        "name": c["name"],
        "restartCount": restarts,
    }


def running_container(pod: Obj, c: Obj, started_at: str, restarts: int = 0) -> Obj:
    st = _base(pod, c, restarts)
    st.update(ready=True, started=True, state={"running": {"startedAt": started_at}})
    return st


def terminated_container(
    pod: Obj, c: Obj, started_at: str, finished_at: str, exit_code: int, restarts: int = 0
) -> Obj:
    st = _base(pod, c, restarts)
    st.update(
        ready=False,
        started=False,
        state={
            "terminated": terminated_state(st["containerID"], started_at, finished_at, exit_code)
        },
    )
    return st


def terminated_state(cid: str, started_at: str, finished_at: str, exit_code: int) -> Obj:
    return {
        "containerID": cid,
        "exitCode": exit_code,
        "finishedAt": finished_at,
        "reason": "Completed" if exit_code == 0 else "Error",
        "startedAt": started_at,
    }


def _is_sidecar(c: Obj) -> bool:
    return c.get("restartPolicy") == "Always"


def init_statuses(pod: Obj, started_at: str, running: bool) -> list[Obj]:
    """Init containers after a successful start: regular ones Completed (ready, not started),
    restartable (sidecar) ones running while the pod runs."""
    out = []
    for c in (pod.get("spec") or {}).get("initContainers") or []:
        if _is_sidecar(c) and running:
            out.append(running_container(pod, c, started_at))
        else:
            st = terminated_container(pod, c, started_at, started_at, 0)
            st["ready"] = not _is_sidecar(c)
            out.append(st)
    return out


# --- conditions ------------------------------------------------------------------------------


def conditions(pod: Obj, phase: str, now: str) -> list[Obj]:
    """Conditions others own first (kept as they are), then the kubelet's five; a transition
    time moves only when a condition's status changes."""
    spec = pod.get("spec") or {}
    old = list((pod.get("status") or {}).get("conditions") or [])
    foreign = [c for c in old if c.get("type") not in KUBELET_CONDITIONS]
    previous = {c.get("type"): c for c in old}
    terminal = phase in ("Succeeded", "Failed")
    reason = {"Succeeded": "PodCompleted", "Failed": "PodFailed"}.get(phase, "")
    ready: tuple[str, str, str] = ("False", reason, "") if terminal else ("True", "", "")
    if not terminal:
        unmet = []
        for gate in spec.get("readinessGates") or []:
            t = gate.get("conditionType")
            c = previous.get(t)
            if c is None:
                unmet.append(f'corresponding condition of pod readiness gate "{t}" does not exist.')
            elif c.get("status") != "True":
                unmet.append(
                    f'the status of pod readiness gate "{t}" is not "True", but {c.get("status")}'
                )
        if unmet:
            ready = ("False", "ReadinessGatesNotReady", ", ".join(unmet))
    wanted = [
        ("PodReadyToStartContainers", "False" if terminal else "True", "", ""),
        ("Initialized", "True", "PodCompleted" if phase == "Succeeded" else "", ""),
        ("Ready", *ready),
        ("ContainersReady", "False" if terminal else "True", reason, ""),
        ("PodScheduled", "True", "", ""),
    ]
    out = list(foreign)
    for type_, status, why, message in wanted:
        prev = previous.get(type_) or {}
        same = prev.get("status") == status
        cond: Obj = {
            "lastProbeTime": None,
            "lastTransitionTime": prev.get("lastTransitionTime")
            if same and prev.get("lastTransitionTime")
            else now,
            "status": status,
            "type": type_,
        }
        if why:
            cond["reason"] = why
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


def running_status(
    pod: Obj,
    pod_ips: list[str],
    host_ip: str,
    now: str,
    start_time: str | None = None,
    restarts: int = 0,
) -> Obj:
    """The status of a pod whose containers run: Running, Ready, addressed."""
    spec = pod.get("spec") or {}
    old = pod.get("status") or {}
    start = start_time or old.get("startTime") or now
    status: Obj = {
        "phase": "Running",
        "conditions": conditions(pod, "Running", now),
        **_addresses(pod_ips, host_ip),
        "startTime": start,
        "containerStatuses": [
            running_container(pod, c, now, restarts) for c in spec.get("containers") or []
        ],
    }
    if spec.get("initContainers"):
        status["initContainerStatuses"] = init_statuses(pod, start, running=True)
    if old.get("qosClass"):
        status["qosClass"] = old["qosClass"]
    return status


def finished_status(pod: Obj, exit_code: int, now: str) -> Obj:
    """The status of a pod whose containers all exited with `exit_code`: Succeeded or Failed.
    Addresses and start times stay as the running status reported them."""
    spec = pod.get("spec") or {}
    old = pod.get("status") or {}
    phase = "Succeeded" if exit_code == 0 else "Failed"
    running = {c.get("name"): c for c in old.get("containerStatuses") or []}
    statuses = []
    for c in spec.get("containers") or []:
        prev = running.get(c["name"]) or {}
        started = (
            ((prev.get("state") or {}).get("running") or {}).get("startedAt")
            or old.get("startTime")
            or now
        )
        statuses.append(
            terminated_container(pod, c, started, now, exit_code, prev.get("restartCount", 0))
        )
    status: Obj = {
        "phase": phase,
        "conditions": conditions(pod, phase, now),
        "containerStatuses": statuses,
    }
    if spec.get("initContainers"):
        status["initContainerStatuses"] = init_statuses(
            pod, old.get("startTime") or now, running=False
        )
    return status


def restarted_status(pod: Obj, exit_code: int, now: str) -> Obj:
    """Containers that exited with `exit_code` and were started again by the kubelet
    (restartPolicy OnFailure): one more restart each, the exit in lastState."""
    old = pod.get("status") or {}
    previous = {c.get("name"): c for c in old.get("containerStatuses") or []}
    restarts = max((int(c.get("restartCount", 0)) for c in previous.values()), default=0) + 1
    ips = [p["ip"] for p in old.get("podIPs") or [] if p.get("ip")]
    status = running_status(pod, ips, old.get("hostIP", ""), now, restarts=restarts)
    for st in status["containerStatuses"]:
        prev = previous.get(st["name"]) or {}
        started = ((prev.get("state") or {}).get("running") or {}).get("startedAt") or now
        st["lastState"] = {
            "terminated": terminated_state(prev.get("containerID", ""), started, now, exit_code)
        }
    return status


def container_started_at(pod: Obj) -> str | None:
    """When the pod's (first) container last started, as its status says."""
    for st in (pod.get("status") or {}).get("containerStatuses") or []:
        running = (st.get("state") or {}).get("running")
        if running:
            return running.get("startedAt")
    return None


def has_run(pod: Obj) -> bool:
    """Whether this node ever started the pod's containers."""
    return bool((pod.get("status") or {}).get("containerStatuses"))
