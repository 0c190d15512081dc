"""`pocketkube service NAME [-n NS] [--url]`: where to reach a Service from this machine, as
`minikube service` prints it.

A NodePort or LoadBalancer Service is reachable on 127.0.0.1:<nodePort> (the proxy opens node
ports on the host), and a LoadBalancer also on <ingress address>:<port> once ServiceLB has
given it addresses. With --url only the URLs are printed, one a line (for scripts:
`curl $(pocketkube service web --url | head -1)`); without it, minikube's table. A Service
with neither (ClusterIP, ExternalName, a LoadBalancer still pending without node ports) gets
minikube's "has no node port" error; a missing one kubectl's NotFound error; both exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path
from typing import Any

import aiohttp
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pocketkube.api.errors import StatusError
from pocketkube.client.rest import ApiClient, ClientConfig, resource
from pocketkube.config import default_data_dir

log = logging.getLogger("pocketkube.cli.service")
SERVICES = resource("", "services")
Obj = dict[str, Any]
# minikube's table (olekukonko/tablewriter): |---| rules above and below, none between rows.
MINIKUBE_BOX = box.Box("|-||\n| ||\n|-||\n| ||\n|-||\n|-||\n| ||\n|-||\n", ascii=True)


def add_parser(
    subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]
) -> None:
    cmd = subparsers.add_parser(
        "service",
        parents=parents,
        help="print the URLs of a NodePort or LoadBalancer service, like minikube service",
    )
    cmd.add_argument("name", metavar="NAME", help="the service")
    cmd.add_argument(
        "-n", "--namespace", default="default", help="its namespace (default: default)"
    )
    cmd.add_argument("--url", action="store_true", help="print only the URLs, one a line")


def target_port(port: Obj) -> str:
    """minikube's TARGET PORT column: NAME/PORT for a named port, else the port."""
    return f"{port['name']}/{port.get('port')}" if port.get("name") else str(port.get("port"))


def service_urls(svc: Obj) -> list[tuple[str, str]]:
    """(TARGET PORT, URL) for every way in from this machine: the node port on 127.0.0.1 and,
    for a LoadBalancer, each ingress address on the service port."""
    spec = svc.get("spec") or {}
    if spec.get("type") not in ("NodePort", "LoadBalancer"):
        return []
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    hosts = [i.get("ip") or i.get("hostname") for i in ingress if i.get("ip") or i.get("hostname")]
    out: list[tuple[str, str]] = []
    for port in spec.get("ports") or []:
        if port.get("nodePort"):
            out.append((target_port(port), f"http://127.0.0.1:{port['nodePort']}"))
        if spec.get("type") == "LoadBalancer":
            out.extend((target_port(port), f"http://{_host(h)}:{port.get('port')}")
                       for h in hosts)
    return out


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def run(args: argparse.Namespace) -> int:
    out, err = Console(soft_wrap=True), Console(stderr=True, soft_wrap=True)
    data_dir = Path(getattr(args, "data_dir", None) or default_data_dir()).expanduser()
    kubeconfig = data_dir / "kubeconfig"
    if not kubeconfig.is_file():
        _plain(err, f"error: no cluster in {data_dir} (no kubeconfig there); "
                    "start one with `pocketkube start`")
        return 1
    config = ClientConfig.from_kubeconfig(kubeconfig, user_agent="pocketkube-service")
    try:
        svc = asyncio.run(_get(config, args.name, args.namespace))
    except StatusError as e:
        _plain(err, f"Error from server ({e.reason}): {e.message}")
        return 1
    except (aiohttp.ClientError, OSError) as e:
        _plain(err, f"error: cannot reach the cluster at {config.server}: {e}")
        return 1
    urls = service_urls(svc)
    ns, name = args.namespace, args.name
    if args.url:
        for _, url in urls:
            _plain(out, url)
    else:
        out.print(_table(ns, name, urls))
    if not urls:
        _plain(err, f"service {ns}/{name} has no node port")
        return 1
    return 0


async def _get(config: ClientConfig, name: str, namespace: str) -> Obj:
    client = ApiClient(config, max_connections=1)
    try:
        return await client.get(SERVICES, name, namespace)
    finally:
        await client.close()


def _table(ns: str, name: str, urls: list[tuple[str, str]]) -> Table:
    table = Table(box=MINIKUBE_BOX, highlight=False)
    # Headings centred, cells left-aligned and the port right-aligned, as minikube does.
    table.add_column(Text("NAMESPACE", justify="center"))
    table.add_column(Text("NAME", justify="center"))
    table.add_column(Text("TARGET PORT", justify="center"), justify="right")
    table.add_column(Text("URL", justify="center"))
    for port, url in urls or [("", "No node port")]:
        table.add_row(ns, name, port, url)
    return table


def _plain(console: Console, text: str) -> None:
    console.print(text, markup=False, highlight=False, emoji=False)
