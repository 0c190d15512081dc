"""The proxy's view of the cluster: Services flattened into one `ServicePort` per port and
EndpointSlices into the `Endpoint`s behind each, plus kube's endpoint selection
(pkg/proxy/topology.go CategorizeEndpoints): Ready endpoints, Serving+Terminating ones only when
none is Ready, Local traffic policies restricted to this node, zone hints.

Pure functions over API objects (dicts); both proxy modes and the rules generator read these.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
# kube-proxy watches only objects without these labels (cmd/kube-proxy/app/server.go).
LABEL_SELECTOR = "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless"
DEFAULT_STICKY_SECONDS = 10800


def port_proto_hash(port_name: str, protocol: str, endpoint: str = "") -> str:
    """kube's chain-name hash: base32(sha256(name + protocol [+ endpoint]))[:16]."""
    digest = hashlib.sha256((port_name + protocol + endpoint).encode()).digest()
    return base64.b32encode(digest).decode()[:16]


@dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    node_name: str = ""
    zone_hints: frozenset[str] = frozenset()

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass
class ServicePort:
    """One port of one Service, with what the rules need (kube's BaseServicePortInfo)."""

    namespace: str
    name: str
    port_name: str
    protocol: str  # "TCP", "UDP", "SCTP"
    cluster_ip: str
    port: int
    node_port: int = 0
    external_ips: list[str] = field(default_factory=list)
    load_balancer_vips: list[str] = field(default_factory=list)
    load_balancer_source_ranges: list[str] = field(default_factory=list)
    session_affinity_seconds: int = 0  # 0: no ClientIP affinity
    external_policy_local_requested: bool = False
    internal_policy_local: bool = False
    health_check_node_port: int = 0

    @property
    def key(self) -> str:
        """kube's ServicePortName.String(): "ns/name" plus ":port-name" when named."""
        base = f"{self.namespace}/{self.name}"
        return f"{base}:{self.port_name}" if self.port_name else base

    @property
    def proto(self) -> str:
        return self.protocol.lower()

    @property
    def externally_accessible(self) -> bool:
        return bool(self.node_port or self.load_balancer_vips or self.external_ips)

    @property
    def external_policy_local(self) -> bool:
        return self.externally_accessible and self.external_policy_local_requested

    @property
    def uses_cluster_endpoints(self) -> bool:
        return not self.internal_policy_local or (
            self.externally_accessible and not self.external_policy_local)

    @property
    def uses_local_endpoints(self) -> bool:
        return self.internal_policy_local or self.external_policy_local


def _ipv4(values: list[str]) -> list[str]:
    out = []
    for v in values:
        try:
            if ipaddress.ip_address(v).version == 4:
                out.append(v)
        except ValueError:
            continue
    return out


def _ipv4_cidrs(values: list[str]) -> list[str]:
    out = []
    for v in values:
        try:
            net = ipaddress.ip_network(v.strip(), strict=False)
        except ValueError:
            continue
        if net.version == 4:
            out.append(str(net))
    return out


def service_ports(svc: Obj) -> list[ServicePort]:
    """The proxied ports of a Service; none for headless, ExternalName or IP-less Services."""
    meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
    cluster_ip = spec.get("clusterIP") or ""
    if spec.get("type") == "ExternalName" or cluster_ip in ("", "None"):
        return []
    if ipaddress.ip_address(cluster_ip).version != 4:
        return []
    sticky = 0
    if spec.get("sessionAffinity") == "ClientIP":
        cfg = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
        sticky = int(cfg.get("timeoutSeconds") or DEFAULT_STICKY_SECONDS)
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    # An ingress in "Proxy" mode is reached through the load balancer, not captured here.
    vips = _ipv4([i["ip"] for i in ingress if i.get("ip") and i.get("ipMode") != "Proxy"])
    out = []
    for p in spec.get("ports") or []:
        out.append(ServicePort(
            namespace=meta.get("namespace", ""), name=meta["name"], port_name=p.get("name") or "",
            protocol=p.get("protocol") or "TCP", cluster_ip=cluster_ip, port=int(p["port"]),
            node_port=int(p.get("nodePort") or 0),
            external_ips=_ipv4(spec.get("externalIPs") or []),
            load_balancer_vips=vips,
            load_balancer_source_ranges=_ipv4_cidrs(spec.get("loadBalancerSourceRanges") or []),
            session_affinity_seconds=sticky,
            external_policy_local_requested=spec.get("externalTrafficPolicy") == "Local",
            internal_policy_local=spec.get("internalTrafficPolicy") == "Local",
            health_check_node_port=int(spec.get("healthCheckNodePort") or 0)))
    return out


def slice_service_key(es: Obj) -> str | None:
    meta = es.get("metadata") or {}
    name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return f"{meta.get('namespace', '')}/{name}" if name else None


def endpoints_by_port(slices: list[Obj]) -> dict[tuple[str, str], list[Endpoint]]:
    """(port name, protocol) -> endpoints, merged over one Service's IPv4 slices, deduplicated
    by ip:port (a local copy wins, as in kube's endpointslicecache) and sorted by ip:port."""
    merged: dict[tuple[str, str], dict[str, Endpoint]] = {}
    for es in sorted(slices, key=lambda s: s["metadata"]["name"]):
        if es.get("addressType") != "IPv4":
            continue
        for p in es.get("ports") or []:
            if p.get("port") is None:
                continue
            bucket = merged.setdefault((p.get("name") or "", p.get("protocol") or "TCP"), {})
            for e in es.get("endpoints") or []:
                addrs = e.get("addresses") or []
                if not addrs:
                    continue
                cond = e.get("conditions") or {}
                ready = cond.get("ready") is not False
                ep = Endpoint(
                    ip=addrs[0], port=int(p["port"]), ready=ready,
                    serving=cond.get("serving") is not False,
                    terminating=bool(cond.get("terminating")),
                    node_name=e.get("nodeName") or "",
                    zone_hints=frozenset(z["name"] for z in
                                         (e.get("hints") or {}).get("forZones") or []))
                bucket.setdefault(str(ep), ep)
    return {k: sorted(v.values(), key=str) for k, v in merged.items()}


@dataclass
class Categorized:
    cluster: list[Endpoint]
    local: list[Endpoint]
    reachable: list[Endpoint]
    has_any: bool


def categorize(endpoints: list[Endpoint], sp: ServicePort, node_name: str,
               zone: str = "") -> Categorized:
    """Which endpoints Cluster and Local policies use (kube's CategorizeEndpoints)."""
    cluster: list[Endpoint] = []
    local: list[Endpoint] = []
    has_any = False
    zone_mode = False
    if sp.uses_cluster_endpoints:
        ready = [e for e in endpoints if e.ready]
        zone_mode = bool(ready) and all(e.zone_hints for e in ready) and \
            any(zone in e.zone_hints for e in ready)
        cluster = [e for e in ready if not zone_mode or zone in e.zone_hints]
        if not cluster:
            cluster = [e for e in endpoints if e.serving and e.terminating]
        has_any = bool(cluster)
    if not sp.uses_local_endpoints:
        return Categorized(cluster, [], cluster, has_any)
    has_any = has_any or any(e.ready or (e.serving and e.terminating) for e in endpoints)
    mine = [e for e in endpoints if e.node_name == node_name]
    local = [e for e in mine if e.ready]
    terminating_fallback = False
    if not local:
        local = [e for e in mine if e.serving and e.terminating]
        terminating_fallback = bool(local)
    if not sp.uses_cluster_endpoints:
        return Categorized([], local, local, has_any)
    if not zone_mode and not terminating_fallback:
        return Categorized(cluster, local, cluster, has_any)
    union = {str(e): e for e in cluster}
    union.update({str(e): e for e in local})
    return Categorized(cluster, local, sorted(union.values(), key=str), has_any)
