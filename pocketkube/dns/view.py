"""The cluster as cluster DNS sees it: Services, the ready endpoints of their EndpointSlices and
the namespaces that exist, kept in memory and indexed for one dictionary lookup per query.

Informer handlers feed it (pocketkube.dns.component); tests feed it plain objects. Each change
is digested once into small frozen entries so that answering a query never walks raw API
objects. It mirrors what CoreDNS's kubernetes plugin derives from the same objects
(plugin/kubernetes/object): only ready endpoints (a missing `ready` condition counts as ready),
FQDN slices ignored, and a sentinel port -1 for a service or endpoint without ports, so its
address records still answer while SRV leaves it out.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
NO_PORT = -1


@dataclass(frozen=True)
class Port:
    name: str
    port: int
    protocol: str


@dataclass(frozen=True)
class Endpoint:
    """One ready address of a service, with the ports its slice lists."""

    ip: str
    hostname: str  # the EndpointSlice endpoint's hostname ("" when it has none)
    ports: tuple[Port, ...]

    @property
    def name(self) -> str:
        """The DNS label of this endpoint: its hostname, else its address with dashes."""
        return endpoint_label(self.ip, self.hostname)


@dataclass(frozen=True)
class Service:
    name: str
    namespace: str
    type: str
    cluster_ips: tuple[str, ...]
    external_name: str
    ports: tuple[Port, ...]

    @property
    def headless(self) -> bool:
        return not self.cluster_ips and self.type != "ExternalName"


def endpoint_label(ip: str, hostname: str = "") -> str:
    """CoreDNS's endpointHostname: the hostname, or the IP with '.'/':' turned into '-'
    (an IPv6 address ending in '::' gets a trailing '0' so the label does not end in '-')."""
    if hostname:
        return hostname
    if "." in ip:
        return ip.replace(".", "-")
    if ":" in ip:
        label = ip.replace(":", "-")
        return label + "0" if label.endswith("-") else label
    return ""


def service_entry(obj: Obj) -> Service:
    meta, spec = obj["metadata"], obj.get("spec") or {}
    ips = [ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP") or ""])
           if ip and ip != "None"]
    ports = tuple(Port(p.get("name") or "", int(p.get("port") or 0), p.get("protocol") or "TCP")
                  for p in spec.get("ports") or []) or (Port("", NO_PORT, ""),)
    return Service(meta["name"], meta.get("namespace") or "", spec.get("type") or "ClusterIP",
                   tuple(ips), spec.get("externalName") or "", ports)


def slice_endpoints(obj: Obj) -> list[Endpoint]:
    """The ready endpoints of one EndpointSlice."""
    if obj.get("addressType") == "FQDN":
        return []
    ports = tuple(Port(p.get("name") or "", int(p["port"]) if p.get("port") is not None
                       else NO_PORT, p.get("protocol") or "TCP")
                  for p in obj.get("ports") or []) or (Port("", NO_PORT, ""),)
    out = []
    for ep in obj.get("endpoints") or []:
        if (ep.get("conditions") or {}).get("ready") is False:
            continue
        for ip in ep.get("addresses") or []:
            out.append(Endpoint(ip, ep.get("hostname") or "", ports))
    return out


@dataclass
class ClusterView:
    """Services, endpoints and namespaces, indexed by (namespace, name) and by address."""

    services: dict[tuple[str, str], Service] = field(default_factory=dict)
    namespaces: set[str] = field(default_factory=set)
    # (namespace, slice name) -> (service name, its ready endpoints)
    slices: dict[tuple[str, str], tuple[str, list[Endpoint]]] = field(default_factory=dict)
    # (namespace, service name) -> slice names, and the merged endpoints
    _service_slices: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    _endpoints: dict[tuple[str, str], list[Endpoint]] = field(default_factory=dict)
    synced: bool = False
    modified: int = field(default_factory=lambda: int(time.time()))

    @classmethod
    def from_objects(cls, services: Iterable[Obj] = (), slices: Iterable[Obj] = (),
                     namespaces: Iterable[str] = ()) -> ClusterView:
        view = cls()
        for ns in namespaces:
            view.namespaces.add(ns)
        for s in services:
            view.set_service(s)
        for s in slices:
            view.set_slice(s)
        view.synced = True
        return view

    # -- feeding ----------------------------------------------------------------------------------
    def _touch(self) -> None:
        self.modified = int(time.time())

    def set_namespace(self, obj: Obj) -> None:
        self.namespaces.add(obj["metadata"]["name"])

    def delete_namespace(self, obj: Obj) -> None:
        self.namespaces.discard(obj["metadata"]["name"])

    def set_service(self, obj: Obj) -> None:
        svc = service_entry(obj)
        self.services[(svc.namespace, svc.name)] = svc
        self._touch()

    def delete_service(self, obj: Obj) -> None:
        meta = obj["metadata"]
        self.services.pop((meta.get("namespace") or "", meta["name"]), None)
        self._touch()

    def set_slice(self, obj: Obj) -> None:
        meta = obj["metadata"]
        ns, name = meta.get("namespace") or "", meta["name"]
        service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL, "")
        old = self.slices.get((ns, name))
        if old is not None and old[0] != service:
            self._unlink(ns, name, old[0])
        self.slices[(ns, name)] = (service, slice_endpoints(obj))
        if service:
            self._service_slices.setdefault((ns, service), set()).add(name)
            self._merge(ns, service)
        self._touch()

    def delete_slice(self, obj: Obj) -> None:
        meta = obj["metadata"]
        ns, name = meta.get("namespace") or "", meta["name"]
        old = self.slices.pop((ns, name), None)
        if old is not None:
            self._unlink(ns, name, old[0])
        self._touch()

    def _unlink(self, ns: str, slice_name: str, service: str) -> None:
        names = self._service_slices.get((ns, service))
        if names is None:
            return
        names.discard(slice_name)
        if not names:
            del self._service_slices[(ns, service)]
        self._merge(ns, service)

    def _merge(self, ns: str, service: str) -> None:
        merged: list[Endpoint] = []
        for slice_name in sorted(self._service_slices.get((ns, service), ())):
            merged.extend(self.slices[(ns, slice_name)][1])
        if merged:
            self._endpoints[(ns, service)] = merged
        else:
            self._endpoints.pop((ns, service), None)

    # -- reading ----------------------------------------------------------------------------------
    def service(self, namespace: str, name: str) -> Service | None:
        return self.services.get((namespace, name))

    def endpoints(self, namespace: str, name: str) -> list[Endpoint]:
        return self._endpoints.get((namespace, name), [])

    def namespace_exists(self, namespace: str) -> bool:
        return namespace in self.namespaces

    def services_with_ip(self, ip: str) -> list[Service]:
        return [s for s in self.services.values() if ip in s.cluster_ips]

    def endpoints_with_ip(self, ip: str) -> list[tuple[str, str, Endpoint]]:
        """(namespace, service, endpoint) for every ready endpoint with this address."""
        return [(ns, svc, ep) for (ns, svc), eps in self._endpoints.items()
                for ep in eps if ep.ip == ip]
