"""The files every container of a pod gets at /etc/hosts, /etc/resolv.conf and /etc/hostname,
written as the kubelet (`kubelet_pods.go` managedHostsFileContent, `network/dns/dns.go`
GetPodDNS) and the CRI runtime (containerd's resolv.conf and hostname writers) write them.

Files are rewritten in place (truncate + write), never replaced by a rename: containers
bind-mount them, and a bind mount keeps pointing at the inode it was made from.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

log = logging.getLogger("pocketkube.kubelet.dnsconfig")

MANAGED_HOSTS_HEADER = "# Kubernetes-managed hosts file.\n"
MANAGED_HOSTS_HEADER_HOST_NETWORK = "# Kubernetes-managed hosts file (host network).\n"
MAX_NAMESERVERS = 3
MAX_SEARCH_PATHS = 32
MAX_SEARCH_LINE_CHARS = 2048
MAX_SEARCH_DOMAIN_LEN = 253
HOSTNAME_MAX_LEN = 63
DEFAULT_OPTIONS = ["ndots:5"]


class DNSConfigError(Exception):
    """The pod's hostname/domain cannot be formed (kube's message)."""


# --- hostname ---------------------------------------------------------------------------------


def pod_hostname(pod: dict[str, Any], cluster_domain: str) -> tuple[str, str]:
    """`GeneratePodHostNameAndDomain`: (hostname, domain) — spec.hostname or the pod name cut
    at 63 characters, and `<subdomain>.<ns>.svc.<cluster domain>` when a subdomain is set."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    hostname = spec.get("hostname") or meta.get("name", "")
    if len(hostname) > HOSTNAME_MAX_LEN:
        hostname = hostname[:HOSTNAME_MAX_LEN].rstrip("-.")
        if not hostname:
            raise DNSConfigError(f"hostname for pod {meta.get('name')!r} was invalid: "
                                 f"{spec.get('hostname') or meta.get('name')!r}")
    domain = ""
    if spec.get("subdomain"):
        domain = f"{spec['subdomain']}.{meta.get('namespace', '')}.svc.{cluster_domain}"
    return hostname, domain


def kernel_hostname(pod: dict[str, Any], cluster_domain: str) -> str:
    """The UTS hostname of the sandbox (`GetNodenameForKernel`): the FQDN with
    setHostnameAsFQDN, the node's hostname with hostNetwork."""
    spec = pod.get("spec") or {}
    if spec.get("hostNetwork"):
        return socket.gethostname()
    hostname, domain = pod_hostname(pod, cluster_domain)
    if spec.get("setHostnameAsFQDN") and domain:
        fqdn = f"{hostname}.{domain}"
        if len(fqdn) > 64:
            raise DNSConfigError(
                f"failed to construct FQDN from pod hostname and cluster domain, FQDN {fqdn} "
                f"is too long (64 characters is the max, {len(fqdn)} characters requested)")
        return fqdn
    return hostname


# --- /etc/hosts ----------------------------------------------------------------------------------


def _host_aliases(aliases: list[dict[str, Any]] | None) -> str:
    if not aliases:
        return ""
    lines = ["\n# Entries added by HostAliases.\n"]
    for a in aliases:
        lines.append(f"{a.get('ip', '')}\t{chr(9).join(a.get('hostnames') or [])}\n")
    return "".join(lines)


def hosts_content(pod_ips: list[str], hostname: str, domain: str,
                  aliases: list[dict[str, Any]] | None) -> str:
    """`managedHostsFileContent`."""
    out = [MANAGED_HOSTS_HEADER,
           "127.0.0.1\tlocalhost\n",
           "::1\tlocalhost ip6-localhost ip6-loopback\n",
           "fe00::0\tip6-localnet\n",
           "fe00::0\tip6-mcastprefix\n",
           "fe00::1\tip6-allnodes\n",
           "fe00::2\tip6-allrouters\n"]
    for ip in pod_ips:
        out.append(f"{ip}\t{hostname}.{domain}\t{hostname}\n" if domain else f"{ip}\t{hostname}\n")
    out.append(_host_aliases(aliases))
    return "".join(out)


# --- /etc/resolv.conf -----------------------------------------------------------------------------


def _omit_duplicates(items: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for s in items:
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def parse_resolv_conf(text: str) -> tuple[list[str], list[str], list[str]]:
    """`parseResolvConf`: nameservers accumulate, the last search line wins (trailing dots
    dropped, "." ignored), options accumulate with later ones replacing same-named ones."""
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for raw in text.split("\n"):
        line = raw.strip()
        if line.startswith("#"):
            continue
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) >= 2:
            servers.append(fields[1])
        elif fields[0] == "search":
            searches = [s.removesuffix(".") for s in fields[1:] if s != "."]
        elif fields[0] == "options":
            options = merge_options(options, [(o.partition(":")[0], o.partition(":")[2])
                                              for o in fields[1:]])
    return servers, searches, options


def merge_options(existing: list[str], extra: list[tuple[str, str]]) -> list[str]:
    """`mergeDNSOptions`: later options replace same-named ones (kept in first-seen order)."""
    merged: dict[str, str] = {}
    for op in existing:
        name, _, value = op.partition(":")
        merged[name] = value
    for name, value in extra:
        merged[name] = value
    return [f"{k}:{v}" if v else k for k, v in merged.items()]


def _fit_search(searches: list[str]) -> list[str]:
    exceeded = False
    if len(searches) > MAX_SEARCH_PATHS:
        searches, exceeded = searches[:MAX_SEARCH_PATHS], True
    kept = [s for s in searches if len(s) <= MAX_SEARCH_DOMAIN_LEN]
    exceeded = exceeded or len(kept) != len(searches)
    while kept and len(" ".join(kept)) > MAX_SEARCH_LINE_CHARS:
        kept.pop()
        exceeded = True
    if exceeded:
        log.warning("Search Line limits were exceeded, some search paths have been omitted, the "
                    "applied search line is: %s", " ".join(kept))
    return kept


def pod_dns(pod: dict[str, Any], cluster_dns: list[str], cluster_domain: str,
            host_resolv_text: str) -> tuple[list[str], list[str], list[str]]:
    """`GetPodDNS`: (nameservers, searches, options) for the pod's dnsPolicy and dnsConfig."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    servers, searches, options = parse_resolv_conf(host_resolv_text)
    if policy == "ClusterFirst" and spec.get("hostNetwork"):
        policy = "Default"
    if policy == "None":
        servers, searches, options = [], [], []
    elif policy in ("ClusterFirst", "ClusterFirstWithHostNet") and cluster_dns:
        servers = list(cluster_dns)
        if cluster_domain:
            ns = (pod.get("metadata") or {}).get("namespace", "")
            searches = _omit_duplicates([f"{ns}.svc.{cluster_domain}", f"svc.{cluster_domain}",
                                         cluster_domain, *searches])
        options = list(DEFAULT_OPTIONS)
    elif policy in ("ClusterFirst", "ClusterFirstWithHostNet"):
        log.warning("kubelet does not have ClusterDNS IP configured and cannot create Pod using "
                    '"ClusterFirst" policy. Falling back to "Default" policy.')
    extra = spec.get("dnsConfig")
    if extra:
        servers = _omit_duplicates(servers + list(extra.get("nameservers") or []))
        searches = _omit_duplicates(searches + list(extra.get("searches") or []))
        options = merge_options(options, [(o.get("name", ""), o.get("value") or "")
                                          for o in extra.get("options") or []])
    if len(servers) > MAX_NAMESERVERS:
        servers = servers[:MAX_NAMESERVERS]
        log.warning("Nameserver limits were exceeded, some nameservers have been omitted, the "
                    "applied nameserver line is: %s", " ".join(servers))
    return servers, _fit_search(searches), options


def resolv_content(servers: list[str], searches: list[str], options: list[str]) -> str:
    """The CRI runtime's rendering: search, nameserver lines, options."""
    out = ""
    if searches:
        out += f"search {' '.join(searches)}\n"
    if servers:
        out += "".join(f"nameserver {s}\n" for s in servers)
    if options:
        out += f"options {' '.join(options)}\n"
    return out


# --- writing --------------------------------------------------------------------------------


def _write_in_place(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
    path.chmod(0o644)


def write_pod_files(pod: dict[str, Any], pod_dir: Path, *, pod_ips: list[str],
                    cluster_dns: list[str], cluster_domain: str,
                    host_resolv: Path = Path("/etc/resolv.conf"),
                    host_hosts: Path = Path("/etc/hosts")) -> tuple[Path, Path, Path]:
    """Write `etc-hosts`, `resolv.conf` and `hostname` into pod_dir; returns their paths.
    Call again once the pod IPs are known (the hosts file names them)."""
    spec = pod.get("spec") or {}
    pod_dir.mkdir(parents=True, exist_ok=True)
    hosts, resolv, hostname_file = pod_dir / "etc-hosts", pod_dir / "resolv.conf", \
        pod_dir / "hostname"
    if spec.get("hostNetwork"):
        try:
            node_hosts = host_hosts.read_text()
        except OSError:
            node_hosts = ""
        hosts_text = (MANAGED_HOSTS_HEADER_HOST_NETWORK + node_hosts
                      + _host_aliases(spec.get("hostAliases")))
    else:
        name, domain = pod_hostname(pod, cluster_domain)
        hosts_text = hosts_content(pod_ips, name, domain, spec.get("hostAliases"))
    try:
        host_text = host_resolv.read_text()
    except OSError:
        host_text = ""
    resolv_text = resolv_content(*pod_dns(pod, cluster_dns, cluster_domain, host_text))
    _write_in_place(hosts, hosts_text)
    _write_in_place(resolv, resolv_text)
    _write_in_place(hostname_file, kernel_hostname(pod, cluster_domain) + "\n")
    return hosts, resolv, hostname_file
