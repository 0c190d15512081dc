"""`pocketkube agent`: run a node agent on this machine for a cluster elsewhere (or, with no
server, only the static pods of its manifest directory — kubelet's standalone mode).

    pocketkube agent --server https://10.0.0.5:6443 --token $(kubectl create token default)
    pocketkube agent --kubeconfig ~/.kube/config --node-name worker-1
    pocketkube agent --pod-manifest-path ./manifests          # standalone

The API server's CA comes from --ca-file, the kubeconfig, or (with a token) the
`kube-root-ca.crt` ConfigMap read once without verification — trust on first use, like
`kubeadm join --discovery-token-unsafe-skip-ca-verification`. Joined to a cluster, the node also
runs its service proxy and cluster DNS (unless --disable), on the address ranges the cluster
publishes in kube-system/pocketkube-config.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import ssl
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import aiohttp

from pocketkube.cli.instance import Instance
from pocketkube.cli.nodeparts import (
    cluster_ranges,
    disable_list,
    remember_service_range,
    run_beside,
    upstream_list,
)
from pocketkube.client.rest import ApiClient, ClientConfig
from pocketkube.components.signals import run_until_signalled
from pocketkube.config import ServerConfig, default_data_dir

log = logging.getLogger("pocketkube.agent")
DEFAULT_PORT = 10250


def add_parser(sub: argparse._SubParsersAction, log_levels: tuple[str, ...]) -> None:
    p = sub.add_parser("agent", help="run a node agent (kubelet) for a cluster, until interrupted")
    p.add_argument("--server", help="API server URL (with --token)")
    p.add_argument("--token", help="bearer token to authenticate with")
    p.add_argument("--ca-file", type=Path, help="the API server's CA certificate")
    p.add_argument("--kubeconfig", type=Path, help="cluster and credentials to use instead")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="agent state, images and logs (default $POCKETKUBE_HOME or ~/.pocketkube)")
    p.add_argument("--node-name", default=None, help="node name (default: the host name)")
    p.add_argument("--node-ip", default="",
                   help="the address the API server reaches this node at (default: the pod "
                   "bridge's gateway with runc, 127.0.0.1 with the process runtime)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"streaming server port (default {DEFAULT_PORT})")
    p.add_argument("--bind-address", default="0.0.0.0",
                   help="streaming server address (default 0.0.0.0)")
    p.add_argument("--runtime", choices=("auto", "runc", "process"), default="auto")
    p.add_argument("--pod-manifest-path", type=Path, default=None,
                   help="static pod manifests (default <data-dir>/manifests)")
    p.add_argument("--log-level", choices=log_levels, default="info")
    p.add_argument("--disable", type=disable_list, default=[], metavar="PART[,PART]",
                   help="parts of the node not to run beside the agent: proxy, cluster-dns")
    p.add_argument("--dns-upstream", type=upstream_list, default=None,
                   metavar="IP[:PORT][,…]|none",
                   help="where this node's cluster DNS forwards other names (default: this "
                   "host's resolv.conf nameservers)")
    p.add_argument("--container-log-max-size", default="10Mi",
                   help="rotate a container's log past this size (default 10Mi)")
    p.add_argument("--container-log-max-files", type=int, default=5,
                   help="log files kept per container, the live one included (default 5)")


def run(args: argparse.Namespace) -> int:
    from pocketkube.kubelet.agent import AgentConfig

    data = (args.data_dir or default_data_dir()).expanduser().resolve()
    Instance(data).mark()  # so `pocketkube delete --data-dir` may remove it (and its pods)
    config = AgentConfig(
        root=data / "agent", images_root=data / "images",
        node_name=(args.node_name or socket.gethostname()).lower(), node_ip=args.node_ip,
        runtime=args.runtime, port=args.port, bind=args.bind_address,
        manifests=args.pod_manifest_path or data / "manifests",
        container_log_max_size=args.container_log_max_size,
        container_log_max_files=args.container_log_max_files)
    if not (args.server or args.kubeconfig):
        from pocketkube.kubelet.standalone import run_standalone

        return asyncio.run(_signalled(run_standalone(config)))
    try:
        client_config = _client_config(args)
    except (OSError, ValueError, KeyError, StopIteration) as e:
        log.error("cannot reach the cluster: %s", e)
        return 1
    return asyncio.run(_signalled(_run(client_config, config, args)))


def _client_config(args: argparse.Namespace) -> ClientConfig:
    if args.kubeconfig:
        cc = ClientConfig.from_kubeconfig(args.kubeconfig, user_agent="pocketkube-agent")
        if args.token:
            cc.token = args.token
        return cc
    if not args.token:
        raise ValueError("--server needs --token (or use --kubeconfig)")
    ca = args.ca_file
    if ca is None:
        ca = asyncio.run(_fetch_root_ca(args.server, args.token))
    return ClientConfig(args.server, ca_file=ca, token=args.token, user_agent="pocketkube-agent")


async def _fetch_root_ca(server: str, token: str) -> Path:
    """The cluster CA from the kube-root-ca.crt ConfigMap (unverified: trust on first use)."""
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    url = f"{server.rstrip('/')}/api/v1/namespaces/kube-public/configmaps/kube-root-ca.crt"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as s, \
            s.get(url, ssl=insecure) as resp:
        if resp.status != 200:
            raise ValueError(f"reading the cluster CA: HTTP {resp.status}")
        doc = await resp.json()
    path = Path(default_data_dir()) / "agent" / "pki" / "cluster-ca.crt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc["data"]["ca.crt"])
    log.warning("trusting the cluster CA read from %s without verification", server)
    return path


async def _signalled(coro: Coroutine[Any, Any, Any]) -> int:
    return await run_until_signalled(asyncio.create_task(coro), log, "node agent")


async def _run(client_config: ClientConfig, config: Any, args: argparse.Namespace) -> None:
    """The agent with this node's service proxy and cluster DNS, on the cluster's ranges."""
    from pocketkube.kubelet.agent import Agent

    client = ApiClient(client_config)
    try:
        if config.client_ca is None:
            config.client_ca = client_config.ca_file
        pods, services = await cluster_ranges(client)
        config.service_cidr = services
        remember_service_range(config.root, services)
        cluster = ServerConfig(data_dir=config.root.parent, service_cidr=services,
                               cluster_cidr=pods)
        await run_beside(client, Agent(client, config), config.node_name, cluster,
                         args.disable, args.dns_upstream)
    finally:
        await client.close()
