"""The service proxy's iptables chain names: kube-proxy's top-level chains (KUBE-SERVICES,
KUBE-NODEPORTS, KUBE-POSTROUTING, ...), the jump rules that lead to them from the built-in
chains, and the per-service chain names (KUBE-SVC-/KUBE-SEP-<hash>).

Several clusters may have a node on one host (each with its own pod and service ranges). A
cluster on the default service range uses kube's names exactly; any other gets its own set
(`Chains(tag)`): top-level chains suffixed "-<tag>" and per-service hashes salted with the tag,
so no proxy ever flushes, rewrites or deletes another cluster's chains.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from dataclasses import dataclass, replace

from pocketkube.config import SERVICE_CIDR
from pocketkube.proxy.model import Endpoint, ServicePort, port_proto_hash

SERVICES = "KUBE-SERVICES"
EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
NODEPORTS = "KUBE-NODEPORTS"
POSTROUTING = "KUBE-POSTROUTING"
MARK_MASQ = "KUBE-MARK-MASQ"
FORWARD = "KUBE-FORWARD"
PROXY_FIREWALL = "KUBE-PROXY-FIREWALL"
KUBELET_FIREWALL = "KUBE-FIREWALL"

FILTER_CHAINS = (SERVICES, EXTERNAL_SERVICES, FORWARD, NODEPORTS, PROXY_FIREWALL)
NAT_CHAINS = (SERVICES, NODEPORTS, POSTROUTING, MARK_MASQ)
TAG_LENGTH = 5
SERVICE_CHAIN_PREFIXES = ("KUBE-SVC-", "KUBE-SVL-", "KUBE-SEP-", "KUBE-FW-", "KUBE-EXT-")


@dataclass(frozen=True)
class Jump:
    table: str
    chain: str  # the built-in chain holding the jump
    target: str
    comment: str
    extra: tuple[str, ...] = ()

    def args(self) -> list[str]:
        """The rule as iptables-save prints it (minus "-A CHAIN")."""
        out = list(self.extra)
        if self.comment:
            out += ["-m", "comment", "--comment", f'"{self.comment}"']
        return out + ["-j", self.target]


_NEW = ("-m", "conntrack", "--ctstate", "NEW")
JUMPS = (
    Jump("filter", "INPUT", EXTERNAL_SERVICES, "kubernetes externally-visible service portals",
         _NEW),
    Jump("filter", "FORWARD", EXTERNAL_SERVICES, "kubernetes externally-visible service portals",
         _NEW),
    Jump("filter", "INPUT", NODEPORTS, "kubernetes health check service ports"),
    Jump("filter", "FORWARD", SERVICES, "kubernetes service portals", _NEW),
    Jump("filter", "OUTPUT", SERVICES, "kubernetes service portals", _NEW),
    Jump("filter", "FORWARD", FORWARD, "kubernetes forwarding rules"),
    Jump("filter", "INPUT", PROXY_FIREWALL, "kubernetes load balancer firewall", _NEW),
    Jump("filter", "OUTPUT", PROXY_FIREWALL, "kubernetes load balancer firewall", _NEW),
    Jump("filter", "FORWARD", PROXY_FIREWALL, "kubernetes load balancer firewall", _NEW),
    Jump("nat", "OUTPUT", SERVICES, "kubernetes service portals"),
    Jump("nat", "PREROUTING", SERVICES, "kubernetes service portals"),
    Jump("nat", "POSTROUTING", POSTROUTING, "kubernetes postrouting rules"),
    # kubelet's anti-martian chain, which kube-proxy also creates.
    Jump("filter", "INPUT", KUBELET_FIREWALL, ""),
    Jump("filter", "OUTPUT", KUBELET_FIREWALL, ""),
)


def is_service_chain(name: str) -> bool:
    return name.startswith(SERVICE_CHAIN_PREFIXES)


def tag_for(service_cidr: str) -> str:
    """The chain tag of a cluster: none on the default service range (kube's own names), else
    five base32 characters of its range — short enough that "KUBE-EXTERNAL-SERVICES-<tag>"
    stays within iptables' 28-character chain names."""
    first = service_cidr.split(",")[0].strip()
    if ipaddress.ip_network(first, strict=False) == ipaddress.ip_network(SERVICE_CIDR):
        return ""
    return base64.b32encode(hashlib.sha256(first.encode()).digest()).decode()[:TAG_LENGTH]


class Chains:
    """One cluster's chain names (kube's when `tag` is empty)."""

    def __init__(self, tag: str = "") -> None:
        self.tag = tag
        self._salt = f"{tag}/" if tag else ""
        self.services, self.external_services, self.nodeports, self.postrouting, \
            self.mark_masq, self.forward, self.proxy_firewall, self.kubelet_firewall, \
            self.canary = (self.top(c) for c in (
                SERVICES, EXTERNAL_SERVICES, NODEPORTS, POSTROUTING, MARK_MASQ, FORWARD,
                PROXY_FIREWALL, KUBELET_FIREWALL, "KUBE-PROXY-CANARY"))
        self.filter = tuple(self.top(c) for c in FILTER_CHAINS)
        self.nat = tuple(self.top(c) for c in NAT_CHAINS)
        self.jumps = tuple(replace(j, target=self.top(j.target)) for j in JUMPS)

    def top(self, base: str) -> str:
        return f"{base}-{self.tag}" if self.tag else base

    def top_level(self, table: str) -> set[str]:
        """The chains the jumps lead to and cleanup starts from."""
        extra = {self.kubelet_firewall} if table == "filter" else set()
        return {*(self.filter if table == "filter" else self.nat), *extra, self.canary}

    def service(self, sp: ServicePort, prefix: str) -> str:
        return prefix + port_proto_hash(self._salt + sp.key, sp.proto)

    def endpoint(self, sp: ServicePort, ep: Endpoint) -> str:
        return "KUBE-SEP-" + port_proto_hash(self._salt + sp.key, sp.proto, str(ep))


KUBE = Chains()
