"""One probe worker per container and probe type (kube's pkg/kubelet/prober/worker.go).

A worker wakes every periodSeconds (after a random part of a period when the agent has just
started, so probes of adopted containers do not all fire at once), skips probing during
initialDelaySeconds, keeps liveness and readiness quiet until the startup probe has passed,
and changes its published result only after successThreshold successes or failureThreshold
failures in a row. A liveness or startup failure puts the worker on hold until the container
is replaced; a new container id resets everything. Time comes from the manager's clock, so
tests drive the schedule without sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from pocketkube.kubelet.prober.prober import (
    FAILURE,
    LIVENESS,
    READINESS,
    STARTUP,
    SUCCESS,
    UNKNOWN,
)

if TYPE_CHECKING:
    from pocketkube.kubelet.prober.manager import ProbeManager

log = logging.getLogger("pocketkube.kubelet.prober")

Obj = dict[str, Any]
INITIAL = {READINESS: FAILURE, LIVENESS: SUCCESS, STARTUP: UNKNOWN}


class Worker:
    def __init__(self, manager: ProbeManager, kind: str, uid: str, container: Obj) -> None:
        self.manager = manager
        self.kind = kind
        self.uid = uid
        self.container = container
        self.name: str = container["name"]
        spec = container[f"{kind}Probe"]
        self.period = float(spec.get("periodSeconds") or 10)
        self.initial_delay = int(spec.get("initialDelaySeconds") or 0)
        self.success_threshold = int(spec.get("successThreshold") or 1)
        self.failure_threshold = int(spec.get("failureThreshold") or 3)
        self.initial_value = INITIAL[kind]
        self.container_id = ""
        self.last_result: str | None = None
        self.result_run = 0
        self.on_hold = False
        self.finished = False
        self.rounds = 0  # wake-ups handled (probed or not): tests and debugging watch it
        self._first_at = 0.0  # when the first probe is due (after the initial jitter)
        self._started_at: float | None = None  # the container's start on the manager's clock
        self._trigger = asyncio.Event()
        self._progress = asyncio.Condition()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        clock = self.manager.clock
        self._first_at = clock.now()
        if self.period > clock.now() - self.manager.start_time:
            # Right after an agent (re)start: spread the first probes over a period.
            self._first_at += self.manager.rand() * self.period
        self.task = asyncio.get_running_loop().create_task(
            self.run(), name=f"probe-{self.kind}-{self.uid}-{self.name}")

    def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def trigger(self) -> None:
        """Probe now instead of at the next tick (kube's manualTriggerCh)."""
        self._trigger.set()

    async def wait_rounds(self, n: int) -> None:
        """Return once the worker has handled `n` wake-ups."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.rounds >= n or self.finished)

    async def run(self) -> None:
        clock = self.manager.clock
        try:
            if self._first_at > clock.now():
                await clock.sleep(self._first_at - clock.now())
            deadline = clock.now() + self.period
            while await self._round():
                deadline = await self._wait(deadline)
        finally:
            if self.container_id:
                self.manager.remove_result(self.kind, self.container_id)
            self.finished = True
            async with self._progress:
                self._progress.notify_all()

    async def _wait(self, deadline: float) -> float:
        """Sleep until the next tick or a trigger; the next deadline (ticks keep their cadence,
        missed ones are dropped, as with Go's Ticker)."""
        clock = self.manager.clock
        now = clock.now()
        while deadline <= now:
            deadline += self.period
        sleeper = asyncio.ensure_future(clock.sleep(deadline - now))
        triggered = asyncio.ensure_future(self._trigger.wait())
        try:
            await asyncio.wait({sleeper, triggered}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            triggered.cancel()
        self._trigger.clear()
        return deadline

    async def _round(self) -> bool:
        try:
            return await self.do_probe()
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug in one probe must not stop the worker (kube's HandleCrash)
            log.exception("%s probe worker for %s/%s", self.kind, self.uid, self.name)
            return True
        finally:
            self.rounds += 1
            async with self._progress:
                self._progress.notify_all()

    async def do_probe(self) -> bool:
        """Probe once and publish the result; whether the worker should go on."""
        m = self.manager
        state = m.pod_state(self.uid)
        if state is None:
            return True
        pod, pod_ip, containers = state
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Failed", "Succeeded"):
            return False
        status = containers.get(self.name)
        if status is None or not status.id:
            return True  # not created yet
        if status.id != self.container_id:
            if self.container_id:
                m.remove_result(self.kind, self.container_id)
            self.container_id = status.id
            m.set_result(self.uid, self.kind, status.id, self.initial_value)
            self.on_hold = False
            self.last_result = None
            self.result_run = 0
            self._started_at = None
        if self.on_hold:
            return True
        if status.state != "running":
            m.set_result(self.uid, self.kind, status.id, FAILURE)
            restart_policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
            return status.state != "exited" or restart_policy != "Never"
        if (pod.get("metadata") or {}).get("deletionTimestamp") and \
                self.kind in (LIVENESS, STARTUP):
            # A pod on its way out is not killed for failing probes: report success and stop.
            m.set_result(self.uid, self.kind, status.id, SUCCESS)
            return False
        if self._started_at is None:
            age = max(0.0, time.time() - status.started_at) if status.started_at else 0.0
            self._started_at = m.clock.now() - age
        if int(m.clock.now() - self._started_at) < self.initial_delay:
            return True
        if m.started(self.uid, self.name):
            if self.kind == STARTUP:
                return True  # the startup probe is done for this container
        elif self.kind != STARTUP:
            return True  # liveness and readiness wait for the startup probe
        result = await m.prober.probe(self.kind, pod, pod_ip, self.container, status.id)
        if result is None:
            return True  # errored: keep the previous result
        if self.last_result == result:
            self.result_run += 1
        else:
            self.last_result = result
            self.result_run = 1
        if (result == FAILURE and self.result_run < self.failure_threshold) or \
                (result == SUCCESS and self.result_run < self.success_threshold):
            return True
        m.set_result(self.uid, self.kind, status.id, result)
        if self.kind in (LIVENESS, STARTUP) and result == FAILURE:
            # The container will be killed: stop probing it until a new one runs.
            self.on_hold = True
            self.result_run = 0
        return True
