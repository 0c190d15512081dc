"""Addresses of simulated nodes and their pods.

A simulated node's InternalIP comes from 10.250.0.0/16, a range pocketkube reserves for
addresses that are shown but never contacted (no process listens behind them). Pod IPs come
from the node's spec.podCIDR(s) when something (a node IPAM controller) has set them, and
otherwise from a per-node /24 derived from the node's index: the index-th /24 of the cluster
CIDR (10.244.<i>.0/24 for the default 10.244.0.0/16), continuing in 100.64.0.0/10 (the shared
address space, 16384 more /24s) for node indexes beyond the cluster CIDR.

The allocator hands out addresses the way the host-local CNI plugin does: the network address
and the gateway (.1) are never given to a pod, the next free address after the last one given is
taken, and an address is free again once its pod has finished.
"""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Network, IPv6Network

NODE_IP_RANGE = ipaddress.ip_network("10.250.0.0/16")
OVERFLOW_POD_RANGE = ipaddress.ip_network("100.64.0.0/10")
NODE_SUBNET_PREFIX = 24

Network = IPv4Network | IPv6Network


class RangeExhausted(Exception):
    pass


def node_ip(index: int) -> str:
    """The InternalIP of simulated node `index` (10.250.0.1 for index 0)."""
    size = NODE_IP_RANGE.num_addresses - 2
    return str(NODE_IP_RANGE.network_address + 1 + index % size)


def derived_pod_cidr(index: int, cluster_cidr: str) -> str:
    """The pod range of node `index` when its spec has no podCIDR."""
    cluster = ipaddress.ip_network(cluster_cidr, strict=False)
    prefix = max(NODE_SUBNET_PREFIX, cluster.prefixlen) if cluster.version == 4 else 64
    count = 2 ** (prefix - cluster.prefixlen)
    if index < count:
        return str(_subnet(cluster, prefix, index))
    overflow_count = 2 ** (NODE_SUBNET_PREFIX - OVERFLOW_POD_RANGE.prefixlen)
    return str(_subnet(OVERFLOW_POD_RANGE, NODE_SUBNET_PREFIX, (index - count) % overflow_count))


def _subnet(net: Network, prefix: int, index: int) -> Network:
    size = 2 ** (net.max_prefixlen - prefix)
    base = int(net.network_address) + index * size
    return ipaddress.ip_network((base, prefix)) if net.version == 4 else IPv6Network((base, prefix))


class PodIPAllocator:
    """Addresses of one pod range, by pod uid."""

    def __init__(self, cidr: str) -> None:
        self.network = ipaddress.ip_network(cidr, strict=False)
        # Host-local leaves the network address and the gateway (.1) out of the pool; the
        # broadcast address of an IPv4 range is not a host either.
        self._first = int(self.network.network_address) + 2
        last = int(self.network.broadcast_address)
        self._last = last - 1 if self.network.version == 4 else last
        self._by_uid: dict[str, int] = {}
        self._used: set[int] = set()
        self._next = self._first

    def __len__(self) -> int:
        return len(self._by_uid)

    @property
    def capacity(self) -> int:
        return max(self._last - self._first + 1, 0)

    def get(self, uid: str) -> str | None:
        n = self._by_uid.get(uid)
        return None if n is None else str(ipaddress.ip_address(n))

    def contains(self, ip: str) -> bool:
        try:
            return ipaddress.ip_address(ip) in self.network
        except ValueError:
            return False

    def reserve(self, uid: str, ip: str) -> bool:
        """Record that `uid` already holds `ip` (a pod that ran before a restart)."""
        if not self.contains(ip):
            return False
        n = int(ipaddress.ip_address(ip))
        if n in self._used and self._by_uid.get(uid) != n:
            return False
        self.release(uid)
        self._by_uid[uid] = n
        self._used.add(n)
        return True

    def allocate(self, uid: str) -> str:
        """The pod's address: the one it holds, else the lowest free one after the last given."""
        held = self.get(uid)
        if held is not None:
            return held
        if len(self._used) >= self.capacity:
            raise RangeExhausted(f"no IP addresses available in range set: {self.network}")
        n = self._next
        while n in self._used:
            n = n + 1 if n < self._last else self._first
        self._used.add(n)
        self._by_uid[uid] = n
        # Like host-local, continue after the last address given rather than reusing the
        # one just released, so a new pod rarely inherits a finished pod's address.
        self._next = n + 1 if n < self._last else self._first
        return str(ipaddress.ip_address(n))

    def release(self, uid: str) -> None:
        n = self._by_uid.pop(uid, None)
        if n is not None:
            self._used.discard(n)


class PodAddresses:
    """The pod addresses of every simulated node, by pod uid, over any number of ranges."""

    def __init__(self) -> None:
        self.allocators: dict[str, PodIPAllocator] = {}
        self._held: dict[str, list[str]] = {}  # pod uid -> the ranges it holds an address in

    def _allocator(self, cidr: str) -> PodIPAllocator:
        alloc = self.allocators.get(cidr)
        if alloc is None:
            alloc = self.allocators[cidr] = PodIPAllocator(cidr)
        return alloc

    def assign(self, uid: str, cidrs: list[str]) -> list[str]:
        """One address per range (dual stack: one per family), the same ones on every call."""
        ips = [self._allocator(c).allocate(uid) for c in cidrs]
        self._held[uid] = list(cidrs)
        return ips

    def reserve(self, uid: str, ips: list[str], cidrs: list[str]) -> None:
        """Take back the addresses a pod reported before this process started."""
        if uid in self._held:
            return
        held = [c for ip in ips for c in cidrs if self._allocator(c).reserve(uid, ip)]
        if held:
            self._held[uid] = held

    def release(self, uid: str) -> None:
        for cidr in self._held.pop(uid, []):
            self._allocator(cidr).release(uid)
