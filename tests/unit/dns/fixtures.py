"""Service, EndpointSlice and namespace objects for the DNS tests, shaped as the API serves
them, and a ClusterView holding a small cluster built from them."""

from __future__ import annotations

from typing import Any

from pocketkube.dns.view import ClusterView

Obj = dict[str, Any]


def service(name: str, ns: str = "default", cluster_ip: str = "10.96.0.20",
            ports: list[tuple[str, int, str]] | None = None, type_: str = "ClusterIP",
            external_name: str = "", cluster_ips: list[str] | None = None) -> Obj:
    spec: Obj = {"type": type_,
                 "ports": [{"name": n, "port": p, "protocol": proto}
                           for n, p, proto in (ports or [])]}
    if type_ == "ExternalName":
        spec["externalName"] = external_name
    else:
        spec["clusterIP"] = cluster_ip
        spec["clusterIPs"] = cluster_ips or [cluster_ip]
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def endpoint_slice(service_name: str, endpoints: list[Obj], ns: str = "default",
                   ports: list[tuple[str, int, str]] | None = None, name: str = "",
                   address_type: str = "IPv4") -> Obj:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name or f"{service_name}-abcde", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": address_type, "endpoints": endpoints,
            "ports": [{"name": n, "port": p, "protocol": proto}
                      for n, p, proto in (ports or [])]}


def ep(ip: str, ready: bool | None = True, hostname: str = "") -> Obj:
    out: Obj = {"addresses": [ip]}
    if ready is not None:
        out["conditions"] = {"ready": ready}
    if hostname:
        out["hostname"] = hostname
    return out


def cluster() -> ClusterView:
    """web (ClusterIP, http 80 + dns 53/UDP), nginx (headless, web-0/web-1 + a not-ready
    one), db (dual-stack), ext (ExternalName out of the cluster), alias (ExternalName to web),
    empty (headless without endpoints), kube-dns at 10.96.0.10 served from 10.150.0.1."""
    services = [
        service("web", ports=[("http", 80, "TCP"), ("dns", 53, "UDP")]),
        service("nginx", cluster_ip="None", ports=[("web", 80, "TCP")]),
        service("db", cluster_ip="10.96.0.30", cluster_ips=["10.96.0.30", "fd00::30"],
                ports=[("pg", 5432, "TCP")]),
        service("ext", type_="ExternalName", external_name="example.org"),
        service("alias", type_="ExternalName", external_name="web.default.svc.cluster.local"),
        service("empty", cluster_ip="None", ports=[("web", 80, "TCP")]),
        service("kube-dns", ns="kube-system", cluster_ip="10.96.0.10",
                ports=[("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")]),
    ]
    slices = [
        endpoint_slice("web", [ep("10.150.0.5"), ep("10.150.0.6")],
                       ports=[("http", 8080, "TCP"), ("dns", 5353, "UDP")]),
        endpoint_slice("nginx", [ep("10.150.0.11", hostname="web-0"),
                                 ep("10.150.0.12", ready=None, hostname="web-1"),
                                 ep("10.150.0.13", ready=False, hostname="web-2")],
                       ports=[("web", 80, "TCP")]),
        endpoint_slice("kube-dns", [ep("10.150.0.1")], ns="kube-system",
                       ports=[("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")]),
    ]
    return ClusterView.from_objects(services, slices, ["default", "kube-system"])
