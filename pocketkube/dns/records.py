"""What exists under the cluster domain, as CoreDNS's kubernetes plugin decides it
(plugin/kubernetes: parse.go, kubernetes.go `Records`/`findServices`/`findPods`, ns.go,
reverse.go): pure functions from a query name to the list of *entries* behind it (an address or
a target name, a port and the domain name the entry is known by), or a name error.

`pocketkube.dns.answer` turns entries into resource records per query type. Keeping the two
apart follows CoreDNS's own split between the backend and `plugin/backend_lookup.go`, and lets
the naming rules be tested without any wire format.

Names follow the Kubernetes DNS specification: `svc.ns.svc.<zone>`,
`_port._proto.svc.ns.svc.<zone>`, `endpoint.svc.ns.svc.<zone>` and, in `pods insecure` mode,
`a-b-c-d.ns.pod.<zone>` answered with the address written in the name.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass

from pocketkube.dns.view import NO_PORT, ClusterView

SVC = "svc"
POD = "pod"
DNS_SCHEMA_VERSION = "1.1.0"
REVERSE_ZONES = ("in-addr.arpa.", "ip6.arpa.")


class NameError_(Exception):
    """No such name (NXDOMAIN): CoreDNS's errNoItems / errInvalidRequest / errNsNotExposed."""


@dataclass(frozen=True)
class Entry:
    """CoreDNS's msg.Service: `host` is an IP address or a name (a CNAME target)."""

    host: str
    port: int
    key: str  # the owner name of the entry (an SRV target), absolute
    text: str = ""


@dataclass(frozen=True)
class Request:
    port: str = ""
    protocol: str = ""
    endpoint: str = ""
    service: str = ""
    namespace: str = ""
    pod_or_svc: str = ""


@functools.lru_cache(maxsize=65536)
def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def in_domain(name: str, domain: str) -> bool:
    """Whether absolute `name` is `domain` or below it (both lower case, with the root dot)."""
    return name == domain or name.endswith("." + domain)


def parse_request(base: str) -> Request:
    """Split the part of a name left of the zone (lower case, no trailing dot): the five
    shapes of parse.go; anything longer is a name error."""
    if base in ("", SVC, POD):
        return Request()
    segs = base.split(".")
    kind = segs.pop()
    if kind not in (SVC, POD):
        raise NameError_(base)
    if not segs:
        return Request(pod_or_svc=kind)
    namespace = segs.pop()
    if not segs:
        return Request(namespace=namespace, pod_or_svc=kind)
    service = segs.pop()
    if not segs:
        return Request(service=service, namespace=namespace, pod_or_svc=kind)
    if len(segs) == 1:
        return Request(endpoint=segs[0], service=service, namespace=namespace, pod_or_svc=kind)
    if len(segs) == 2:
        return Request(port=segs[0].removeprefix("_"), protocol=segs[1].removeprefix("_"),
                       service=service, namespace=namespace, pod_or_svc=kind)
    raise NameError_(base)


def _match(wanted: str, have: str) -> bool:
    return wanted == "" or wanted == have.lower()


def records(view: ClusterView, base: str, zone: str, ttl: int) -> list[Entry]:
    """kubernetes.go `Records`: the entries for `base`.<zone>, or NameError_."""
    r = parse_request(base)
    if not r.pod_or_svc:
        return []
    if not view.namespace_exists(r.namespace):
        raise NameError_(base)
    if r.pod_or_svc == POD:
        return find_pods(r, zone)
    return find_services(view, r, zone)


def find_pods(r: Request, zone: str) -> list[Entry]:
    """`pods insecure`: any address-shaped name answers with that address."""
    name = r.service
    if not name:
        return []  # NODATA for an existing namespace
    if name.count("-") == 3 and "--" not in name:
        ip = name.replace("-", ".")
    else:
        ip = name.replace("-", ":")
    if not is_ip(ip):
        raise NameError_(name)
    return [Entry(ip, 0, f"{name}.{r.namespace}.{POD}.{zone}")]


def find_services(view: ClusterView, r: Request, zone: str) -> list[Entry]:
    if not r.service:
        return []
    svc = view.service(r.namespace, r.service)
    if svc is None:
        raise NameError_(r.service)
    domain = f"{svc.name}.{svc.namespace}.{SVC}.{zone}"
    found = False
    out: list[Entry] = []
    if svc.type == "ExternalName":
        # No endpoints, and no _port._proto names, for an ExternalName service.
        if not (r.endpoint or r.port or r.protocol) and svc.external_name and \
                not is_ip(svc.external_name):
            return [Entry(svc.external_name, 0, domain)]
        raise NameError_(r.service)
    if svc.headless or r.endpoint:
        for ep in view.endpoints(svc.namespace, svc.name):
            if r.endpoint and r.endpoint != ep.name.lower():
                continue
            for p in ep.ports:
                if _match(r.port, p.name) and _match(r.protocol, p.protocol):
                    found = True
                    out.append(Entry(ep.ip, p.port, f"{ep.name}.{domain}"))
    else:
        for p in svc.ports:
            if _match(r.port, p.name) and _match(r.protocol, p.protocol):
                found = True
                out.extend(Entry(ip, p.port, domain) for ip in svc.cluster_ips)
    if not found:
        raise NameError_(r.service)
    return out


def ns_addresses(view: ClusterView, zone: str, local_ips: tuple[str, ...]) -> list[Entry]:
    """ns.go `nsAddrs`: the names and addresses this server is known by: the services whose
    endpoints are this server's addresses, else `ns.dns.<zone>` at the local addresses."""
    out: list[Entry] = []
    for ip in local_ips:
        for ns, name, _ in view.endpoints_with_ip(ip):
            svc = view.service(ns, name)
            if svc is None:
                continue
            domain = f"{name}.{ns}.{SVC}.{zone}"
            if svc.headless:
                out.extend(Entry(ep.ip, NO_PORT, f"{ep.name}.{domain}")
                           for ep in view.endpoints(ns, name))
            else:
                out.extend(Entry(cip, NO_PORT, domain) for cip in svc.cluster_ips)
    if not out:
        out = [Entry(ip, NO_PORT, f"ns.dns.{zone}") for ip in local_ips]
    return out


def reverse(view: ClusterView, ip: str, zone: str) -> list[str]:
    """reverse.go: the name of the service with this cluster IP, else of the endpoints with it."""
    for svc in view.services_with_ip(ip):
        return [f"{svc.name}.{svc.namespace}.{SVC}.{zone}"]
    return [f"{ep.name}.{name}.{ns}.{SVC}.{zone}"
            for ns, name, ep in view.endpoints_with_ip(ip)]


def address_from_reverse(name: str) -> str:
    """The address a PTR name stands for ('' if the name is not a whole address)."""
    name = name.rstrip(".")
    try:
        if name.endswith(".in-addr.arpa"):
            parts = name[: -len(".in-addr.arpa")].split(".")
            if len(parts) == 4:
                return str(ipaddress.IPv4Address(".".join(reversed(parts))))
        elif name.endswith(".ip6.arpa"):
            nibbles = name[: -len(".ip6.arpa")].split(".")
            if len(nibbles) == 32 and all(len(n) == 1 for n in nibbles):
                digits = "".join(reversed(nibbles))
                return str(ipaddress.IPv6Address(int(digits, 16)))
    except ValueError:
        return ""
    return ""
