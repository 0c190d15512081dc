"""The iptables-mode proxier: one sync = render the full rule set (rules.build) and apply it in
one `iptables-restore --noflush` transaction.

Before the first sync (and after a failed one, or on the periodic full resync) it reads the
tables once to learn which jump rules are missing and which of its old service chains exist
(its own cluster's only: iptables.owned), so stale chains are deleted and the jumps are
inserted in the same transaction; in between it remembers the chains it wrote itself and runs
no `iptables-save` at all. Empty KUBE-PROXY-CANARY chains tell it when someone deleted its
chains (`tables_intact`), as in kube-proxy. After each applied sync it deletes stale UDP
conntrack entries (conntrack.py) and serves the health-check node ports of Local load
balancers (healthcheck.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace

from pocketkube.proxy import conntrack, iptables
from pocketkube.proxy.chains import Chains
from pocketkube.proxy.changetracker import Snapshot
from pocketkube.proxy.healthcheck import ServiceHealthServer, health_state
from pocketkube.proxy.model import Endpoint, ServicePort
from pocketkube.proxy.rules import NodeInfo, RuleSet, build

log = logging.getLogger("pocketkube.proxy")

FULL_SYNC_PERIOD = 60.0


class IptablesProxier:
    def __init__(self, node: NodeInfo, health: ServiceHealthServer | None = None) -> None:
        self.node = node
        # healthCheckNodePorts of externalTrafficPolicy=Local load balancers.
        self.health = health or ServiceHealthServer(node.name)
        self._applied: list[tuple[ServicePort, list[Endpoint]]] = []  # the last sync's input
        self.chains = Chains(node.tag)
        self.node = replace(node, canary=True)
        self._known_chains: set[str] | None = None  # None: read the tables first
        self._last_full = 0.0
        self.rules: RuleSet | None = None
        self.services = 0
        self.sync_seconds = 0.0
        # Called with the applied rule set after every successful sync (benchmarks, tests).
        self.listeners: list[Callable[[RuleSet], None]] = []

    def node_info(self, snap: Snapshot) -> NodeInfo:
        return replace(self.node, ip=self.node.ip or snap.node_ip,
                       zone=self.node.zone or snap.node_zone)

    async def tables_intact(self) -> bool:
        """False (and the next sync reads the tables again) when the canary chains are gone."""
        if self._known_chains is None or await iptables.canary_present(self.chains):
            return True
        log.warning("the proxy's iptables chains were flushed; rewriting them")
        self._known_chains = None
        return False

    async def sync(self, snap: Snapshot) -> None:
        start = time.monotonic()
        jumps: list = []
        if self._known_chains is None or start - self._last_full > FULL_SYNC_PERIOD:
            jumps, self._known_chains = await iptables.read_state(self.chains)
            self._last_full = start
            if jumps:
                log.info("inserting %d jump rules into the built-in chains", len(jumps))
        rs = build(snap.services, self.node_info(snap), self._known_chains)
        try:
            await iptables.restore(rs.text(jumps))
        except Exception:
            self._known_chains = None  # the tables are unknown now: read them again
            raise
        self._known_chains = set(rs.active_nat_chains)
        self.rules = rs
        # Only once the rules are in: UDP flows to gone endpoints would otherwise stick.
        await conntrack.clean_stale_entries(self._applied, snap.services)
        self._applied = snap.services
        wanted, counts = health_state(snap.services, self.node.name)
        await self.health.sync(wanted)
        self.health.set_local_endpoints(counts)
        self.services = len(snap.services)
        self.sync_seconds = time.monotonic() - start
        log.debug("iptables sync: %d service ports, %d nat rules in %.3fs",
                  self.services, len(rs.nat_rules), self.sync_seconds)
        for listener in list(self.listeners):
            listener(rs)
