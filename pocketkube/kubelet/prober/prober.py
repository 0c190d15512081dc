"""Running one probe of one container and reporting it (kube's pkg/kubelet/prober/prober.go):
pick the mechanism from the probe spec, retry a probe that could not run at all up to three
times, and record the "Unhealthy"/"ProbeWarning" events with the kubelet's messages.
"""

from __future__ import annotations

import logging
from typing import Any

from pocketkube.client.events import EventRecorder
from pocketkube.kubelet.containers import container_field_path
from pocketkube.kubelet.prober import grpchealth, probes
from pocketkube.kubelet.runtime.interface import Runtime

log = logging.getLogger("pocketkube.kubelet.prober")

Obj = dict[str, Any]
MAX_RETRIES = 3  # attempts of a probe that errors (kube's maxProbeRetries)

LIVENESS = "liveness"
READINESS = "readiness"
STARTUP = "startup"
KINDS = (LIVENESS, READINESS, STARTUP)
TITLES = {LIVENESS: "Liveness", READINESS: "Readiness", STARTUP: "Startup"}

# A worker's result (kube's prober/results): what the kubelet acts on.
SUCCESS = "Success"
FAILURE = "Failure"
UNKNOWN = "UNKNOWN"


def probe_spec(container: Obj, kind: str) -> Obj | None:
    return container.get(f"{kind}Probe")


def involved(pod: Obj) -> Obj:
    """The pod as an event's involved object (watch objects carry kind; make sure)."""
    return {"kind": "Pod", "apiVersion": "v1", **pod}


class Prober:
    def __init__(self, runtime: Runtime, recorder: EventRecorder) -> None:
        self.runtime = runtime
        self.recorder = recorder

    async def probe(self, kind: str, pod: Obj, pod_ip: str, container: Obj,
                    container_id: str) -> str | None:  # fmt: skip
        """SUCCESS or FAILURE, or None when the probe errored (the worker keeps its previous
        result, as kube's worker throws an errored result away)."""
        spec = probe_spec(container, kind)
        if spec is None:
            return SUCCESS
        title = TITLES[kind]
        # Events name the container (kube's container reference), so two containers' failures
        # stay apart.
        where = container_field_path(pod, container.get("name", ""))
        error: probes.ProbeError | None = None
        for _ in range(MAX_RETRIES):
            try:
                result, output = await self.run(spec, pod, pod_ip, container, container_id)
                error = None
                break
            except probes.ProbeError as e:
                error = e
        if error is not None:
            log.debug("%s probe of %s/%s errored: %s", title, _name(pod), container.get("name"),
                      error)
            self.recorder.record(involved(pod), "Warning", "Unhealthy",
                                 f"{title} probe errored and resulted in unknown state: {error}",
                                 field_path=where)
            return None
        if result == probes.SUCCESS:
            return SUCCESS
        if result == probes.WARNING:
            self.recorder.record(involved(pod), "Warning", "ProbeWarning",
                                 f"{title} probe warning: {output}", field_path=where)
            return SUCCESS
        log.debug("%s probe of %s/%s failed: %s", title, _name(pod), container.get("name"),
                  output)
        self.recorder.record(involved(pod), "Warning", "Unhealthy",
                             f"{title} probe failed: {output}", field_path=where)
        return FAILURE

    async def run(self, spec: Obj, pod: Obj, pod_ip: str, container: Obj, container_id: str
                  ) -> tuple[str, str]:  # fmt: skip
        timeout = float(spec.get("timeoutSeconds") or 1)
        if spec.get("exec") is not None:
            return await probes.exec_action(self.runtime, container_id, spec["exec"], container,
                                            timeout)
        if spec.get("httpGet") is not None:
            return await probes.http_get(spec["httpGet"], container, pod_ip, timeout)
        if spec.get("tcpSocket") is not None:
            return await probes.tcp_socket(spec["tcpSocket"], container, pod_ip, timeout)
        if spec.get("grpc") is not None:
            return await grpchealth.grpc_action(spec["grpc"], pod_ip, timeout)
        meta = pod.get("metadata") or {}
        raise probes.ProbeError(f"missing probe handler for {meta.get('name', '')}_"
                                f"{meta.get('namespace', '')}({meta.get('uid', '')}):"
                                f"{container.get('name', '')}")


def _name(pod: Obj) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"
