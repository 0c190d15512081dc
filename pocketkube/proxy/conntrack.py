"""Stale UDP conntrack entries after a proxy sync (kube-proxy's pkg/proxy/conntrack cleanup).

UDP has no connection to end: a client that keeps sending to a Service keeps its conntrack
entry alive, and the entry keeps the DNAT it was created with. Two cases blackhole traffic
until the entry is deleted:

- an endpoint went away (deleted, or no longer serving): entries whose reply comes from its IP
  still send the client's datagrams there — deleted for the Service's cluster IP, external IPs
  and load-balancer IPs (`--orig-dst <ip> --reply-src <endpoint>`) and its node port
  (`--dport <nodePort> --reply-src <endpoint>`);
- a Service went from no serving endpoints to some: while it had none, the filter table's
  REJECT left entries without DNAT for its IPs and node port, which would now bypass the new
  rules — deleted by destination alone (`--orig-dst <ip>`, `--dport <nodePort>`), as are the
  entries of a UDP Service port that was removed.

This is the event-driven cleanup kube-proxy does from its previous and current endpoint maps
(kube 1.32 reaches the same result by listing the table; with the `conntrack` tool a list of
targeted deletions is cheaper than parsing the whole table every sync). Only UDP, as in kube:
a TCP or SCTP client whose connection fails opens a new one, which gets a new entry. The deletions use the
`conntrack` command-line tool (Debian package `conntrack`) rather than a netlink binding, which
would be a new native dependency for a handful of calls per endpoint change.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
from collections.abc import Iterable

from pocketkube.proxy.model import Endpoint, ServicePort

log = logging.getLogger("pocketkube.proxy.conntrack")

Synced = list[tuple[ServicePort, list[Endpoint]]]
PortKey = tuple[str, str]  # (ServicePortName "ns/name[:port]", protocol)

BINARY = "conntrack"
_DELETED = re.compile(r"(\d+) flow entries have been deleted")
_missing_logged = False


def _by_key(services: Synced) -> dict[PortKey, tuple[ServicePort, list[Endpoint]]]:
    return {(sp.key, sp.protocol): (sp, eps) for sp, eps in services if sp.protocol == "UDP"}


def _frontend_ips(sp: ServicePort) -> list[str]:
    return [sp.cluster_ip, *sp.external_ips, *sp.load_balancer_vips]


def stale_entry_commands(old: Synced, new: Synced) -> list[list[str]]:
    """The `conntrack` argv lists that delete the entries made stale between the previous
    sync's (ServicePort, endpoints) list and this one's. `old` is [] before the first sync, so
    every UDP Service with endpoints then counts as newly active (as in kube-proxy, whose
    endpoint map starts empty)."""
    before, after = _by_key(old), _by_key(new)
    service_ips: list[str] = []
    node_ports: list[int] = []
    nat: list[tuple[str, str]] = []  # (frontend IP, endpoint IP)
    port_nat: list[tuple[int, str]] = []  # (node port, endpoint IP)

    # A UDP Service port that is gone: whatever still points at its cluster IP is stale.
    for key, (sp, _) in before.items():
        if key not in after:
            service_ips.append(sp.cluster_ip)

    for key, (sp, eps) in after.items():
        old_eps = before.get(key, (sp, []))[1]
        # From no serving endpoints to some: flows REJECTed meanwhile left undNATed entries.
        if any(e.serving for e in eps) and not any(e.serving for e in old_eps):
            log.debug("newly active UDP service %s may have stale conntrack entries", sp.key)
            service_ips += _frontend_ips(sp)
            if sp.node_port:
                node_ports.append(sp.node_port)
        # Endpoints that were serving and no longer are (or no longer exist).
        now_serving = {str(e) for e in eps if e.serving}
        for ep in old_eps:
            if not ep.serving or str(ep) in now_serving:
                continue
            log.debug("deleted endpoint %s of %s may have stale conntrack entries", ep, sp.key)
            if sp.node_port:
                port_nat.append((sp.node_port, ep.ip))
            nat += [(ip, ep.ip) for ip in _frontend_ips(sp)]

    udp = [BINARY, "-D", "-p", "udp"]
    commands = [[*udp, "--orig-dst", ip] for ip in service_ips]
    commands += [[*udp, "--dport", str(p)] for p in node_ports]
    commands += [[*udp, "--dport", str(p), "--reply-src", ip] for p, ip in port_nat]
    commands += [[*udp, "--orig-dst", dst, "--reply-src", ip] for dst, ip in nat]
    return _unique(commands)


def _unique(commands: Iterable[list[str]]) -> list[list[str]]:
    seen: set[tuple[str, ...]] = set()
    out = []
    for argv in commands:
        if tuple(argv) not in seen:
            seen.add(tuple(argv))
            out.append(argv)
    return out


def available() -> bool:
    return shutil.which(BINARY) is not None


async def delete_entries(commands: list[list[str]]) -> int:
    """Run `conntrack -D` commands one after another; returns how many entries they deleted.
    Nothing matching is not an error (conntrack exits 1 saying "0 flow entries have been
    deleted"); other failures are logged and the rest still run. Without the tool, one
    warning is logged for the life of the process and nothing runs."""
    global _missing_logged
    if not commands:
        return 0
    if not available():
        if not _missing_logged:
            _missing_logged = True
            log.warning("%s not found: stale UDP conntrack entries will not be deleted "
                        "(install the conntrack package)", BINARY)
        return 0
    deleted = 0
    for argv in commands:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE)
            _, err = await proc.communicate()
        except OSError as e:
            log.error("Failed to run %s: %s", " ".join(argv), e)
            continue
        text = err.decode(errors="replace").strip()
        m = _DELETED.search(text)
        if proc.returncode == 0 or (proc.returncode == 1 and m is not None):
            n = int(m.group(1)) if m else 0
            if n:
                log.info("deleted %d stale conntrack entries: %s", n, " ".join(argv[1:]))
            deleted += n
            continue
        log.error("Failed to delete stale conntrack entries (%s exited %s): %s",
                  " ".join(argv), proc.returncode, text)
    return deleted


async def clean_stale_entries(old: Synced, new: Synced) -> int:
    """Delete the conntrack entries made stale between two syncs (after the new rules are in
    place, so no new stale entry can be created behind the deletion)."""
    return await delete_entries(stale_entry_commands(old, new))
