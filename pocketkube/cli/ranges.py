"""A cluster's address ranges: the pod range (--cluster-cidr) and the service range
(--service-cidr), how they are validated, and how a new cluster with a node on this host keeps
clear of the ranges other clusters already use here.

Clusters with real nodes share the host's network namespace: two pod bridges on one subnet
would fight over its route, and two service proxies on one service range would both answer for
its addresses. So when a brand-new cluster would take a default range that is already in use on
this host — a route into it (another cluster's pod bridge, or a host network), or service-proxy
chains for it — it takes the next free one instead and says so. Ranges a user gave, or that a
cluster remembered from an earlier start, are never changed behind their back.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import shutil
import socket
import struct
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

from pocketkube.cli.instance import Options
from pocketkube.config import CLUSTER_CIDR, SERVICE_CIDR

log = logging.getLogger("pocketkube.cli.ranges")

Network = ipaddress.IPv4Network
# Where a new cluster goes when the defaults are taken: clear of each other, of the default
# ranges, and of 10.128–10.199 (which pocketkube's own test clusters use for pods).
POD_ALTERNATIVES = tuple(f"10.{b}.0.0/16" for b in range(245, 255))
SERVICE_ALTERNATIVES = tuple(f"10.{b}.0.0/16" for b in range(112, 128))


def _network(value: str, example: str) -> Network:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a network such as {example}") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise argparse.ArgumentTypeError(f"{value!r}: only IPv4 ranges are supported")
    return net


def pod_range(value: str) -> str:
    """Validate --cluster-cidr: each node takes a /24 of it."""
    net = _network(value, "10.244.0.0/16")
    if net.prefixlen > 16:
        raise argparse.ArgumentTypeError(f"{value!r}: an IPv4 range of /16 or larger is needed")
    return str(net)


def service_range(value: str) -> str:
    """Validate --service-cidr with kube-apiserver's bounds (no larger than /12) and room for
    the cluster DNS address (the tenth)."""
    net = _network(value, "10.96.0.0/12")
    if net.prefixlen < 12:
        raise argparse.ArgumentTypeError(
            f"{value!r}: the service range may be no larger than /12")
    if net.prefixlen > 24:
        raise argparse.ArgumentTypeError(f"{value!r}: a service range of /24 or larger is needed")
    return str(net)


def overlap_error(cluster_cidr: str, service_cidr: str) -> str | None:
    if ipaddress.ip_network(cluster_cidr).overlaps(ipaddress.ip_network(service_cidr)):
        return (f"the pod range {cluster_cidr} overlaps the service range {service_cidr}: "
                "pods and Services need addresses of their own")
    return None


def host_routes(path: Path = Path("/proc/net/route")) -> list[Network]:
    """The IPv4 networks this host routes to, other than the default route."""
    out = []
    try:
        lines = path.read_text().splitlines()[1:]
    except OSError:
        return out
    for line in lines:
        fields = line.split()
        if len(fields) < 8:
            continue
        dest, mask = (socket.inet_ntoa(struct.pack("<I", int(f, 16))) for f in (fields[1],
                                                                                fields[7]))
        net = ipaddress.ip_network(f"{dest}/{mask}", strict=False)
        if net.prefixlen:
            out.append(net)
    return out


def proxy_chains() -> set[str]:
    """The nat chains present on this host (empty without root or iptables)."""
    if not shutil.which("iptables-save"):
        return set()
    try:
        proc = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return set()
    return {line[1:].split()[0] for line in proc.stdout.splitlines() if line.startswith(":")}


def _first_free(default: str, alternatives: Iterable[str],
                taken: Callable[[Network], bool]) -> str:
    for candidate in (default, *alternatives):
        if not taken(ipaddress.IPv4Network(candidate)):
            return candidate
    return default  # everything taken: keep the default and let the user choose


def choose(cluster_cidr: str | None, service_cidr: str | None, *,
           routes: list[Network], chains: set[str]) -> tuple[str, str]:
    """The ranges of a new cluster with a node on this host: given ones as they are, the
    others the first of the default and its alternatives that nothing here uses."""
    from pocketkube.proxy.chains import Chains, tag_for

    pod = cluster_cidr or _first_free(
        CLUSTER_CIDR, POD_ALTERNATIVES,
        lambda net: any(net.overlaps(r) for r in routes) or (
            service_cidr is not None and net.overlaps(ipaddress.ip_network(service_cidr))))
    pod_net = ipaddress.ip_network(pod)
    svc = service_cidr or _first_free(
        SERVICE_CIDR, SERVICE_ALTERNATIVES,
        lambda net: Chains(tag_for(str(net))).services in chains or net.overlaps(pod_net)
        or any(net.overlaps(r) for r in routes))
    return pod, svc


def settle_new_cluster(options: Options, given: dict[str, object]) -> list[str]:
    """Fill in the ranges of a new cluster that the user left out; returns notes for the user
    about any range moved off its default."""
    if not options.node_agent:
        return []
    pod_given, svc_given = given.get("cluster_cidr"), given.get("service_cidr")
    if pod_given and svc_given:
        return []
    pod, svc = choose(str(pod_given) if pod_given else None,
                      str(svc_given) if svc_given else None,
                      routes=host_routes(), chains=proxy_chains())
    notes = []
    if pod != CLUSTER_CIDR and not pod_given:
        notes.append(f"pod range {CLUSTER_CIDR} is in use on this host; using {pod}")
    if svc != SERVICE_CIDR and not svc_given:
        notes.append(f"service range {SERVICE_CIDR} is in use on this host; using {svc}")
    options.cluster_cidr, options.service_cidr = pod, svc
    return notes

