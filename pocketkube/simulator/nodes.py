"""Simulated nodes: registration, lease renewal and status heartbeats, as the kubelet's node
status loop and node lease controller do them, for thousands of nodes in one process.

Cost is what matters at 5000 nodes, so: nodes register in batches with a bounded number of
API writes in flight; each node renews its Lease every 10 s, the renewals spread evenly over
the interval (one PUT each, no read first); the Ready condition's heartbeat is refreshed only
every 5 minutes, as the kubelet does when nothing changed, or at once if something else marked
the node not Ready. One label-selected watch follows every simulated node: it carries node IPAM's
spec.podCIDR to the pods and notices a node deleted by a user, which is then left alone (a
kubelet whose Node was deleted does not recreate it either).

Only nodes named `<prefix><i>` that carry the simulated label are ever written: a node of the
same name without the label belongs to something else and is skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from pocketkube.api import errors
from pocketkube.client.informer import Informer
from pocketkube.client.rest import ApiClient, resource
from pocketkube.client.workqueue import Clock
from pocketkube.simulator import addresses, nodespec
from pocketkube.simulator.nodespec import NodeShape
from pocketkube.simulator.timing import Spreader, WallClock

log = logging.getLogger("pocketkube.simulator")

NODES = resource("", "nodes")
LEASES = resource("coordination.k8s.io", "leases")
Obj = dict[str, Any]


@dataclass
class SimNode:
    name: str
    index: int
    ip: str
    derived_cidr: str
    uid: str = ""
    pod_cidrs: list[str] = field(default_factory=list)  # spec.podCIDRs, once set
    active: bool = False  # registered and not deleted since

    @property
    def cidrs(self) -> list[str]:
        return self.pod_cidrs or [self.derived_cidr]


@dataclass
class NodeTimings:
    lease_interval: float = 10.0
    lease_duration: int = 40
    status_interval: float = 300.0
    batch_size: int = 100


class NodeManager:
    def __init__(
        self,
        client: ApiClient,
        count: int,
        prefix: str,
        shape: NodeShape,
        clock: Clock,
        wall: WallClock,
        limit: asyncio.Semaphore,
        cluster_cidr: str,
        timings: NodeTimings | None = None,
    ) -> None:
        self.client = client
        self.shape = shape
        self.clock = clock
        self.wall = wall
        self.limit = limit
        self.timings = timings or NodeTimings()
        self.nodes = {
            f"{prefix}{i}": SimNode(
                f"{prefix}{i}", i, addresses.node_ip(i), addresses.derived_pod_cidr(i, cluster_cidr)
            )
            for i in range(count)
        }
        self.informer = Informer(client, NODES, label_selector=f"{nodespec.SIMULATED_LABEL}=true")
        self.informer.on(
            add=self._seen, update=lambda _old, new: self._seen(new), delete=self._deleted
        )
        t = self.timings
        self.leases = Spreader("lease renewal", clock, t.lease_interval, self.renew_lease, limit)
        self.heartbeats = Spreader("node status", clock, t.status_interval, self.heartbeat, limit)
        self.registered = asyncio.Event()
        self.registration_seconds: float | None = None
        self.skipped: list[str] = []

    # --- queries --------------------------------------------------------------------------------
    def owns(self, name: str | None) -> SimNode | None:
        node = self.nodes.get(name or "")
        return node if node is not None and node.active else None

    @property
    def active_count(self) -> int:
        return sum(1 for n in self.nodes.values() if n.active)

    # --- watch ----------------------------------------------------------------------------------
    def _seen(self, obj: Obj) -> None:
        node = self.nodes.get(obj["metadata"]["name"])
        if node is None:
            return
        node.uid = obj["metadata"].get("uid", node.uid)
        spec = obj.get("spec") or {}
        node.pod_cidrs = list(
            spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else [])
        )
        if node.active and not _ready(obj) and node.name in self.heartbeats:
            # Something (the node lifecycle controller) gave up on this node: report at once.
            self.heartbeats.add(node.name, 0.0)

    def _deleted(self, obj: Obj) -> None:
        node = self.nodes.get(obj["metadata"]["name"])
        if node is None or not node.active:
            return
        log.info("simulated node %s was deleted; no longer simulating it", node.name)
        node.active = False
        self.leases.remove(node.name)
        self.heartbeats.remove(node.name)

    # --- registration ---------------------------------------------------------------------------
    async def start(self) -> None:
        self.informer.start()
        await self.informer.wait_synced(timeout=120)

    async def register_all(self) -> None:
        started = time.monotonic()
        nodes = list(self.nodes.values())
        n = len(nodes)
        size = max(self.timings.batch_size, 1)
        for first in range(0, n, size):
            batch = nodes[first : first + size]
            await asyncio.gather(*(self._register_logged(node) for node in batch))
            for node in batch:
                if node.active:
                    # Spread each node's lease renewals and heartbeats over their intervals
                    # (the first lease came with the registration).
                    lease_delay = self.timings.lease_interval * node.index / n
                    if lease_delay < 1.0:
                        lease_delay += self.timings.lease_interval
                    self.leases.add(node.name, lease_delay)
                    self.heartbeats.add(
                        node.name, self.timings.status_interval * (node.index + 1) / n
                    )
            log.debug("registered %d/%d simulated nodes", first + len(batch), n)
        self.registration_seconds = time.monotonic() - started
        log.info(
            "registered %d simulated nodes in %.1fs", self.active_count, self.registration_seconds
        )
        self.registered.set()

    async def _register_logged(self, node: SimNode) -> None:
        backoff = 0.5
        while True:
            try:
                await self.register(node)
                if node.active:
                    # Like the kubelet's lease controller, hold the lease from the start.
                    async with self.limit:
                        await self.renew_lease(node.name)
                return
            except errors.StatusError as e:
                log.warning("registering node %s failed: %s", node.name, e.message)
            except (TimeoutError, OSError) as e:
                log.warning("registering node %s failed: %s", node.name, e)
            await self.clock.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    async def register(self, node: SimNode) -> None:
        """Create the node, or bring a simulated node of that name up to date."""
        existing = self.informer.get(node.name)
        if existing is None:
            obj = nodespec.node_object(node.name, node.ip, self.shape, self.wall.stamp())
            try:
                async with self.limit:
                    created = await self.client.create(NODES, obj)
                self._activate(node, created)
                return
            except errors.StatusError as e:
                if e.reason != "AlreadyExists":
                    raise
            async with self.limit:
                existing = await self.client.get(NODES, node.name)
            if not nodespec.is_simulated(existing):
                log.warning("node %s exists and is not simulated; leaving it alone", node.name)
                self.skipped.append(node.name)
                return
        await self._update(node, existing)

    async def _update(self, node: SimNode, existing: Obj) -> None:
        labels = nodespec.node_labels(node.name, self.shape)
        current = existing["metadata"].get("labels") or {}
        if any(current.get(k) != v for k, v in labels.items()):
            async with self.limit:
                existing = await self.client.patch(
                    NODES, node.name, {"metadata": {"labels": labels}}
                )
        old = (existing.get("status") or {}).get("conditions")
        status = nodespec.node_status(node.name, node.ip, self.shape, self.wall.stamp(), old)
        async with self.limit:
            updated = await self.client.patch(
                NODES, node.name, {"status": status}, patch_type="strategic", subresource="status"
            )
        self._activate(node, updated)

    def _activate(self, node: SimNode, obj: Obj) -> None:
        node.active = True
        self._seen(obj)

    # --- periodic -------------------------------------------------------------------------------
    async def renew_lease(self, name: str) -> None:
        node = self.nodes[name]
        body = nodespec.lease_object(name, node.uid, self.wall.micro(), self.timings.lease_duration)
        # One unconditional PUT: leases may be created by an update, and this node is the only
        # writer of its lease, so reading it first would only double the requests.
        await self.client.update(LEASES, body)

    async def heartbeat(self, name: str) -> None:
        current = self.informer.get(name)
        old = (current or {}).get("status", {}).get("conditions")
        patch = {"status": {"conditions": nodespec.conditions(self.wall.stamp(), old)}}
        await self.client.patch(NODES, name, patch, patch_type="strategic", subresource="status")

    async def run_periodic(self) -> None:
        await asyncio.gather(self.leases.run(), self.heartbeats.run())

    async def stop(self) -> None:
        await self.informer.stop()


def _ready(node: Obj) -> bool:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False
