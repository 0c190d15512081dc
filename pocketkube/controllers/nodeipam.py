"""Node IPAM (kube's `pkg/controller/nodeipam`, range allocator): gives each Node a pod
CIDR out of the cluster CIDR, which its node agent hands out to the pods it runs.

A Node without spec.podCIDR gets the next free /24 (node-cidr-mask-size) of
ServerConfig.cluster_cidr (10.244.0.0/16 by default). As kube's cidrset, the search starts after
the last range given out and wraps around, so a range released by a deleted node is not handed
out again at once. Allocations are rebuilt from the nodes' podCIDRs when the controller starts
and a range is released when its node is deleted. One worker, so two nodes never race for one
range.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pocketkube.api.errors import StatusError
from pocketkube.client.events import EventRecorder
from pocketkube.client.rest import resource
from pocketkube.controllers.base import Controller, InformerFactory

Obj = dict[str, Any]
NODES = resource("", "nodes")
RETRY_FULL = 30.0  # seconds before a node that found the range full tries again


class CidrSet:
    """The /mask subnets of a cluster CIDR, allocated in rotation (kube's cidrset)."""

    def __init__(self, cluster_cidr: str, mask: int = 24) -> None:
        self.net = ipaddress.ip_network(cluster_cidr, strict=False)
        if mask < self.net.prefixlen:
            raise ValueError(f"node CIDR mask /{mask} is larger than cluster CIDR {self.net}")
        self.mask = mask
        self.size = 2 ** (mask - self.net.prefixlen)
        self.used: set[int] = set()
        self.next = 0

    def _index(self, cidr: str) -> int | None:
        try:
            sub = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            return None
        if sub.version != self.net.version or sub.prefixlen != self.mask or \
                not sub.subnet_of(self.net):  # type: ignore[arg-type]
            return None
        step = 2 ** (self.net.max_prefixlen - self.mask)
        return (int(sub.network_address) - int(self.net.network_address)) // step

    def _cidr(self, i: int) -> str:
        step = 2 ** (self.net.max_prefixlen - self.mask)
        addr = ipaddress.ip_address(int(self.net.network_address) + i * step)
        return f"{addr}/{self.mask}"

    def occupy(self, cidr: str) -> bool:
        i = self._index(cidr)
        if i is None:
            return False
        self.used.add(i)
        return True

    def release(self, cidr: str) -> None:
        i = self._index(cidr)
        if i is not None:
            self.used.discard(i)

    def allocate(self) -> str | None:
        for n in range(self.size):
            i = (self.next + n) % self.size
            if i not in self.used:
                self.used.add(i)
                self.next = (i + 1) % self.size
                return self._cidr(i)
        return None


def pod_cidrs(node: Obj) -> list[str]:
    spec = node.get("spec") or {}
    return list(spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []))


class NodeIpamController(Controller):
    name = "nodeipam"
    workers = 1

    def __init__(self, client: Any, informers: InformerFactory, cluster_cidr: str,
                 mask: int = 24, clock: Any = None,
                 recorder: EventRecorder | None = None) -> None:
        super().__init__(client, informers, clock)
        self.cidrs = CidrSet(cluster_cidr, mask)
        self.recorder = recorder or EventRecorder(client, "cidrAllocator")
        self.nodes = informers.informer(NODES)
        self.nodes.on(add=self.enqueue, update=lambda old, new: self.enqueue(new),
                      delete=self._deleted)

    def _deleted(self, node: Obj) -> None:
        for cidr in pod_cidrs(node):
            self.cidrs.release(cidr)

    def rebuild(self) -> None:
        """Mark every range a node holds as used (the informer has synced)."""
        for node in self.nodes.list():
            for cidr in pod_cidrs(node):
                self.cidrs.occupy(cidr)

    async def run(self) -> None:
        self.rebuild()
        await super().run()

    async def sync(self, key: str) -> None:
        node = self.nodes.get(key)
        if node is None or node["metadata"].get("deletionTimestamp"):
            return
        have = pod_cidrs(node)
        if have:
            for cidr in have:
                self.cidrs.occupy(cidr)
            return
        cidr = self.cidrs.allocate()
        if cidr is None:
            self.log.warning("no pod CIDR left in %s for node %s", self.cidrs.net, key)
            self.recorder.record(node, "Normal", "CIDRNotAvailable",
                                 f"Node {key} status is now: CIDRNotAvailable")
            self.queue.add_after(key, RETRY_FULL)
            return
        meta = node["metadata"]
        patch = {"metadata": {"uid": meta["uid"], "resourceVersion": meta["resourceVersion"]},
                 "spec": {"podCIDR": cidr, "podCIDRs": [cidr]}}
        try:
            await self.client.patch(NODES, key, patch)
        except StatusError as e:
            self.cidrs.release(cidr)
            if e.code == 404:
                return
            raise
        self.log.info("node %s: pod CIDR %s", key, cidr)
