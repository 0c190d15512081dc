"""What runs on a node besides its agent: the service proxy and cluster DNS, as `pocketkube
server` runs them beside its own node and `pocketkube agent` beside a node joining from another
machine. Also the options both commands share for them (--disable, --dns-upstream) and how a
joining node learns the cluster's address ranges (kube-system/pocketkube-config, written by the
API server, as `kubeadm join` reads kubeadm-config).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
from pathlib import Path
from typing import Any

from pocketkube.api import errors
from pocketkube.client.rest import ApiClient, resource
from pocketkube.components import ComponentContext
from pocketkube.config import CLUSTER_CIDR, CLUSTER_CONFIG, SERVICE_CIDR, ServerConfig

log = logging.getLogger("pocketkube.agent")

DISABLEABLE = ("proxy", "cluster-dns")
SERVICE_RANGE_FILE = "service-cidr"


def disable_list(value: str) -> list[str]:
    parts = [p.strip() for p in value.split(",") if p.strip()]
    unknown = [p for p in parts if p not in DISABLEABLE]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"cannot disable {', '.join(unknown)}: one of {', '.join(DISABLEABLE)}")
    return parts


def upstream_list(value: str) -> list[str]:
    if value.strip() == "none":
        return []
    out = []
    for item in (v.strip() for v in value.split(",") if v.strip()):
        host, _, port_text = item.rpartition(":") if item.count(":") == 1 else (item, "", "")
        try:
            ipaddress.ip_address(host or item)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{item!r} is not an IP address[:port]") from None
        if port_text and not (port_text.isdigit() and 0 < int(port_text) < 65536):
            raise argparse.ArgumentTypeError(f"{item!r}: bad port")
        out.append(item)
    return out


async def cluster_ranges(client: ApiClient) -> tuple[str, str]:
    """(pod range, service range) the cluster's API server published; kube's defaults when it
    published none (an older server)."""
    try:
        cm = await client.get(resource("", "configmaps"), CLUSTER_CONFIG, "kube-system")
    except errors.StatusError as e:
        if e.code != 404:
            raise
        log.warning("kube-system/%s not found: assuming pod range %s, service range %s",
                    CLUSTER_CONFIG, CLUSTER_CIDR, SERVICE_CIDR)
        return CLUSTER_CIDR, SERVICE_CIDR
    data = cm.get("data") or {}
    return data.get("podSubnet") or CLUSTER_CIDR, data.get("serviceSubnet") or SERVICE_CIDR


def remember_service_range(agent_root: Path, service_cidr: str) -> None:
    """Kept in the agent's directory so `pocketkube delete` removes this cluster's proxy rules
    (and no other cluster's) even with the cluster out of reach."""
    agent_root.mkdir(parents=True, exist_ok=True)
    (agent_root / SERVICE_RANGE_FILE).write_text(service_cidr + "\n")


def remembered_service_range(agent_root: Path, default: str) -> str:
    try:
        return (agent_root / SERVICE_RANGE_FILE).read_text().strip() or default
    except OSError:
        return default


async def run_beside(client: ApiClient, agent: Any, node_name: str, config: ServerConfig,
                     disable: list[str], dns_upstreams: list[str] | None) -> None:
    """Run `agent` (its `run()` coroutine) with this node's proxy and DNS until one ends."""
    from pocketkube.dns import component as dns
    from pocketkube.proxy import component as proxy

    tasks = [asyncio.create_task(agent.run(), name="node-agent")]
    for part in (proxy, dns):
        if part.NAME in disable:
            continue
        options: dict[str, Any] = {"node_name": node_name}
        if part is dns and dns_upstreams is not None:
            options["upstreams"] = dns_upstreams
        ctx = ComponentContext(part.NAME, config, client, options)
        tasks.append(asyncio.create_task(part.run(ctx), name=part.NAME))
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            t.result()  # a part that failed takes the node down, loudly
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
