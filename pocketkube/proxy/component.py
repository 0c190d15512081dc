"""The "proxy" component (kube-proxy): `run(ctx)` watches Services, EndpointSlices and its Node
and keeps this node's Service forwarding in step with them.

Mode: "iptables" when running as root with the iptables tools present, else "userspace"
(NodePorts on 127.0.0.1 only); ctx.options["mode"] forces one. The node is
socket.gethostname().lower() (the node agent's default name) unless ctx.options["node_name"].
Rules are left in place when the component stops, as kube-proxy leaves them; `cleanup()`
removes them (`pocketkube proxy --cleanup`, cluster deletion).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from dataclasses import dataclass, fields
from typing import Any

from pocketkube.components import ComponentContext
from pocketkube.proxy import iptables
from pocketkube.proxy.chains import tag_for
from pocketkube.proxy.changetracker import ChangeTracker
from pocketkube.proxy.proxier import IptablesProxier
from pocketkube.proxy.rules import NodeInfo
from pocketkube.proxy.userspace import UserspaceProxier

log = logging.getLogger("pocketkube.proxy")

NAME = "proxy"

cleanup = iptables.cleanup


@dataclass
class ProxyOptions:
    """What ctx.options may hold (all optional)."""

    node_name: str | None = None
    mode: str | None = None  # "iptables" | "userspace"; None: choose
    coalesce: float = 0.1  # seconds a burst of changes may gather before one sync
    resync: float = 30.0
    localhost_nodeports: bool = True
    nodeport_addresses: list[str] | None = None  # None: every local address
    masquerade_all: bool = False
    canary_interval: float = 10.0  # seconds between checks that nobody flushed the tables

    @classmethod
    def from_dict(cls, options: dict[str, Any]) -> ProxyOptions:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown proxy options: {', '.join(unknown)}")
        return cls(**{k: v for k, v in options.items() if v is not None})


def choose_mode(requested: str | None) -> tuple[str, str]:
    """(mode, why)."""
    if requested in ("iptables", "userspace"):
        return requested, "requested"
    if requested:
        raise ValueError(f"unknown proxy mode {requested!r}")
    if os.geteuid() != 0:
        return "userspace", "not running as root"
    if not iptables.available():
        return "userspace", "iptables not found"
    return "iptables", "root with iptables"


class Proxy:
    def __init__(self, ctx: ComponentContext, options: ProxyOptions) -> None:
        self.options = options
        self.node_name = options.node_name or socket.gethostname().lower()
        self.mode, why = choose_mode(options.mode)
        log.info("proxy for node %s: %s mode (%s)", self.node_name, self.mode, why)
        self.proxier: IptablesProxier | UserspaceProxier
        if self.mode == "iptables":
            liberal = iptables.prepare_node(options.localhost_nodeports)
            self.proxier = IptablesProxier(NodeInfo(
                name=self.node_name, cluster_cidr=ctx.config.cluster_cidr,
                localhost_nodeports=options.localhost_nodeports,
                nodeport_addresses=list(options.nodeport_addresses or []),
                masquerade_all=options.masquerade_all, conntrack_tcp_liberal=liberal,
                tag=tag_for(ctx.config.service_cidr)))
        else:
            self.proxier = UserspaceProxier(self.node_name)
        self.tracker = ChangeTracker(ctx.client, self.node_name, self.proxier.sync,
                                     coalesce=options.coalesce, resync=options.resync)

    async def health(self) -> tuple[bool, str]:
        t = self.tracker
        if t.last_sync is None:
            return False, t.last_error or "waiting for the first sync"
        ago = time.monotonic() - t.last_sync
        text = f"{self.mode} mode, {t.syncs} syncs, last {ago:.0f}s ago"
        if t.last_error:
            return False, f"{text}; last sync failed: {t.last_error}"
        return True, text

    async def _watch_canary(self, proxier: IptablesProxier) -> None:
        while True:
            await asyncio.sleep(self.options.canary_interval)
            if not await proxier.tables_intact():
                self.tracker.request_sync()

    async def run(self) -> None:
        canary = None
        if isinstance(self.proxier, IptablesProxier):
            canary = asyncio.create_task(self._watch_canary(self.proxier))
        try:
            await self.tracker.run()
        finally:
            if canary is not None:
                canary.cancel()
            if isinstance(self.proxier, UserspaceProxier):
                await self.proxier.close()
            else:
                await self.proxier.health.close()


async def run(ctx: ComponentContext) -> None:
    """The component entry point (ServerConfig.components["proxy"])."""
    proxy = Proxy(ctx, ProxyOptions.from_dict(ctx.options))
    ctx.health = proxy.health
    await proxy.run()


def component_config(**options: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(components, component_options) entries that make a ServerConfig run the proxy."""
    return {NAME: run}, {NAME: {k: v for k, v in options.items() if v is not None}}
