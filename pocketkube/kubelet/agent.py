"""The node agent as a component: wires the image store, the runtime (runc + CNI, or host
processes), volumes, probes, the node's status and lease, the streaming server and the pod
workers together, as kubelet's `RunKubelet` does, and runs them until cancelled.

It runs inside `pocketkube server` for the single-node cluster (component "node-agent", the
node named after the host) and alone as `pocketkube agent` on other machines (cli/agent.py).
The runc runtime is used when this process is root and runc, conmon and the CNI plugins are
installed; otherwise the process runtime, and the log says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import os
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pocketkube.client.events import EventRecorder
from pocketkube.client.rest import ApiClient
from pocketkube.client.workqueue import RealClock
from pocketkube.components import ComponentContext
from pocketkube.config import CLUSTER_DOMAIN, SERVICE_CIDR

log = logging.getLogger("pocketkube.kubelet")
NAME = "node-agent"
CNI_PLUGINS = Path("/usr/lib/cni")
MEMORY_CGROUP = Path("/sys/fs/cgroup/memory")
Obj = dict[str, Any]


@dataclass
class AgentConfig:
    """Everything the agent needs beyond an API client."""

    root: Path  # <data-dir>/agent
    images_root: Path  # <data-dir>/images
    node_name: str = field(default_factory=lambda: socket.gethostname().lower())
    # The node's InternalIP: "" picks the pod bridge's gateway (runc; reachable from pods and
    # from this host) or 127.0.0.1 (process runtime).
    node_ip: str = ""
    runtime: str = "auto"  # "auto" | "runc" | "process"
    port: int = 0  # the streaming server's port (0: any free one)
    bind: str = ""  # "" = 0.0.0.0 with runc (the gateway is on a bridge), else 127.0.0.1
    service_cidr: str = SERVICE_CIDR
    cluster_domain: str = CLUSTER_DOMAIN
    labels: dict[str, str] = field(default_factory=dict)
    manifests: Path | None = None  # static pods directory
    pod_cidr: str = ""  # "" = the one the cluster's node IPAM gives this node
    # Certificates: the serving pair (made here if absent) and the CA that signs API server
    # client certificates.
    client_ca: Path | None = None
    serving_cert: Path | None = None
    serving_key: Path | None = None
    # KubeletConfiguration's containerLogMaxSize (a quantity; negative disables rotation),
    # containerLogMaxFiles, containerLogMonitorInterval (seconds), containerLogMaxWorkers.
    container_log_max_size: str = "10Mi"
    container_log_max_files: int = 5
    container_log_monitor_interval: float = 10.0
    container_log_max_workers: int = 1

    @property
    def cluster_dns(self) -> str:
        """The tenth address of the service range, where cluster DNS answers."""
        return str(ipaddress.ip_network(self.service_cidr, strict=False)[10])


def choose_runtime(wanted: str) -> tuple[str, str]:
    """("runc" | "process", why)."""
    missing = [t for t in ("runc", "conmon") if not shutil.which(t)]
    if not (CNI_PLUGINS / "bridge").exists():
        missing.append("the CNI plugins (containernetworking-plugins)")
    if wanted == "process":
        return "process", "asked for"
    if os.geteuid() != 0:
        why = "not running as root"
    elif missing:
        why = f"{', '.join(missing)} not installed"
    else:
        return "runc", "root, runc, conmon and CNI plugins present"
    if wanted == "runc":
        raise RuntimeError(f"the runc runtime cannot run here: {why}")
    return "process", why


def bridge_name(root: Path) -> str:
    """A bridge name per cluster (at most 15 characters), so clusters side by side differ."""
    return "pk" + hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]


class Agent:
    """The node agent's parts, built once the node has registered and has a pod CIDR."""

    def __init__(self, client: ApiClient, config: AgentConfig, standalone: bool = False) -> None:
        self.client = client
        self.config = config
        self.standalone = standalone  # no API server: static pods only, no node, no streaming
        self.clock = RealClock()
        self.recorder = EventRecorder(client, "kubelet", host=config.node_name)
        self.tasks: list[asyncio.Task[Any]] = []
        self.ready = asyncio.Event()
        self.runtime: Any = None
        self.server: Any = None
        self.kubelet: Any = None

    async def health(self) -> tuple[bool, str]:
        if not self.ready.is_set():
            return False, "node agent starting"
        return True, "ok"

    async def run(self) -> None:
        from pocketkube.kubelet.images.service import ImageManager
        from pocketkube.kubelet.kubelet import Kubelet
        from pocketkube.kubelet.logrotation import ContainerLogManager, parse_policy
        from pocketkube.kubelet.nodestatus import NodeStatus
        from pocketkube.kubelet.objects import ObjectSource
        from pocketkube.kubelet.server.app import StreamingServer
        from pocketkube.kubelet.volumes.manager import VolumeManager

        cfg = self.config
        cfg.root.mkdir(parents=True, exist_ok=True)
        log_policy = parse_policy(cfg.container_log_max_size, cfg.container_log_max_files)
        kind, why = choose_runtime(cfg.runtime)
        log.info("node %s: %s runtime (%s)", cfg.node_name, kind, why)
        images = ImageManager(cfg.images_root)
        await images.ensure_builtin()
        cert, key = await asyncio.to_thread(self._serving_pair)
        objects = ObjectSource(self.client, cfg.node_name)
        await objects.start()
        try:
            runtime_version = await self._runtime_version(kind)
            # With runc the address is the pod bridge's gateway, known once the pod range is.
            node_ip = cfg.node_ip or ("" if kind == "runc" else "127.0.0.1")
            status = NodeStatus(self.client, cfg.node_name, runtime_version=runtime_version,
                                kubelet_port=0, node_ip=node_ip, labels=cfg.labels,
                                root=cfg.root, clock=self.clock)
            volumes = VolumeManager(cfg.root / "pods", objects, node_name=cfg.node_name)
            self.kubelet = None
            lookup = _LateLookup(self)
            bind = cfg.bind or ("0.0.0.0" if kind == "runc" else "127.0.0.1")
            port = 0
            if not self.standalone:
                port = await self._start_server(StreamingServer, lookup, bind, cert, key)
                status.kubelet_port = port
                await status.register()
                self.tasks.append(asyncio.create_task(status.run(), name="node-status"))
            self.runtime = await self._make_runtime(kind, images, status)
            await self.runtime.start()
            if status.node_ip != node_ip and not self.standalone:
                await status.update_status(force=True)
            node_ip = status.node_ip
            self.kubelet = Kubelet(
                self.client, cfg.node_name, root=cfg.root, runtime=self.runtime, images=images,
                volumes=volumes, objects=objects, recorder=self.recorder, clock=self.clock,
                cluster_dns=[cfg.cluster_dns], cluster_domain=cfg.cluster_domain,
                node_ip=node_ip)
            self.tasks.append(asyncio.create_task(self.kubelet.run(), name="pod-workers"))
            logs = ContainerLogManager(self.runtime, log_policy, clock=self.clock,
                                       period=cfg.container_log_monitor_interval,
                                       workers=cfg.container_log_max_workers)
            self.tasks.append(asyncio.create_task(logs.run(), name="container-logs"))
            if not self.standalone:
                self.tasks.append(asyncio.create_task(self._eviction(status).run(),
                                                      name="eviction"))
            if cfg.manifests is not None:
                from pocketkube.kubelet.staticpods import StaticPods

                static = StaticPods(cfg.manifests, cfg.node_name, self.kubelet)
                self.tasks.append(asyncio.create_task(static.run(), name="static-pods"))
            self.ready.set()
            log.info("node %s (%s) ready, streaming on %s:%d", cfg.node_name, node_ip, bind, port)
            done, _ = await asyncio.wait(self.tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                t.result()
        finally:
            await self.close(objects)

    def _eviction(self, status: Any) -> Any:
        """Node-pressure eviction: memory.available and nodefs thresholds, kube's defaults."""
        from pocketkube.kubelet.eviction import EvictionManager, measure_node

        kubelet, cfg = self.kubelet, self.config

        def pod_usage(pod: Obj, resource: str) -> dict[str, int]:
            rt = kubelet.pleg.pods.get(pod["metadata"]["uid"])
            if resource != "memory" or rt is None:
                return {}
            usage = {}
            for c in rt.containers:
                path = MEMORY_CGROUP / "pocketkube" / rt.uid / c.id / "memory.usage_in_bytes"
                with contextlib.suppress(OSError, ValueError):
                    usage[c.name] = int(path.read_text())
            return usage

        return EvictionManager(status, recorder=self.recorder, clock=self.clock,
                               active_pods=kubelet.workers.active_pods, evict=kubelet.evict,
                               measure=lambda: measure_node(cfg.root, cfg.images_root),
                               pod_usage=pod_usage)

    async def _start_server(self, server_class: Any, lookup: Any, bind: str, cert: Path,
                            key: Path) -> int:
        """Start the streaming server on the configured port or, with none, on the port the
        previous run used (the Node still advertises it until the next status update)."""
        cfg = self.config
        remembered = cfg.root / "kubelet-port"
        port = cfg.port
        if not port:
            with contextlib.suppress(OSError, ValueError):
                port = int(remembered.read_text())
        for candidate in dict.fromkeys([port, cfg.port]):
            self.server = server_class(lookup, host=bind, port=candidate, cert=cert, key=key,
                                       client_ca=cfg.client_ca or cert)
            try:
                bound = await self.server.start()
            except OSError as e:
                await self.server.close()
                if candidate == cfg.port:
                    raise
                log.info("port %d of the previous run is taken (%s); using another", port, e)
                continue
            await asyncio.to_thread(remembered.write_text, f"{bound}\n")
            return bound
        raise RuntimeError("the streaming server did not start")

    async def close(self, objects: Any) -> None:
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self.server is not None:
            await self.server.close()
        if self.runtime is not None:
            await self.runtime.close()
        await objects.close()

    async def _make_runtime(self, kind: str, images: Any, status: Any) -> Any:
        cfg = self.config
        if kind == "process":
            from pocketkube.kubelet.runtime.process import ProcessRuntime

            return ProcessRuntime(cfg.root / "process", images, host_ip=status.node_ip)
        from pocketkube.kubelet.network.cni import CniNetwork
        from pocketkube.kubelet.runtime.runc import RuncRuntime

        subnet = cfg.pod_cidr or await status.wait_pod_cidr()
        network = CniNetwork(cfg.root / "cni", bridge=bridge_name(cfg.root), subnet=subnet,
                             plugin_dir=str(CNI_PLUGINS))
        await network.ensure_bridge()
        await network.guard_services(cfg.service_cidr)
        # `pocketkube delete` tears the network down later and needs the same subnet for it.
        await asyncio.to_thread(_remember_subnet, cfg.root / "cni", subnet)
        if not cfg.node_ip:
            status.node_ip = network.gateway
        return RuncRuntime(cfg.root / "runc", images, network)

    async def _runtime_version(self, kind: str) -> str:
        if kind == "process":
            import pocketkube

            return f"process://{pocketkube.__version__}"
        proc = await asyncio.create_subprocess_exec(
            "runc", "--version", stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL)
        out, _ = await proc.communicate()
        first = out.decode().splitlines()[0] if out else "runc version unknown"
        return f"runc://{first.split()[-1]}"

    def _serving_pair(self) -> tuple[Path, Path]:
        """The streaming server's certificate: the configured pair, or one made here."""
        cfg = self.config
        if cfg.serving_cert and cfg.serving_key and cfg.serving_cert.exists():
            return cfg.serving_cert, cfg.serving_key
        from pocketkube.kubelet.servingcert import self_signed

        pki = cfg.root / "pki"
        return self_signed(pki, cfg.node_name,
                           [h for h in (cfg.node_name, cfg.node_ip, "127.0.0.1") if h])


def _remember_subnet(directory: Path, subnet: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "subnet").write_text(subnet + "\n")


class _LateLookup:
    """The streaming server's view of the pods, answered by the pod workers once they exist."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def container(self, ns: str, pod: str, container: str) -> Any:
        k = self.agent.kubelet
        return k.container(ns, pod, container) if k is not None else None

    def sandbox(self, ns: str, pod: str) -> Any:
        k = self.agent.kubelet
        return k.sandbox(ns, pod) if k is not None else None

    def log_path(self, ns: str, pod: str, container: str, previous: bool) -> Path | None:
        k = self.agent.kubelet
        return k.log_path(ns, pod, container, previous) if k is not None else None


async def run(ctx: ComponentContext) -> None:
    """The `node-agent` component of `pocketkube server`."""
    data = ctx.config.data_dir
    opts = dict(ctx.options)
    pki = ctx.config.pki_dir
    config = AgentConfig(
        root=data / "agent", images_root=data / "images",
        service_cidr=ctx.config.service_cidr, manifests=data / "manifests",
        client_ca=pki / "ca.crt", **opts)
    if config.serving_cert is None:
        config.serving_cert, config.serving_key = await asyncio.to_thread(
            _cluster_signed_pair, pki, config)
    agent = Agent(ctx.client, config)
    ctx.health = agent.health
    await agent.run()


def _cluster_signed_pair(pki: Path, config: AgentConfig) -> tuple[Path, Path]:
    """A serving certificate for the in-process agent, signed by the cluster CA."""
    from pocketkube.pki import PkiPaths, issue_serving_cert, write_private

    cert_path = config.root / "pki" / "kubelet.crt"
    key_path = config.root / "pki" / "kubelet.key"
    if not cert_path.exists():
        cert_path.parent.mkdir(parents=True, exist_ok=True)
        cert, key = issue_serving_cert(PkiPaths.under(pki), f"system:node:{config.node_name}",
                                       [h for h in (config.node_name, config.node_ip,
                                                    "127.0.0.1") if h])
        write_private(key_path, key)
        cert_path.write_bytes(cert)
    return cert_path, key_path
