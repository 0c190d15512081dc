"""Services: kube's `pkg/registry/core/service` — cluster IPs from the service range and node
ports from 30000-32767, allocated on create, kept on update, released on delete.

Allocations are rebuilt from the services in the watch cache when the server starts, so they need
no bitmap of their own in the store (kube keeps one because many API servers share it; here the
store's compare-and-swap on the Service object itself makes a double allocation visible as a
validation error on one of the two writes).
"""

from __future__ import annotations

import ipaddress
import random
from typing import Any

from pocketkube.api import errors
from pocketkube.registry.strategy import Context, Obj, Strategy

NODE_PORT_RANGE = (30000, 32767)


class IPAllocator:
    def __init__(self, cidr: str) -> None:
        self.net = ipaddress.ip_network(cidr, strict=False)
        self.used: set[str] = set()
        size = self.net.num_addresses
        # kube allocates dynamic IPs from the upper part of the range first, leaving the lower
        # sixteenth for addresses users pick (like the DNS service's .10).
        self.dynamic_start = max(2, min(size // 16, 256))

    def contains(self, ip: str) -> bool:
        try:
            return ipaddress.ip_address(ip) in self.net
        except ValueError:
            return False

    def allocate(self) -> str:
        size = self.net.num_addresses
        for _ in range(64):
            ip = str(self.net[random.randrange(self.dynamic_start, size - 1)])
            if ip not in self.used:
                self.used.add(ip)
                return ip
        for i in range(1, size - 1):
            ip = str(self.net[i])
            if ip not in self.used:
                self.used.add(ip)
                return ip
        raise errors.internal("failed to allocate a serviceIP: range is full")


class PortAllocator:
    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi
        self.used: set[int] = set()

    def allocate(self) -> int:
        for _ in range(64):
            p = random.randint(self.lo, self.hi)
            if p not in self.used:
                self.used.add(p)
                return p
        for p in range(self.lo, self.hi + 1):
            if p not in self.used:
                self.used.add(p)
                return p
        raise errors.internal("failed to allocate a nodePort: range is full")


def _externally_accessible(spec: Obj) -> bool:
    return spec.get("type") in ("LoadBalancer", "NodePort") or bool(spec.get("externalIPs"))


def drop_type_dependent_fields(spec: Obj, old: Obj) -> None:
    """kube's dropTypeDependentFields: a field only one type of Service uses is cleared when
    the type changes away from it, unless the update changed the field itself."""
    def same(field: str) -> bool:
        return spec.get(field) == old.get(field)

    if not _needs_node_ports(spec) and _needs_node_ports(old):
        old_ports = [p.get("nodePort") for p in old.get("ports") or []]
        if [p.get("nodePort") for p in spec.get("ports") or []] == old_ports:
            for p in spec.get("ports") or []:
                p.pop("nodePort", None)
    lb = "LoadBalancer"
    if spec.get("type") != lb and old.get("type") == lb:
        for field in ("allocateLoadBalancerNodePorts", "loadBalancerClass"):
            if same(field):
                spec.pop(field, None)
    if not (spec.get("type") == lb and spec.get("externalTrafficPolicy") == "Local") and \
            old.get("healthCheckNodePort") and same("healthCheckNodePort"):
        spec.pop("healthCheckNodePort", None)
    if not _externally_accessible(spec) and _externally_accessible(old) and \
            same("externalTrafficPolicy"):
        spec.pop("externalTrafficPolicy", None)


def _needs_node_ports(spec: dict[str, Any]) -> bool:
    t = spec.get("type", "ClusterIP")
    if t == "NodePort":
        return True
    return t == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts", True) is not False


def _needs_health_check(spec: dict[str, Any]) -> bool:
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def _node_ports(spec: dict[str, Any]) -> set[int]:
    """Every node port a Service holds: its ports' and its health check's."""
    out = {int(p["nodePort"]) for p in spec.get("ports") or [] if p.get("nodePort")}
    if spec.get("healthCheckNodePort"):
        out.add(int(spec["healthCheckNodePort"]))
    return out


class ServiceStrategy(Strategy):
    def __init__(self, resource: Any, registry: Any) -> None:
        super().__init__(resource, registry)
        self.ips = IPAllocator(registry.service_cidr)
        self.ports = PortAllocator(*NODE_PORT_RANGE)

    def initial_status(self, obj: Obj) -> Obj:
        return {"loadBalancer": {}}

    async def started(self) -> None:
        store = self.registry.store("", "services")
        for svc in store.cache.items.values():
            self._mark(svc)

    def _mark(self, svc: Obj) -> None:
        spec = svc.get("spec") or {}
        for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]:
            if ip and ip != "None":
                self.ips.used.add(ip)
        self.ports.used.update(_node_ports(spec))

    def _fail(self, obj: Obj, field: str, value: str, why: str) -> errors.StatusError:
        name = obj["metadata"].get("name", "")
        return errors.invalid("Service", name, [errors.field_error(
            "FieldValueInvalid", field, f"Invalid value: {value}: {why}")])

    def prepare_for_update(self, new: Obj, old: Obj, ctx: Context) -> None:
        super().prepare_for_update(new, old, ctx)
        drop_type_dependent_fields(new.setdefault("spec", {}), old.get("spec") or {})

    async def admit(self, obj: Obj, old: Obj | None, ctx: Context) -> None:
        spec = obj.setdefault("spec", {})
        old_spec = (old or {}).get("spec") or {}
        t = spec.get("type", "ClusterIP")
        if t == "ExternalName":
            for f in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                spec.pop(f, None)
        elif old is not None and old_spec.get("clusterIP"):
            spec.setdefault("clusterIP", old_spec["clusterIP"])
            spec.setdefault("clusterIPs", old_spec.get("clusterIPs", [old_spec["clusterIP"]]))
        else:
            ip = spec.get("clusterIP") or ""
            if ip == "None":
                spec["clusterIPs"] = ["None"]
            elif ip:
                if not self.ips.contains(ip):
                    raise self._fail(obj, "spec.clusterIPs", f'[]string{{"{ip}"}}',
                                     f"failed to allocate IP {ip}: the provided IP ({ip}) is "
                                     f"not in the valid range. The range of valid IPs is "
                                     f"{self.ips.net}")
                if ip in self.ips.used:
                    raise self._fail(obj, "spec.clusterIPs", f'[]string{{"{ip}"}}',
                                     f"failed to allocate IP {ip}: provided IP is already "
                                     f"allocated")
                self.ips.used.add(ip)
                spec["clusterIPs"] = [ip]
            else:
                ip = self.ips.allocate()
                spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
        old_ports = {(p.get("port"), p.get("protocol")): p.get("nodePort")
                     for p in old_spec.get("ports") or []}
        if _needs_node_ports(spec):
            for p in spec.get("ports") or []:
                if p.get("nodePort"):
                    n = int(p["nodePort"])
                    if n in self.ports.used and n not in old_ports.values():
                        raise self._fail(obj, "spec.ports[0].nodePort", str(n),
                                         "provided port is already allocated")
                    self.ports.used.add(n)
                else:
                    keep = old_ports.get((p.get("port"), p.get("protocol")))
                    p["nodePort"] = keep or self.ports.allocate()
        else:
            for p in spec.get("ports") or []:
                p.pop("nodePort", None)
        self._health_check_node_port(obj, old)
        if old is not None:
            self._release_dropped(old, obj)

    def _health_check_node_port(self, obj: Obj, old: Obj | None) -> None:
        """kube's healthCheckNodePort rules: allocated for LoadBalancers with
        externalTrafficPolicy Local (the proxy serves it), kept across updates, refused on
        anything else."""
        spec, old_spec = obj["spec"], (old or {}).get("spec") or {}
        port, old_port = spec.get("healthCheckNodePort"), old_spec.get("healthCheckNodePort")
        was_needed = old is not None and _needs_health_check(old_spec)
        if not _needs_health_check(spec):
            if port and not (was_needed and port == old_port):
                raise self._fail(obj, "spec.healthCheckNodePort", str(port),
                                 "may only be set when `type` is 'LoadBalancer' and "
                                 "`externalTrafficPolicy` is 'Local'")
            return
        if was_needed and old_port:
            if port and port != old_port:
                raise errors.invalid("Service", obj["metadata"].get("name", ""), [
                    errors.field_error("FieldValueForbidden", "spec.healthCheckNodePort",
                                       "Forbidden: field is immutable")])
            spec["healthCheckNodePort"] = old_port
            return
        if port:
            n = int(port)
            if n in self.ports.used:
                raise self._fail(obj, "spec.healthCheckNodePort", str(n),
                                 "provided port is already allocated")
            self.ports.used.add(n)
        else:
            spec["healthCheckNodePort"] = self.ports.allocate()

    def _release_dropped(self, old: Obj, new: Obj) -> None:
        keep_ports = _node_ports(new.get("spec") or {})
        for n in _node_ports(old.get("spec") or {}) - keep_ports:
            self.ports.used.discard(n)

    async def release(self, obj: Obj) -> None:
        spec = obj.get("spec") or {}
        for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]:
            if ip and ip != "None":
                self.ips.used.discard(ip)
        for n in _node_ports(spec):
            self.ports.used.discard(n)
