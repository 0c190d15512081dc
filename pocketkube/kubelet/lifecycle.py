"""Container lifecycle hooks and graceful stops (kube's pkg/kubelet/lifecycle/handlers.go and
kuberuntime_container.go killContainer/executePreStopHook).

- postStart runs right after the container starts; when it fails the container is killed
  (event FailedPostStartHook) and the start counts as failed (PostStartHookError).
- A stop runs preStop first, inside the grace period, then asks the runtime to stop the
  container with whatever is left (at least 2 s, kube's minimum), SIGKILL after that.
- The grace period is the pod's deletionGracePeriodSeconds when it is being deleted, else its
  terminationGracePeriodSeconds (a liveness/startup probe's own value for probe kills), else 2.

Time goes through the injected clock, so a preStop that outlives the grace period is cut off
in tests without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import aiohttp

from pocketkube.client.workqueue import Clock
from pocketkube.kubelet.containers import LABEL_GRACE, LABEL_PRESTOP, format_pod, record
from pocketkube.kubelet.runtime.interface import ContainerStatus, Runtime

log = logging.getLogger("pocketkube.kubelet.lifecycle")
Obj = dict[str, Any]

MINIMUM_GRACE = 2
DEFAULT_GRACE = 30  # the API's default terminationGracePeriodSeconds (static pods may lack it)
HOOK_EXEC_TIMEOUT = 3600.0  # kube runs hooks without a timeout of their own
REASON_LIVENESS = "liveness"
REASON_STARTUP = "startup"


def deletion_grace(pod: Obj) -> int | None:
    value = (pod.get("metadata") or {}).get("deletionGracePeriodSeconds")
    return int(value) if value is not None else None


def termination_grace(pod: Obj, container: Obj | None, reason: str = "") -> int:
    """kube's setTerminationGracePeriod."""
    deleting = deletion_grace(pod)
    if deleting is not None:
        return deleting
    spec = pod.get("spec") or {}
    pod_value = spec.get("terminationGracePeriodSeconds")
    if pod_value is None:
        pod_value = DEFAULT_GRACE if spec else MINIMUM_GRACE
    probe_key = {REASON_LIVENESS: "livenessProbe", REASON_STARTUP: "startupProbe"}.get(reason)
    probe = (container or {}).get(probe_key) if probe_key else None
    if probe and probe.get("terminationGracePeriodSeconds") is not None:
        return int(probe["terminationGracePeriodSeconds"])
    return int(pod_value)


def pod_grace(pod: Obj, current: int = 0, override: int | None = None) -> int:
    """The grace period for terminating the whole pod (pod_workers'
    calculateEffectiveGracePeriod): it only ever shrinks, and is at least 1."""
    grace = current
    for value in (deletion_grace(pod), override):
        if value is not None and (grace == 0 or value < grace):
            grace = value
    if grace == 0:
        value = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
        grace = DEFAULT_GRACE if value is None else int(value)
    return max(grace, 1)


def _resolve_port(port: Any, container: Obj) -> int:
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"couldn't find port: {port} in {container.get('ports') or []}")


class Lifecycle:
    def __init__(self, runtime: Runtime, recorder: Any, clock: Clock) -> None:
        self.runtime = runtime
        self.recorder = recorder
        self.clock = clock

    async def run_hook(self, pod: Obj, container: Obj, container_id: str, handler: Obj,
                       pod_ip: str) -> str | None:  # fmt: skip
        """Run one lifecycle handler; the failure message, or None when it worked."""
        name = container.get("name", "")
        where = f'for Container "{name}" in Pod "{format_pod(pod)}"'
        if handler.get("exec") is not None:
            argv = list(handler["exec"].get("command") or [])
            shown = "[" + " ".join(argv) + "]"
            try:
                result = await self.runtime.exec_sync(container_id, argv, HOOK_EXEC_TIMEOUT)
            except Exception as e:
                return f"Exec lifecycle hook ({shown}) {where} failed - error: {e}, message: \"\""
            if result.exit_code != 0:
                output = result.output.decode(errors="replace")
                err = f"command '{' '.join(argv)}' exited with {result.exit_code}: "
                return (f"Exec lifecycle hook ({shown}) {where} failed - error: {err}, "
                        f"message: {json.dumps(output)}")
            return None
        if handler.get("httpGet") is not None:
            get = handler["httpGet"]
            try:
                await self._http_get(get, container, pod_ip)
            except Exception as e:
                return f"HTTP lifecycle hook ({get.get('path', '')}) {where} failed - error: {e}"
            return None
        if handler.get("sleep") is not None:
            await self.clock.sleep(float(handler["sleep"].get("seconds") or 0))
            return None
        return f"Cannot run handler: invalid handler: {handler}"

    async def _http_get(self, get: Obj, container: Obj, pod_ip: str) -> None:
        host = get.get("host") or pod_ip or "127.0.0.1"
        port = _resolve_port(get.get("port"), container)
        scheme = (get.get("scheme") or "HTTP").lower()
        path = get.get("path") or "/"
        if not path.startswith("/"):
            path = "/" + path
        headers = {h["name"]: h.get("value", "") for h in get.get("httpHeaders") or []}
        headers.setdefault("User-Agent", "kube-lifecycle/1.32")
        host_part = f"[{host}]" if ":" in host else host
        async with aiohttp.ClientSession() as session, session.get(
                f"{scheme}://{host_part}:{port}{path}", headers=headers, ssl=False) as resp:
            await resp.read()

    async def _within(self, coro: Any, seconds: float) -> None:
        """Run `coro` for at most `seconds` of the clock's time."""
        task = asyncio.ensure_future(coro)
        timer = asyncio.ensure_future(self.clock.sleep(seconds))
        try:
            await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            with contextlib.suppress(asyncio.CancelledError):
                await timer

    async def kill(self, pod: Obj, container: Obj | None, status: ContainerStatus, *,
                   message: str = "", reason: str = "", grace_override: int | None = None,
                   pod_ip: str = "") -> None:
        """Stop one container: Killing event, preStop within the grace period, then the
        runtime's stop with the time left."""
        if container is None:
            container = _restored_spec(status)
        grace = termination_grace(pod, container, reason)
        if not pod.get("spec") and LABEL_GRACE in status.labels:
            grace = int(status.labels[LABEL_GRACE])
        name = container.get("name", status.name)
        record(self.recorder, pod, "Normal", "Killing", message or f"Stopping container {name}",
               name)
        if grace_override is not None:
            grace = grace_override
        pre_stop = (container.get("lifecycle") or {}).get("preStop")
        if pre_stop and grace > 0 and status.state == "running":
            start = self.clock.now()
            await self._within(self._pre_stop(pod, container, status.id, pre_stop, pod_ip),
                               grace)
            grace -= int(self.clock.now() - start)
        grace = max(grace, MINIMUM_GRACE)
        log.info("stopping container %s of pod %s with a grace period of %ss", name,
                 format_pod(pod), grace)
        await self.runtime.stop_container(status.id, grace)

    async def _pre_stop(self, pod: Obj, container: Obj, container_id: str, handler: Obj,
                        pod_ip: str) -> None:  # fmt: skip
        failure = await self.run_hook(pod, container, container_id, handler, pod_ip)
        if failure:
            log.warning("%s", failure)
            # The message stays out of the event so secrets in it do not leak (as kube).
            record(self.recorder, pod, "Warning", "FailedPreStopHook", "PreStopHook failed",
                   container.get("name", ""))


def _restored_spec(status: ContainerStatus) -> Obj:
    """The little that is needed to stop a container whose pod spec is gone, from its labels."""
    spec: Obj = {"name": status.name}
    if LABEL_PRESTOP in status.labels:
        with contextlib.suppress(ValueError):
            spec["lifecycle"] = {"preStop": json.loads(status.labels[LABEL_PRESTOP])}
    return spec
