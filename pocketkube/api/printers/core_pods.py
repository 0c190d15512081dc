"""Table printers for Pods and PodTemplates (printers.go `printPod`, `printPodTemplate`).

The Pod STATUS cell is the most visible piece of `kubectl get pods`: it folds the phase, the
pod's reason, scheduling gates, init-container progress (`Init:0/2`, `Init:CrashLoopBackOff`),
container waiting/terminated reasons and deletion into one word, in kube's exact order of
precedence. RESTARTS carries the time of the last restart ("4 (20s ago)").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pocketkube.api.printers.common import (
    AGE_COL,
    NAME_COL,
    Col,
    Obj,
    ago,
    format_labels,
    layout_containers,
    parse_time,
    since,
)

POD_COLUMNS = (
    NAME_COL,
    Col("Ready", desc="The aggregate readiness state of this pod for accepting traffic."),
    Col("Status", desc="The aggregate status of the containers in this pod."),
    Col(
        "Restarts",
        desc="The number of times the containers in this pod have been restarted and when the "
        "last container in this pod has restarted.",
    ),
    AGE_COL,
    Col("IP", desc=("core.v1.PodStatus", "podIP"), priority=1),
    Col("Node", desc=("core.v1.PodSpec", "nodeName"), priority=1),
    Col("Nominated Node", desc=("core.v1.PodStatus", "nominatedNodeName"), priority=1),
    Col("Readiness Gates", desc=("core.v1.PodSpec", "readinessGates"), priority=1),
)

POD_TEMPLATE_COLUMNS = (
    NAME_COL,
    Col("Containers", desc="Names of each container in the template."),
    Col("Images", desc="Images referenced by each container in the template."),
    Col("Pod Labels", desc="The labels for the pod template."),
)

_TERMINAL_PHASES = ("Succeeded", "Failed")


def _later(current: datetime | None, last_state: Any) -> datetime | None:
    """The later of `current` and a lastState.terminated.finishedAt (Go's `Before` check)."""
    if not last_state:
        return current
    terminated = last_state.get("terminated")
    if terminated is None:
        return current
    finished = parse_time(terminated.get("finishedAt"))
    if finished is None or (current is not None and finished <= current):
        return current
    return finished


def _condition_true(conditions: list[Obj], ctype: str) -> bool:
    for c in conditions:
        if c.get("type") == ctype:
            return c.get("status") == "True"
    return False


def _terminated_reason(term: Obj, prefix: str) -> str:
    reason = term.get("reason") or ""
    if reason:
        return prefix + reason
    signal = term.get("signal") or 0
    if signal:
        return f"{prefix}Signal:{signal}"
    return f"{prefix}ExitCode:{term.get('exitCode') or 0}"


def pod_row(pod: Obj, now: datetime) -> list[Any]:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    conditions = status.get("conditions") or []
    init_specs = spec.get("initContainers") or []
    sidecars = {c.get("name") for c in init_specs if c.get("restartPolicy") == "Always"}
    total = len(spec.get("containers") or ()) + sum(
        1 for c in init_specs if c.get("restartPolicy") == "Always"
    )
    ready = 0
    restarts = sidecar_restarts = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None

    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for c in conditions:
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    initializing = False
    for i, cs in enumerate(status.get("initContainerStatuses") or ()):
        count = cs.get("restartCount") or 0
        restarts += count
        last_state = cs.get("lastState")
        last_restart = _later(last_restart, last_state)
        is_sidecar = cs.get("name") in sidecars
        if is_sidecar:
            sidecar_restarts += count
            last_sidecar_restart = _later(last_sidecar_restart, last_state)
        state = cs.get("state") or {}
        term = state.get("terminated")
        waiting = state.get("waiting")
        if term is not None and (term.get("exitCode") or 0) == 0:
            continue
        if is_sidecar and cs.get("started") is True:
            if cs.get("ready"):
                ready += 1
            continue
        if term is not None:
            reason = _terminated_reason(term, "Init:")
        elif (
            waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing"
        ):
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _condition_true(conditions, "Initialized"):
        restarts = sidecar_restarts
        last_restart = last_sidecar_restart
        has_running = False
        for cs in reversed(status.get("containerStatuses") or ()):
            restarts += cs.get("restartCount") or 0
            last_restart = _later(last_restart, cs.get("lastState"))
            state = cs.get("state") or {}
            waiting = state.get("waiting")
            term = state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif term is not None:
                reason = _terminated_reason(term, "")
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        # A pod whose last container completed still runs while another container does.
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true_any(conditions, "Ready") else "NotReady"

    if meta.get("deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in _TERMINAL_PHASES:
            reason = "Terminating"

    restarts_cell = str(restarts)
    if restarts and last_restart is not None:
        restarts_cell = f"{restarts} ({ago(last_restart, now)} ago)"

    # v1 -> internal conversion: status.podIP wins over podIPs[0] when both are set.
    pod_ip = status.get("podIP") or next(
        (p.get("ip") for p in status.get("podIPs") or () if p.get("ip")), ""
    )
    gates = spec.get("readinessGates") or []
    gates_cell = "<none>"
    if gates:
        true_count = 0
        for gate in gates:
            for c in conditions:
                if c.get("type") == gate.get("conditionType"):
                    true_count += c.get("status") == "True"
                    break
        gates_cell = f"{true_count}/{len(gates)}"

    return [
        meta.get("name", ""),
        f"{ready}/{total}",
        reason,
        restarts_cell,
        since(meta.get("creationTimestamp"), now),
        pod_ip or "<none>",
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        gates_cell,
    ]


def _condition_true_any(conditions: list[Obj], ctype: str) -> bool:
    """printers.go `hasPodReadyCondition`: any condition of that type with status True."""
    return any(c.get("type") == ctype and c.get("status") == "True" for c in conditions)


def pod_template_row(obj: Obj, now: datetime) -> list[Any]:
    template = obj.get("template") or {}
    names, images = layout_containers((template.get("spec") or {}).get("containers") or ())
    labels = (template.get("metadata") or {}).get("labels")
    return [(obj.get("metadata") or {}).get("name", ""), names, images, format_labels(labels)]


PRINTERS = {
    ("", "Pod"): (POD_COLUMNS, pod_row),
    ("", "PodTemplate"): (POD_TEMPLATE_COLUMNS, pod_template_row),
}
