"""kube-proxy's service health server (pkg/proxy/healthcheck/service_health.go): for every
Service of type LoadBalancer with externalTrafficPolicy Local the API allocates
spec.healthCheckNodePort, and the proxy answers HTTP on that port on every node address, so an
external load balancer sends traffic only to nodes that hold a ready endpoint of the Service.

Any request gets 200 when this node has at least one local ready endpoint (counted by distinct
IP, terminating endpoints not counted) and the proxy itself is healthy, else 503 — with the same
headers and the same tab-indented JSON body kube-proxy writes, so probes and people comparing
the output see no difference. A port that cannot be bound is logged (and, given a recorder,
reported as a FailedToStartServiceHealthcheck event) and tried again on the next sync; the sync
itself never fails because of it, as in kube.

Written on aiohttp's low-level `web.Server` with one asyncio listener per address and port:
the port set changes with every sync, which an `aiohttp.web.Application` + `AppRunner` per
port would only make heavier.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from aiohttp import web

from pocketkube.client.events import EventRecorder
from pocketkube.proxy.model import Endpoint, ServicePort

log = logging.getLogger("pocketkube.proxy.healthcheck")

ServiceName = tuple[str, str]  # (namespace, name)
SHUTDOWN_TIMEOUT = 2.0  # seconds open keep-alive connections get once their port closes


def body(name: ServiceName, count: int, proxy_healthy: bool) -> str:
    """The response body, byte for byte as kube-proxy writes it (tab-indented, no newline
    at the end)."""
    ns, svc = (_go_quote(s) for s in name)
    return (f'{{\n\t"service": {{\n\t\t"namespace": {ns},\n\t\t"name": {svc}\n\t}},\n'
            f'\t"localEndpoints": {count},\n\t"serviceProxyHealthy": '
            f'{"true" if proxy_healthy else "false"}\n}}')


def _go_quote(s: str) -> str:
    # Go's %q; object names are DNS labels/subdomains, so only '"' and '\\' can need escaping.
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def health_state(services: list[tuple[ServicePort, list[Endpoint]]], node_name: str
                 ) -> tuple[dict[ServiceName, int], dict[ServiceName, int]]:
    """(wanted, counts) for `ServiceHealthServer.sync` and `.set_local_endpoints` from the
    snapshot the proxier syncs: the health check port of each Service that has one (the API
    only allocates it for LoadBalancer + externalTrafficPolicy Local), and per Service the
    number of distinct IPs of ready endpoints on this node (kube's LocalReadyEndpoints:
    a pod serving two ports counts once; terminating pods count not at all)."""
    wanted: dict[ServiceName, int] = {}
    local_ips: dict[ServiceName, set[str]] = {}
    for sp, endpoints in services:
        name = (sp.namespace, sp.name)
        if sp.health_check_node_port and sp.external_policy_local_requested:
            wanted[name] = sp.health_check_node_port
        for ep in endpoints:
            if ep.ready and ep.node_name == node_name:
                local_ips.setdefault(name, set()).add(ep.ip)
    return wanted, {name: len(ips) for name, ips in local_ips.items()}


@dataclass
class _Instance:
    name: ServiceName
    port: int
    endpoints: int = 0
    servers: list[tuple[asyncio.Server, web.Server]] = field(default_factory=list)


class ServiceHealthServer:
    """One HTTP listener per health-checked Service and node address."""

    def __init__(self, node_name: str = "", addresses: Sequence[str] = ("0.0.0.0",),
                 proxy_healthy: Callable[[], bool] | None = None,
                 recorder: EventRecorder | None = None) -> None:
        self.node_name = node_name
        self.addresses = list(addresses)
        self._proxy_healthy = proxy_healthy or (lambda: True)
        self.recorder = recorder
        self._services: dict[ServiceName, _Instance] = {}

    @property
    def ports(self) -> dict[ServiceName, int]:
        """The Services being served now and their ports."""
        return {n: i.port for n, i in self._services.items()}

    async def sync(self, wanted: dict[ServiceName, int]) -> None:
        """Serve exactly `wanted` (Service -> health check port): close the listeners of
        Services no longer wanted or whose port changed, open the missing ones. A port that
        cannot be bound is logged and tried again on the next call."""
        for name, inst in list(self._services.items()):
            if wanted.get(name) != inst.port:
                log.info("Closing healthcheck service=%s/%s port=%d", *name, inst.port)
                del self._services[name]
                await _close(inst)
        for name, port in sorted(wanted.items()):
            if name in self._services:
                continue
            log.info("Opening healthcheck service=%s/%s port=%d", *name, port)
            inst = _Instance(name, port)
            err = await self._listen_all(inst)
            if err:
                self._failed(name, port, err)
                continue
            self._services[name] = inst

    def set_local_endpoints(self, counts: dict[ServiceName, int]) -> None:
        """The number of local ready endpoints of each Service; Services not named have 0."""
        for name, inst in self._services.items():
            inst.endpoints = counts.get(name, 0)

    async def close(self) -> None:
        instances = list(self._services.values())
        self._services.clear()
        for inst in instances:
            await _close(inst)

    async def _listen_all(self, inst: _Instance) -> str:
        """Listen on every address; on failure close what did open (so a retry, or another
        owner, can take the port) and return the error as Go's net.Listen words it."""
        loop = asyncio.get_running_loop()
        for host in self.addresses:
            handler = web.Server(self._handler(inst.name), access_log=None)
            try:
                server = await loop.create_server(handler, host, inst.port)
            except (OSError, OverflowError) as e:  # OverflowError: port beyond 65535
                await handler.shutdown(0)
                await _close(inst)
                errno = getattr(e, "errno", None)
                reason = os.strerror(errno).lower() if errno else str(e)
                return f"listen tcp {host}:{inst.port}: bind: {reason}"
            inst.servers.append((server, handler))
        return ""

    def _handler(self, name: ServiceName
                 ) -> Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]:
        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            inst = self._services.get(name)
            if inst is None:
                # A keep-alive connection outliving its port: kube logs and writes nothing.
                log.error("Received request for closed healthcheck service=%s/%s", *name)
                return web.Response(status=200)
            count, healthy = inst.endpoints, bool(self._proxy_healthy())
            return web.Response(
                status=200 if count and healthy else 503,
                body=body(name, count, healthy).encode(),
                headers={"Content-Type": "application/json",
                         "X-Content-Type-Options": "nosniff"})
        return handle

    def _failed(self, name: ServiceName, port: int, err: str) -> None:
        log.error("Failed to start healthcheck err=%r node=%s service=%s/%s port=%d",
                  err, self.node_name, *name, port)
        if self.recorder is None:
            return
        msg = (f'node {self.node_name} failed to start healthcheck "{name[0]}/{name[1]}" '
               f"on port {port}: {err}")
        # kube names the Service by a reference whose UID is "namespace/name".
        ref = {"kind": "Service", "apiVersion": "v1",
               "metadata": {"namespace": name[0], "name": name[1], "uid": f"{name[0]}/{name[1]}"}}
        self.recorder.record(ref, "Warning", "FailedToStartServiceHealthcheck", msg,
                             action="Listen")


async def _close(inst: _Instance) -> None:
    servers, inst.servers = inst.servers, []
    for server, handler in servers:
        server.close()
        with contextlib.suppress(Exception):
            await handler.shutdown(SHUTDOWN_TIMEOUT)
        with contextlib.suppress(Exception):
            await server.wait_closed()
