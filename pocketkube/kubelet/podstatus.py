"""The pod status the node agent reports, built as the kubelet builds it
(kubelet_pods.go generateAPIPodStatus, convertToAPIContainerStatuses and getPhase;
status/generate.go for the conditions): container states from the runtime (waiting reasons
from the last start failure: CrashLoopBackOff, ErrImagePull, ...), the phase from the
containers and the restart policy, and kube's conditions.

Pure functions: the caller gathers what the runtime, the probes and the image store know, so
this can be tested with plain data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pocketkube.api.podutil import format_time
from pocketkube.kubelet.containers import qos_class
from pocketkube.kubelet.pleg import PodRuntimeStatus
from pocketkube.kubelet.podactions import is_sidecar, should_restart
from pocketkube.kubelet.podconditions import kubelet_conditions
from pocketkube.kubelet.runtime.interface import ContainerStatus

Obj = dict[str, Any]

KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                      "PodScheduled")
TERMINAL = ("Succeeded", "Failed")


@dataclass
class StatusInputs:
    """What the pod status is made from besides the pod and the runtime."""

    runtime_name: str = "runc"
    node_ip: str = ""
    reason: Callable[[str, str], tuple[str, str] | None] = lambda uid, name: None
    ready: Callable[[str, str], bool] = lambda uid, name: False
    started: Callable[[str, str], bool] = lambda uid, name: False
    # container -> (image as the runtime names it, image id as a digest reference)
    image: Callable[[ContainerStatus], tuple[str, str]] = lambda c: (c.image_ref, c.image_id)
    messages: dict[str, str] = field(default_factory=dict)  # container id -> termination msg
    sandbox_ready: bool = False


def _running(t: float) -> Obj:
    return {"running": {"startedAt": format_time(t)}}


def _terminated(c: ContainerStatus, cid: str, message: str) -> Obj:
    t: Obj = {"exitCode": c.exit_code, "startedAt": format_time(c.started_at) if c.started_at
              else None, "finishedAt": format_time(c.finished_at) if c.finished_at else None,
              "containerID": cid}
    if c.reason:
        t["reason"] = c.reason
    text = c.message
    if message:
        text = f"{text}: {message}" if text else message
    if text:
        t["message"] = text
    return {"terminated": {k: v for k, v in t.items() if v is not None}}


def _volume_mounts(spec: Obj) -> list[Obj]:
    out = []
    for vm in spec.get("volumeMounts") or []:
        m: Obj = {"name": vm.get("name"), "mountPath": vm.get("mountPath")}
        if vm.get("readOnly"):
            m["readOnly"] = True
            m["recursiveReadOnly"] = "Disabled"
        out.append(m)
    return out


def _convert(c: ContainerStatus, spec: Obj, old: Obj | None, inputs: StatusInputs) -> Obj:
    cid = f"{inputs.runtime_name}://{c.id}"
    image, image_id = inputs.image(c)
    st: Obj = {"name": c.name, "restartCount": c.attempt, "image": image,
               "imageID": image_id or c.image_id, "containerID": cid}
    mounts = _volume_mounts(spec)
    if mounts:
        st["volumeMounts"] = mounts
    if c.state == "running":
        st["state"] = _running(c.started_at)
    elif c.state == "exited":
        st["state"] = _terminated(c, cid, inputs.messages.get(c.id, ""))
        reported = ((old or {}).get("state") or {}).get("terminated") or {}
        if reported.get("containerID") == cid and reported.get("message") and \
                "message" not in st["state"]["terminated"]:
            # The message file went with the pod's directory; keep what was reported.
            st["state"]["terminated"]["message"] = reported["message"]
    elif c.state == "unknown" and old and (old.get("state") or {}).get("running"):
        st["state"] = {"terminated": {
            "exitCode": 137, "reason": "ContainerStatusUnknown",
            "message": "The container could not be located when the pod was terminated"}}
        st["restartCount"] = int(old.get("restartCount", 0)) + 1
    else:
        st["state"] = {"waiting": {}}
    return st


def container_statuses(pod: Obj, rt: PodRuntimeStatus, old_list: list[Obj], specs: list[Obj],
                       inputs: StatusInputs, init: bool) -> list[Obj]:  # fmt: skip
    """kube's convertToAPIContainerStatuses for one list of containers."""
    spec = pod.get("spec") or {}
    uid = pod["metadata"]["uid"]
    default_reason = "PodInitializing" if spec.get("initContainers") else "ContainerCreating"
    olds = {o.get("name"): o for o in old_list}
    statuses: dict[str, Obj] = {}
    for c in specs:
        st: Obj = {"name": c["name"], "image": c.get("image", ""), "imageID": "",
                   "state": {"waiting": {"reason": default_reason}}, "lastState": {},
                   "ready": False, "restartCount": 0}
        old = olds.get(c["name"])
        if old is not None:
            if (old.get("state") or {}).get("terminated"):
                st = {**old}
            else:
                st["restartCount"] = old.get("restartCount", 0)
                st["lastState"] = old.get("lastState") or {}
        statuses[c["name"]] = st
    by_name = {c["name"]: c for c in specs}
    seen: dict[str, int] = {}
    for c in rt.containers:  # newest first
        if c.name not in by_name or seen.get(c.name, 0) >= 2:
            continue
        converted = _convert(c, by_name[c.name], olds.get(c.name), inputs)
        if seen.get(c.name, 0) == 0:
            converted["lastState"] = {}
            statuses[c.name] = converted
        else:
            statuses[c.name]["lastState"] = converted["state"]
        seen[c.name] = seen.get(c.name, 0) + 1
    for c in specs:
        if init:
            latest = rt.latest(c["name"])
            if latest is not None and latest.state == "exited" and latest.exit_code == 0:
                continue
        if not should_restart(c, pod, rt):
            continue
        why = inputs.reason(uid, c["name"])
        if why is None:
            continue
        st = statuses[c["name"]]
        if (st.get("state") or {}).get("terminated"):
            st["lastState"] = st["state"]
        waiting: Obj = {"reason": why[0]}
        if why[1]:
            waiting["message"] = why[1]
        st["state"] = {"waiting": waiting}
    out = []
    for c in specs:
        st = statuses[c["name"]]
        running = bool((st.get("state") or {}).get("running"))
        started = running and inputs.started(uid, c["name"])
        if init and not is_sidecar(c):
            term = (st.get("state") or {}).get("terminated")
            ready = bool(term) and term.get("exitCode") == 0
        else:
            ready = running and inputs.ready(uid, c["name"])
        st["ready"] = ready
        st["started"] = started
        st.setdefault("lastState", {})
        out.append(st)
    return out


def any_started(spec: Obj, statuses: list[Obj]) -> bool:
    """Whether an app container ever started (HasAnyRegularContainerStarted)."""
    names = {c["name"] for c in spec.get("containers") or []}
    return any(s["name"] in names and ((s.get("state") or {}).get("running") or
                                       (s.get("state") or {}).get("terminated"))
               for s in statuses)


def get_phase(pod: Obj, statuses: list[Obj], terminal: bool) -> str:
    """kube's getPhase over init and app container statuses."""
    spec = pod.get("spec") or {}
    policy = spec.get("restartPolicy") or "Always"
    by_name = {s["name"]: s for s in statuses}
    pending_init = pending_sidecars = failed_init = 0
    unknown = running = waiting = stopped = succeeded = 0
    for c in spec.get("initContainers") or []:
        s = by_name.get(c["name"])
        state = (s or {}).get("state") or {}
        last = (s or {}).get("lastState") or {}
        if is_sidecar(c):
            if s is None:
                unknown += 1
            elif state.get("running"):
                if not s.get("started"):
                    pending_sidecars += 1
                running += 1
            elif state.get("terminated"):
                pass
            elif state.get("waiting") is not None and not last.get("terminated"):
                pending_sidecars += 1
                waiting += 1
            elif state.get("waiting") is None:
                pending_sidecars += 1
                unknown += 1
            continue
        if s is None or state.get("running"):
            pending_init += 1
        elif state.get("terminated"):
            if state["terminated"].get("exitCode", 0) != 0:
                failed_init += 1
        elif state.get("waiting") is not None:
            if last.get("terminated"):
                if last["terminated"].get("exitCode", 0) != 0:
                    failed_init += 1
            else:
                pending_init += 1
        else:
            pending_init += 1
    for c in spec.get("containers") or []:
        s = by_name.get(c["name"])
        state = (s or {}).get("state") or {}
        if s is None:
            unknown += 1
        elif state.get("running"):
            running += 1
        elif state.get("terminated"):
            stopped += 1
            if state["terminated"].get("exitCode", 0) == 0:
                succeeded += 1
        elif state.get("waiting") is not None:
            if ((s.get("lastState") or {}).get("terminated")):
                stopped += 1
            else:
                waiting += 1
        else:
            unknown += 1
    if failed_init and policy == "Never":
        return "Failed"
    if pending_init or (pending_sidecars and not any_started(spec, statuses)) or waiting:
        return "Pending"
    if running and not unknown:
        return "Running"
    if not running and stopped and not unknown:
        static = "kubernetes.io/config.source" in ((pod.get("metadata") or {})
                                                   .get("annotations") or {})
        if terminal and not static:
            return "Succeeded" if stopped == succeeded else "Failed"
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Failed" if policy == "Never" else "Running"
    return "Pending"


def generate(pod: Obj, rt: PodRuntimeStatus, old: Obj, inputs: StatusInputs,
             terminal: bool) -> Obj:  # fmt: skip
    """kube's generateAPIPodStatus: `old` is the status last reported (or the API's)."""
    spec = pod.get("spec") or {}
    api = pod.get("status") or {}
    status: Obj = {}
    ips = rt.ips
    if spec.get("hostNetwork") and inputs.node_ip:
        ips = [inputs.node_ip]
    if not ips:  # a stopped sandbox keeps the addresses it had
        ips = [p["ip"] for p in old.get("podIPs") or [] if p.get("ip")]
    if ips:
        status["podIP"] = ips[0]
        status["podIPs"] = [{"ip": ip} for ip in ips]
    if inputs.node_ip:
        status["hostIP"] = inputs.node_ip
        status["hostIPs"] = [{"ip": inputs.node_ip}]
    status["qosClass"] = api.get("qosClass") or old.get("qosClass") or qos_class(pod)
    if old.get("startTime"):
        status["startTime"] = old["startTime"]
    regular = container_statuses(pod, rt, old.get("containerStatuses") or [],
                                 spec.get("containers") or [], inputs, init=False)
    inits = container_statuses(pod, rt, old.get("initContainerStatuses") or [],
                               spec.get("initContainers") or [], inputs, init=True)
    status["containerStatuses"] = sorted(regular, key=lambda s: s["name"])
    if inits:
        status["initContainerStatuses"] = inits
    everything = [*regular, *inits]
    phase = get_phase(pod, everything, terminal)
    if phase not in TERMINAL:
        if old.get("phase") in TERMINAL:
            phase = old["phase"]
        elif api.get("phase") in TERMINAL:
            phase = api["phase"]
    if phase == old.get("phase"):
        for key in ("reason", "message"):
            if old.get(key) or api.get(key):
                status[key] = old.get(key) or api.get(key)
    if api.get("phase") in TERMINAL and phase != api.get("phase"):
        phase = api["phase"]  # no way out of a terminal phase
    status["phase"] = phase
    foreign = [c for c in api.get("conditions") or [] if c.get("type") not in KUBELET_CONDITIONS]
    status["conditions"] = kubelet_conditions(pod, everything, phase, inputs.sandbox_ready,
                                              foreign)
    return status
