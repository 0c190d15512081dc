"""The node agent's probe manager (kube's pkg/kubelet/prober/prober_manager.go): starts one
worker per container and probe type, keeps the workers' results per container id, and answers
the pod workers' questions: is this container started, is it ready, must it be killed for
failing its liveness or startup probe.

Results are kept until they change; every change calls `on_change(pod uid)` so the pod worker
re-syncs (a liveness failure kills the container, a readiness change updates the pod status).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

from pocketkube.client.events import EventRecorder
from pocketkube.client.workqueue import Clock
from pocketkube.kubelet.prober.prober import (
    FAILURE,
    KINDS,
    LIVENESS,
    READINESS,
    STARTUP,
    SUCCESS,
    Prober,
    probe_spec,
)
from pocketkube.kubelet.prober.worker import Worker
from pocketkube.kubelet.runtime.interface import ContainerStatus, Runtime

log = logging.getLogger("pocketkube.kubelet.prober")

Obj = dict[str, Any]
PodState = tuple[Obj, str, dict[str, ContainerStatus]]


def probed_containers(pod: Obj) -> list[Obj]:
    """Containers that can have probes: app containers and restartable init containers
    (sidecars)."""
    spec = pod.get("spec") or {}
    sidecars = [c for c in spec.get("initContainers") or []
                if c.get("restartPolicy") == "Always"]
    return [*sidecars, *(spec.get("containers") or [])]


class ProbeManager:
    def __init__(self, runtime: Runtime, recorder: EventRecorder, *, clock: Clock,
                 on_change: Callable[[str], None],
                 rand: Callable[[], float] = random.random) -> None:
        self.prober = Prober(runtime, recorder)
        self.clock = clock
        self.on_change = on_change
        self.rand = rand  # the initial jitter's randomness (tests pass a constant)
        self.start_time = clock.now()  # when the agent started (for the initial jitter)
        self._pods: dict[str, PodState] = {}
        self._workers: dict[tuple[str, str, str], Worker] = {}
        self._results: dict[tuple[str, str], str] = {}  # (kind, container id) -> result

    # --- driven by the pod workers ---------------------------------------------------------

    def sync(self, pod: Obj, pod_ip: str, containers: dict[str, ContainerStatus]) -> None:
        """Record the pod's latest state and make sure every probed container that exists has
        its workers (a finished worker is replaced when its container is)."""
        uid = pod["metadata"]["uid"]
        self._pods[uid] = (pod, pod_ip, dict(containers))
        for container in probed_containers(pod):
            status = containers.get(container["name"])
            if status is None:
                continue
            for kind in KINDS:
                if probe_spec(container, kind) is None:
                    continue
                key = (uid, container["name"], kind)
                worker = self._workers.get(key)
                if worker is not None and not (worker.finished and
                                               worker.container_id != status.id):
                    continue
                worker = Worker(self, kind, uid, container)
                self._workers[key] = worker
                worker.start()

    def remove_pod(self, uid: str) -> None:
        """Stop the pod's workers and forget its results."""
        for key in [k for k in self._workers if k[0] == uid]:
            worker = self._workers.pop(key)
            worker.stop()
            if worker.container_id:
                self._results.pop((worker.kind, worker.container_id), None)
        self._pods.pop(uid, None)

    def close(self) -> None:
        for uid in {k[0] for k in self._workers}:
            self.remove_pod(uid)

    # --- queries -----------------------------------------------------------------------------

    def started(self, uid: str, name: str) -> bool:
        """Running, and past its startup probe if it has one."""
        status = self._status(uid, name)
        if status is None or status.state != "running":
            return False
        result = self._results.get((STARTUP, status.id))
        if result is not None:
            return result == SUCCESS
        return (uid, name, STARTUP) not in self._workers

    def ready(self, uid: str, name: str) -> bool:
        """Started, and passing its readiness probe if it has one. Asking about a started
        container whose readiness is not known yet makes its worker probe now, as kube does."""
        if not self.started(uid, name):
            return False
        status = self._status(uid, name)
        assert status is not None
        if self._results.get((READINESS, status.id)) == SUCCESS:
            return True
        worker = self._workers.get((uid, name, READINESS))
        if worker is None:
            return True
        worker.trigger()
        return False

    def liveness_failure(self, uid: str, name: str) -> str | None:
        """Why the running container must be killed (its liveness or startup probe failed
        failureThreshold times), or None. Cleared once the container is replaced."""
        status = self._status(uid, name)
        if status is None or status.state != "running":
            return None
        for kind in (LIVENESS, STARTUP):
            if self._results.get((kind, status.id)) == FAILURE:
                pod = self._pods[uid][0]
                message = f"Container {name} failed {kind} probe"
                if (pod.get("spec") or {}).get("restartPolicy") != "Never":
                    message += ", will be restarted"
                return message
        return None

    def result(self, uid: str, name: str, kind: str) -> str | None:
        """The published result of one probe for the container's current instance."""
        status = self._status(uid, name)
        return None if status is None else self._results.get((kind, status.id))

    def worker(self, uid: str, name: str, kind: str) -> Worker | None:
        return self._workers.get((uid, name, kind))

    # --- used by the workers -----------------------------------------------------------------

    def pod_state(self, uid: str) -> PodState | None:
        return self._pods.get(uid)

    def set_result(self, uid: str, kind: str, container_id: str, result: str) -> None:
        key = (kind, container_id)
        if self._results.get(key) == result:
            return
        self._results[key] = result
        try:
            self.on_change(uid)
        except Exception:
            log.exception("probe result change handler failed for pod %s", uid)

    def remove_result(self, kind: str, container_id: str) -> None:
        self._results.pop((kind, container_id), None)

    def _status(self, uid: str, name: str) -> ContainerStatus | None:
        state = self._pods.get(uid)
        return None if state is None else state[2].get(name)
