"""Services, EndpointSlices and this node's Node object, watched and turned into one coalesced
sync at a time — kube-proxy's service/endpoints change trackers feeding its sync runner.

Informer handlers only mark the state dirty. The sync loop wakes on the first change, lets the
burst that follows it gather for `coalesce` seconds (100 ms by default), then hands one snapshot
of the whole state to the proxier; changes that land during a sync cause exactly one more. There
is no minimum interval between syncs (kube's minSyncPeriod): pocketkube aims at an endpoint
change being in the rules within a second. A failed sync is retried with backoff, and the state
is resynced every `resync` seconds even when nothing changed, to repair outside edits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pocketkube.client.informer import Informer, key_of
from pocketkube.client.rest import ApiClient, resource
from pocketkube.proxy.model import (
    LABEL_SELECTOR,
    Endpoint,
    ServicePort,
    endpoints_by_port,
    service_ports,
    slice_service_key,
)

log = logging.getLogger("pocketkube.proxy")

Obj = dict[str, Any]
ZONE_LABEL = "topology.kubernetes.io/zone"


@dataclass
class Snapshot:
    """Everything one sync needs: each service port with all endpoints its slices list."""

    services: list[tuple[ServicePort, list[Endpoint]]] = field(default_factory=list)
    node_ip: str = ""
    node_zone: str = ""
    node_addresses: list[str] = field(default_factory=list)
    taken_at: float = 0.0  # time.monotonic() when the snapshot was built


def build_snapshot(services: list[Obj], slices_of: Callable[[str], list[Obj]],
                   node: Obj | None) -> Snapshot:
    snap = Snapshot(taken_at=time.monotonic())
    for svc in services:
        ports = service_ports(svc)
        if not ports:
            continue
        by_port = endpoints_by_port(slices_of(key_of(svc)))
        for sp in ports:
            snap.services.append((sp, by_port.get((sp.port_name, sp.protocol), [])))
    if node is not None:
        addrs = (node.get("status") or {}).get("addresses") or []
        snap.node_addresses = [a["address"] for a in addrs
                               if a.get("type") in ("InternalIP", "ExternalIP")]
        snap.node_ip = next((a["address"] for a in addrs if a.get("type") == "InternalIP"), "")
        snap.node_zone = ((node.get("metadata") or {}).get("labels") or {}).get(ZONE_LABEL, "")
    return snap


SyncFunc = Callable[[Snapshot], Awaitable[None]]


class ChangeTracker:
    def __init__(self, client: ApiClient, node_name: str, sync: SyncFunc,
                 coalesce: float = 0.1, resync: float = 30.0) -> None:
        self.node_name = node_name
        self._sync = sync
        self.coalesce = coalesce
        self.resync = resync
        self.services = Informer(client, resource("", "services"), label_selector=LABEL_SELECTOR)
        self.slices = Informer(client, resource("discovery.k8s.io", "endpointslices"),
                               label_selector=LABEL_SELECTOR)
        self.nodes = Informer(client, resource("", "nodes"),
                              field_selector=f"metadata.name={node_name}")
        self.slices.add_index("service", lambda s: [k] if (k := slice_service_key(s)) else [])
        self._dirty = asyncio.Event()
        self.syncs = 0
        self.last_sync: float | None = None  # monotonic time of the last successful sync
        self.last_error = ""
        for inf in (self.services, self.slices, self.nodes):
            inf.on(add=self._changed, update=self._changed_update, delete=self._changed)

    def _changed(self, *_: Obj) -> None:
        self._dirty.set()

    def _changed_update(self, old: Obj, new: Obj) -> None:
        # Resync relists re-deliver unchanged objects; only real changes wake the loop.
        if (old.get("metadata") or {}).get("resourceVersion") != \
                (new.get("metadata") or {}).get("resourceVersion"):
            self._dirty.set()

    def request_sync(self) -> None:
        self._dirty.set()

    def snapshot(self) -> Snapshot:
        node = self.nodes.get(self.node_name)
        return build_snapshot(self.services.list(),
                              lambda key: self.slices.by_index("service", key), node)

    async def run(self) -> None:
        infs = (self.services, self.slices, self.nodes)
        for inf in infs:
            inf.start()
        try:
            for inf in infs:
                await inf.wait_synced(timeout=120)
            await self._loop()
        finally:
            for inf in infs:
                await inf.stop()

    async def _loop(self) -> None:
        backoff = 0.5
        self._dirty.set()  # the first sync, once every informer has listed
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), self.resync)
            if self._dirty.is_set() and self.coalesce > 0:
                await asyncio.sleep(self.coalesce)  # gather the rest of the burst
            self._dirty.clear()
            try:
                await self._sync(self.snapshot())
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.last_error = str(e)
                log.error("proxy sync failed (retrying in %.1fs): %s", backoff, e)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                self._dirty.set()
                continue
            backoff = 0.5
            self.syncs += 1
            self.last_sync = time.monotonic()
            self.last_error = ""
