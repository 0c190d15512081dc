"""What one pass over a pod must do (kube's kuberuntime_manager.go computePodActions and
computeInitContainerActions, container/helpers.go ShouldContainerBeRestarted,
runtime/util PodSandboxChanged), decided from the spec and what the runtime has, without
doing any of it:

- a new sandbox when there is none, the latest one died, or several are ready — then
  everything starts over from the first init container (a finished Never pod does not);
- init containers one at a time in order; sidecars (restartPolicy Always) are restarted when
  they exit and count as done once started;
- app containers that are not running are started when the restart policy allows;
- running ones are killed when their spec hash changed (image), or a liveness/startup probe
  failed; with nothing left to run, the whole pod is stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pocketkube.kubelet import containers as ctr
from pocketkube.kubelet.lifecycle import REASON_LIVENESS
from pocketkube.kubelet.pleg import PodRuntimeStatus
from pocketkube.kubelet.runtime.interface import ContainerStatus

Obj = dict[str, Any]


@dataclass
class Kill:
    status: ContainerStatus
    container: Obj | None
    message: str = ""
    reason: str = ""


@dataclass
class PodActions:
    kill_pod: bool = False
    create_sandbox: bool = False
    sandbox_id: str = ""
    attempt: int = 0
    init_to_start: list[int] = field(default_factory=list)
    to_start: list[int] = field(default_factory=list)
    to_kill: dict[str, Kill] = field(default_factory=dict)


def is_sidecar(container: Obj) -> bool:
    return container.get("restartPolicy") == "Always"


def restart_on_failure(pod: Obj) -> bool:
    return ((pod.get("spec") or {}).get("restartPolicy") or "Always") != "Never"


def should_restart(container: Obj, pod: Obj, status: PodRuntimeStatus) -> bool:
    """kube's ShouldContainerBeRestarted."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    latest = status.latest(container["name"])
    if latest is None:
        return True
    if latest.state == "running":
        return False
    if latest.state in ("unknown", "created"):
        return True
    policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
    if policy == "Never":
        return False
    return not (policy == "OnFailure" and latest.exit_code == 0)


def init_failed(status: ContainerStatus) -> bool:
    return (status.reason == "OOMKilled" or status.state == "unknown"
            or (status.state == "exited" and status.exit_code != 0))


def sandbox_changed(pod: Obj, status: PodRuntimeStatus) -> tuple[bool, int, str]:
    """(create a new sandbox?, its attempt, the old sandbox id) — kube's PodSandboxChanged."""
    if not status.sandboxes:
        return True, 0, ""
    latest = status.sandboxes[0]
    attempt = len(status.sandboxes)
    ready = sum(1 for s in status.sandboxes if s.state == "ready")
    if ready > 1 or latest.state != "ready":
        return True, attempt, latest.id
    host_network = bool((pod.get("spec") or {}).get("hostNetwork"))
    if not host_network and not latest.ip:
        return True, attempt, latest.id
    return False, attempt - 1, latest.id


def _init_actions(pod: Obj, status: PodRuntimeStatus, actions: PodActions, probes: Any) -> bool:
    """kube's computeInitContainerActions: which init containers (re)start; whether the pod
    is initialized."""
    spec = pod.get("spec") or {}
    inits = spec.get("initContainers") or []
    if not inits:
        return True
    uid = pod["metadata"]["uid"]
    initialized = any((s := status.latest(c["name"])) is not None and
                      s.state in ("created", "running") for c in spec.get("containers") or [])
    previously = initialized
    restart = restart_on_failure(pod)
    starts: list[int] = []
    for i in range(len(inits) - 1, -1, -1):
        c = inits[i]
        s = status.latest(c["name"])
        if s is None:
            if previously and is_sidecar(c):
                starts.append(i)
            continue
        if previously and not is_sidecar(c):
            continue
        if s.state == "created":
            starts.append(i)
        elif s.state == "running":
            if not is_sidecar(c):
                pass  # wait for it to finish
            elif c.get("startupProbe") and not probes.started(uid, c["name"]):
                failure = probes.liveness_failure(uid, c["name"])
                if failure:
                    actions.to_kill[s.id] = Kill(
                        s, c, f"Init container {c['name']} failed startup probe", "startup")
                    starts.append(i)
            else:
                if i == len(inits) - 1:
                    initialized = True
                elif not previously:
                    starts.append(i + 1)
                if s.labels.get(ctr.LABEL_HASH, ctr.container_hash(c)) != ctr.container_hash(c):
                    actions.to_kill[s.id] = Kill(
                        s, c, f"Init container {c['name']} definition changed")
                    starts.append(i)
                elif c.get("livenessProbe") and probes.liveness_failure(uid, c["name"]):
                    actions.to_kill[s.id] = Kill(
                        s, c, f"Init container {c['name']} failed liveness probe",
                        REASON_LIVENESS)
                    starts.append(i)
        elif s.state == "exited":
            if is_sidecar(c):
                starts.append(i)
            elif init_failed(s):
                if not restart:
                    actions.kill_pod = True
                    actions.init_to_start = []
                    return False
                starts.append(i)
            elif i == len(inits) - 1:
                initialized = True
            else:
                starts.append(i + 1)
        else:  # unknown
            if not is_sidecar(c) and not restart:
                actions.kill_pod = True
                actions.init_to_start = []
                return False
            actions.to_kill[s.id] = Kill(
                s, c, f'Init container is in "{s.state}" state, try killing it before restart')
            starts.append(i)
        previously = True
    if not previously:
        starts.append(0)
    actions.init_to_start = list(reversed(starts))
    return initialized


def compute_pod_actions(pod: Obj, status: PodRuntimeStatus, probes: Any) -> PodActions:
    spec = pod.get("spec") or {}
    regular = spec.get("containers") or []
    create, attempt, sandbox_id = sandbox_changed(pod, status)
    actions = PodActions(kill_pod=create, create_sandbox=create, sandbox_id=sandbox_id,
                         attempt=attempt)
    if create:
        if not restart_on_failure(pod) and attempt != 0 and status.containers:
            actions.create_sandbox = False  # a finished Never pod does not start over
            return actions
        to_start = [i for i, c in enumerate(regular)
                    if not (spec.get("restartPolicy") == "OnFailure" and
                            (s := status.latest(c["name"])) is not None and
                            s.state == "exited" and s.exit_code == 0)]
        initialized = any(status.latest(c["name"]) is not None for c in regular)
        if initialized and not to_start:
            actions.create_sandbox = False
            return actions
        if spec.get("initContainers"):
            actions.init_to_start = [0]
            return actions
        actions.to_start = to_start
        return actions
    initialized = _init_actions(pod, status, actions, probes)
    if actions.kill_pod or not initialized:
        return actions
    uid = pod["metadata"]["uid"]
    keep = 0
    for idx, c in enumerate(regular):
        s = status.latest(c["name"])
        if s is None or s.state != "running":
            if should_restart(c, pod, status):
                actions.to_start.append(idx)
                if s is not None and s.state == "unknown":
                    actions.to_kill[s.id] = Kill(
                        s, c, f'Container is in "{s.state}" state, try killing it before '
                              f"restart")
            continue
        restart = restart_on_failure(pod)
        reason = ""
        if s.labels.get(ctr.LABEL_HASH, ctr.container_hash(c)) != ctr.container_hash(c):
            message = f"Container {c['name']} definition changed"
            restart = True
        else:
            failure = probes.liveness_failure(uid, c["name"])
            if not failure:
                keep += 1
                continue
            message, reason = failure, REASON_LIVENESS
            restart = False  # the prober's message already says whether it restarts
            if restart_on_failure(pod):
                actions.to_start.append(idx)
        if restart:
            message += ", will be restarted"
            actions.to_start.append(idx)
        actions.to_kill[s.id] = Kill(s, c, message, reason)
    if keep == 0 and not actions.to_start:
        actions.kill_pod = True
        actions.init_to_start = []
    return actions
