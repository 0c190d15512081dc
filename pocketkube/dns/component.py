"""Cluster DNS as a component of `pocketkube server`: informers on Services, EndpointSlices and
Namespaces feed a ClusterView; once the local Node has an InternalIP the server listens there
(UDP and TCP, port 53 unless told otherwise) and publishes the `kube-dns` Service, Endpoints and
EndpointSlice that lead the cluster IP to it. If the node's address changes it moves; if the
kube-dns objects are deleted it puts them back.

Options (ctx.options): node_name (default: this host's name, lower case), port (53; 0 picks a
free one), upstreams (["ip[:port]", …]; default: the nameservers of resolv_conf),
resolv_conf ("/etc/resolv.conf"), cluster_domain ("cluster.local"), ttl (30).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pocketkube.client.informer import Informer
from pocketkube.client.rest import ApiClient, resource
from pocketkube.components import ComponentContext
from pocketkube.config import CLUSTER_DOMAIN, SERVICE_CIDR
from pocketkube.dns import publish
from pocketkube.dns.answer import Zone
from pocketkube.dns.server import DnsServer
from pocketkube.dns.upstream import Upstream, parse_address, resolv_conf_nameservers
from pocketkube.dns.view import ClusterView

log = logging.getLogger("pocketkube.dns")

NAME = "cluster-dns"
RETRY = 1.0  # first wait before another attempt to bind or publish; doubles up to MAX_RETRY
MAX_RETRY = 60.0
Obj = dict[str, Any]


@dataclass
class DnsOptions:
    node_name: str = field(default_factory=lambda: socket.gethostname().lower())
    port: int = 53
    upstreams: list[str] | None = None
    resolv_conf: str = "/etc/resolv.conf"
    cluster_domain: str = CLUSTER_DOMAIN
    ttl: int = 30

    @classmethod
    def from_dict(cls, options: dict[str, Any]) -> DnsOptions:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown {NAME} options: {', '.join(unknown)}")
        return cls(**{k: v for k, v in options.items() if v is not None})


def internal_ip(node: Obj | None) -> str:
    for a in ((node or {}).get("status") or {}).get("addresses") or []:
        if a.get("type") == "InternalIP" and a.get("address"):
            return a["address"]
    return ""


class ClusterDns:
    def __init__(self, client: ApiClient, options: DnsOptions,
                 service_cidr: str = SERVICE_CIDR) -> None:
        self.client = client
        self.options = options
        self.cluster_ip = publish.cluster_dns_ip(service_cidr)
        self.view = ClusterView(synced=False)
        self.server: DnsServer | None = None
        self.node_ip = ""
        self.port = 0
        self.published = False
        self.wake = asyncio.Event()
        self.informers: list[Informer] = []
        self._status = "starting"
        self._retry = RETRY

    async def health(self) -> tuple[bool, str]:
        if self.server is None or not self.view.synced or not self.published:
            return False, self._status
        return True, f"serving {self.node_ip}:{self.port}, {len(self.view.services)} services"

    # -- informers --------------------------------------------------------------------------
    def _informers(self) -> list[Informer]:
        v = self.view
        services = Informer(self.client, resource("", "services"))
        services.on(v.set_service, lambda _old, new: v.set_service(new), self._service_gone)
        slices = Informer(self.client, resource("discovery.k8s.io", "endpointslices"))
        slices.on(v.set_slice, lambda _old, new: v.set_slice(new), self._slice_gone)
        namespaces = Informer(self.client, resource("", "namespaces"))
        namespaces.on(v.set_namespace, lambda _old, new: v.set_namespace(new),
                      v.delete_namespace)
        nodes = Informer(self.client, resource("", "nodes"),
                         field_selector=f"metadata.name={self.options.node_name}")
        nodes.on(self._node_changed, lambda _old, new: self._node_changed(new),
                 lambda _obj: None)
        return [services, slices, namespaces, nodes]

    def _ours(self, obj: Obj) -> bool:
        meta = obj["metadata"]
        if meta.get("namespace") != publish.NAMESPACE:
            return False
        if obj.get("kind") == "EndpointSlice" or "addressType" in obj:
            return meta["name"] == publish.slice_name(self.options.node_name)
        return meta["name"] == publish.SERVICE

    def _service_gone(self, obj: Obj) -> None:
        self.view.delete_service(obj)
        if self._ours(obj):
            self.published = False
            self.wake.set()

    def _slice_gone(self, obj: Obj) -> None:
        self.view.delete_slice(obj)
        if self._ours(obj):
            self.published = False
            self.wake.set()

    def _node_changed(self, node: Obj) -> None:
        if internal_ip(node) != self.node_ip:
            self.wake.set()

    # -- serving ----------------------------------------------------------------------------
    def _upstream(self, ip: str, port: int) -> Upstream:
        opts = self.options
        if opts.upstreams is not None:
            servers = [parse_address(u) for u in opts.upstreams]
        else:
            servers = resolv_conf_nameservers(Path(opts.resolv_conf))
        return Upstream(servers, exclude={(ip, port), (self.cluster_ip, 53)})

    async def _bind(self, ip: str) -> None:
        if self.server is not None:
            await self.server.close()
            self.server = None
        zone = Zone(self.options.cluster_domain, self.options.ttl, (ip,))
        server = DnsServer(self.view, zone, self._upstream(ip, self.options.port))
        self.port = await server.start(ip, self.options.port)
        server.upstream.servers = [s for s in server.upstream.servers if s != (ip, self.port)]
        self.server, self.node_ip, self.published = server, ip, False

    async def reconcile(self, node: Obj | None) -> bool:
        """Bind to the node's address and publish; False if something must be retried."""
        ip = internal_ip(node)
        if not ip:
            self._status = f"waiting for node {self.options.node_name} to have an InternalIP"
            return True
        try:
            if ip != self.node_ip or self.server is None:
                await self._bind(ip)
        except OSError as e:
            self._failed(f"cannot listen on {ip}:{self.options.port}: {e}")
            return False
        if not self.published:
            try:
                await publish.publish(self.client, self.cluster_ip, ip, self.port,
                                      self.options.node_name,
                                      ((node or {}).get("metadata") or {}).get("uid", ""))
                self.published = True
            except Exception as e:
                self._failed(f"publishing {publish.NAMESPACE}/{publish.SERVICE}: {e}")
                return False
        self._retry = RETRY
        return True

    def _failed(self, status: str) -> None:
        if status != self._status:  # the same failure again is not logged again
            log.warning("%s; retrying", status)
        self._status = status

    async def run(self) -> None:
        self.informers = self._informers()
        tasks = [i.start() for i in self.informers]
        waiter: asyncio.Future[Any] | None = None
        try:
            self._status = "syncing services, endpointslices and namespaces"
            for i in self.informers:
                await i.wait_synced(timeout=60.0)
            self.view.synced = True
            node_informer = self.informers[-1]
            while True:
                self.wake.clear()
                node = node_informer.get(self.options.node_name)
                if not await self.reconcile(node):
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), self._retry)
                    self._retry = min(self._retry * 2, MAX_RETRY)
                    continue
                waiter = asyncio.ensure_future(self.wake.wait())
                done, _ = await asyncio.wait([waiter, *tasks],
                                             return_when=asyncio.FIRST_COMPLETED)
                if waiter not in done:
                    waiter.cancel()
                    for t in done:
                        t.result()
        finally:
            if waiter is not None:
                waiter.cancel()
            for i in self.informers:
                await i.stop()
            if self.server is not None:
                await self.server.close()


async def run(ctx: ComponentContext) -> None:
    """The component entry point (ServerConfig.components["cluster-dns"])."""
    dns = ClusterDns(ctx.client, DnsOptions.from_dict(ctx.options), ctx.config.service_cidr)
    ctx.health = dns.health
    await dns.run()


def component_config(**options: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(components, component_options) entries that make a ServerConfig run cluster DNS,
    e.g. `component_config()` on port 53 or `component_config(port=0)`."""
    return {NAME: run}, {NAME: options}
