"""The objects that make cluster DNS reachable at its well-known address: the `kube-dns` Service
in kube-system (cluster IP = the tenth address of the service range, the nameserver every pod's
resolv.conf names), with the labels kubeadm's CoreDNS addon gives it and no selector; an
EndpointSlice per node (`kube-dns-<node>`, owned by the Node so it goes with it) pointing at the
address and port that node's DNS server bound; and the Endpoints, gathered from those slices.

Every node runs its own DNS server, and the Service's internalTrafficPolicy is Local: each
node's service proxy sends the cluster IP to the server on the same node, so lookups never
depend on reaching another machine (what NodeLocal DNSCache gives a kube cluster).

`kubectl cluster-info` lists every kube-system Service labelled
kubernetes.io/cluster-service=true under its kubernetes.io/name label ("CoreDNS is running
at …/services/kube-dns:dns/proxy").
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
from typing import Any

from pocketkube.api import errors
from pocketkube.client.rest import ApiClient, resource

log = logging.getLogger("pocketkube.dns")

Obj = dict[str, Any]
NAMESPACE = "kube-system"
SERVICE = "kube-dns"
MANAGED_BY = "pocketkube-dns"
LOCAL = "Local"
LABELS = {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
          "kubernetes.io/name": "CoreDNS"}

SERVICES = resource("", "services")
ENDPOINTS = resource("", "endpoints")
SLICES = resource("discovery.k8s.io", "endpointslices")


def cluster_dns_ip(service_cidr: str) -> str:
    """The tenth address of the (first) service range."""
    first = service_cidr.split(",")[0].strip()
    return str(ipaddress.ip_network(first, strict=False)[10])


def _ports(port: int, target: bool) -> list[Obj]:
    out = []
    for name, proto in (("dns", "UDP"), ("dns-tcp", "TCP")):
        p: Obj = {"name": name, "protocol": proto, "port": 53 if target else port}
        if target:
            p["targetPort"] = port
        out.append(p)
    return out


def service_object(cluster_ip: str, port: int) -> Obj:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": SERVICE, "namespace": NAMESPACE, "labels": dict(LABELS)},
            "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "sessionAffinity": "None",
                     "internalTrafficPolicy": LOCAL, "ports": _ports(port, target=True)}}


def endpoints_object(slices: list[Obj]) -> Obj:
    """The Endpoints of every node's DNS server, from their EndpointSlices."""
    labels = {**LABELS, "endpointslice.kubernetes.io/skip-mirror": "true"}
    by_ports: dict[str, tuple[list[Obj], list[Obj]]] = {}
    for sl in sorted(slices, key=lambda o: o["metadata"]["name"]):
        ports = [{k: p[k] for k in ("name", "protocol", "port")} for p in sl.get("ports") or []]
        key = repr(ports)
        addresses = by_ports.setdefault(key, ([], ports))[0]
        for ep in sl.get("endpoints") or []:
            addresses += [{"ip": a, "nodeName": ep.get("nodeName", "")}
                          for a in ep.get("addresses") or []]
    subsets = [{"addresses": addrs, "ports": ports} for addrs, ports in by_ports.values()]
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": SERVICE, "namespace": NAMESPACE, "labels": labels},
            "subsets": subsets}


def slice_name(node: str) -> str:
    """`kube-dns-<node>`, shortened with a hash when a long node name would not fit."""
    name = f"{SERVICE}-{node}"
    if len(name) <= 253:
        return name
    digest = hashlib.sha256(node.encode()).hexdigest()[:10]
    return f"{name[:242]}-{digest}"


def slice_object(ip: str, port: int, node: str, node_uid: str = "") -> Obj:
    family = "IPv6" if ipaddress.ip_address(ip).version == 6 else "IPv4"
    labels = {**LABELS, "kubernetes.io/service-name": SERVICE,
              "endpointslice.kubernetes.io/managed-by": MANAGED_BY}
    meta: Obj = {"name": slice_name(node), "namespace": NAMESPACE, "labels": labels}
    if node_uid:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": node,
                                    "uid": node_uid}]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": meta,
            "addressType": family,
            "endpoints": [{"addresses": [ip], "nodeName": node,
                           "conditions": {"ready": True, "serving": True,
                                          "terminating": False}}],
            "ports": _ports(port, target=False)}


def _differs(cur: Obj, want: Obj, fields: tuple[str, ...]) -> bool:
    labels = (cur.get("metadata") or {}).get("labels") or {}
    if any(labels.get(k) != v for k, v in want["metadata"]["labels"].items()):
        return True
    return any(cur.get(f) != want[f] for f in fields)


async def _upsert(client: ApiClient, r: Any, want: Obj, fields: tuple[str, ...]) -> None:
    name = want["metadata"]["name"]
    try:
        cur = await client.get(r, name, NAMESPACE)
    except errors.StatusError as e:
        if e.code != 404:
            raise
        await client.create(r, want, NAMESPACE)
        log.info("created %s %s/%s", want["kind"], NAMESPACE, name)
        return
    if not _differs(cur, want, fields) and (cur["metadata"].get("ownerReferences") or []) == \
            (want["metadata"].get("ownerReferences") or []):
        return
    new = {**cur, **{f: want[f] for f in fields}}
    new["metadata"] = {**cur["metadata"], "labels": {
        **(cur["metadata"].get("labels") or {}), **want["metadata"]["labels"]}}
    if "ownerReferences" in want["metadata"]:
        new["metadata"]["ownerReferences"] = want["metadata"]["ownerReferences"]
    await client.update(r, new)
    log.info("updated %s %s/%s", want["kind"], NAMESPACE, name)


async def ensure_service(client: ApiClient, cluster_ip: str, port: int) -> None:
    """Create the kube-dns Service, or bring an existing one to the wanted ports, labels and
    no selector; one with another cluster IP (immutable) is replaced."""
    want = service_object(cluster_ip, port)
    try:
        cur = await client.get(SERVICES, SERVICE, NAMESPACE)
    except errors.StatusError as e:
        if e.code != 404:
            raise
        await client.create(SERVICES, want, NAMESPACE)
        log.info("created Service %s/%s at %s", NAMESPACE, SERVICE, cluster_ip)
        return
    spec = cur.get("spec") or {}
    if spec.get("clusterIP") != cluster_ip or spec.get("type") != "ClusterIP":
        await client.delete(SERVICES, SERVICE, NAMESPACE)
        await client.create(SERVICES, want, NAMESPACE)
        log.info("replaced Service %s/%s (cluster IP %s)", NAMESPACE, SERVICE, cluster_ip)
        return
    ports = [{k: p.get(k) for k in ("name", "protocol", "port", "targetPort")}
             for p in spec.get("ports") or []]
    labels = cur["metadata"].get("labels") or {}
    if ports == want["spec"]["ports"] and "selector" not in spec and \
            spec.get("internalTrafficPolicy") == LOCAL and \
            all(labels.get(k) == v for k, v in LABELS.items()):
        return
    new = {**cur, "spec": {**{k: v for k, v in spec.items() if k != "selector"},
                           "ports": want["spec"]["ports"], "internalTrafficPolicy": LOCAL}}
    new["metadata"] = {**cur["metadata"], "labels": {**labels, **LABELS}}
    await client.update(SERVICES, new)
    log.info("updated Service %s/%s", NAMESPACE, SERVICE)


async def publish(client: ApiClient, cluster_ip: str, ip: str, port: int, node: str,
                  node_uid: str = "") -> None:
    """The Service, this node's EndpointSlice (this server at ip:port) and the Endpoints."""
    await ensure_service(client, cluster_ip, port)
    await _upsert(client, SLICES, slice_object(ip, port, node, node_uid),
                  ("addressType", "endpoints", "ports"))
    await refresh_endpoints(client)


async def refresh_endpoints(client: ApiClient) -> None:
    """Gather every node's kube-dns slice into the Endpoints (kubectl get endpoints)."""
    listed = await client.list(SLICES, NAMESPACE, labelSelector=(
        f"kubernetes.io/service-name={SERVICE},"
        f"endpointslice.kubernetes.io/managed-by={MANAGED_BY}"))
    ours = [s for s in listed.get("items") or [] if s["metadata"]["name"] != SERVICE]
    await _upsert(client, ENDPOINTS, endpoints_object(ours), ("subsets",))
    if len(ours) != len(listed.get("items") or []):
        # The single slice of earlier pocketkube versions, replaced by the per-node ones.
        with contextlib.suppress(errors.StatusError):
            await client.delete(SLICES, SERVICE, NAMESPACE)
