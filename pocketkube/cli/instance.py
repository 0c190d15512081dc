"""One cluster's footprint on disk, keyed by its data dir.

Everything the lifecycle commands need to find a running cluster lives in its data dir: the
options it was started with (config.json), the server's pid (server.pid) and its log. Keeping
it per data dir is what lets several clusters run side by side.
"""

from __future__ import annotations

import ipaddress
import json
import os
import select
import signal
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from pocketkube.config import CLUSTER_CIDR, DEFAULT_PORT, SERVICE_CIDR, ServerConfig
from pocketkube.kubeconfig import context_name, server_url

DEFAULT_APP = "pocketkube.cli.compose:control_plane"
# Present in every data dir pocketkube created; `delete` refuses to remove a directory without it.
MARKER = ".pocketkube"


@dataclass
class Options:
    """What `start`/`server` accept, remembered in config.json between runs."""

    port: int = DEFAULT_PORT
    bind_address: str = "127.0.0.1"
    datastore: str = "sqlite"
    log_level: str = "info"
    app: str = DEFAULT_APP
    # Simulated nodes run in-process beside the control plane (0: none).
    simulated_nodes: int = 0
    # This machine is a node of the cluster: the node agent runs its pods as containers.
    node_agent: bool = True
    # The node agent's container runtime: auto (runc when root and installed), runc, process.
    node_runtime: str = "auto"
    # Where cluster DNS forwards other names ("ip[:port]"); None: the host's resolv.conf
    # nameservers; []: nowhere (answers SERVFAIL, e.g. on a machine that must stay offline).
    dns_upstreams: list[str] | None = None
    # Parts not to run, like k3s's --disable: "proxy", "cluster-dns".
    disable: list[str] = field(default_factory=list)
    # Pod addresses (each node gets a /24 of it): clusters side by side need different ranges.
    cluster_cidr: str = CLUSTER_CIDR
    # Service ClusterIPs (the tenth is cluster DNS's): also one per cluster on a host.
    service_cidr: str = SERVICE_CIDR
    # Components (controllers, scheduler, simulated nodes) in the API server's process rather
    # than in a second one (pocketkube/cli/compose.py).
    components_in_process: bool = False


class Instance:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.config_path = self.data_dir / "config.json"
        self.pid_path = self.data_dir / "server.pid"
        self.log_path = self.data_dir / "logs" / "server.log"

    @property
    def name(self) -> str:
        """The kubeconfig cluster/user/context name of this cluster."""
        stored = self._read_config().get("context")
        return stored if isinstance(stored, str) and stored else context_name(self.data_dir)

    # --- options -------------------------------------------------------------------------

    def options(self, given: dict[str, Any] | None = None) -> Options:
        """Remembered options overridden by the ones given on the command line (not None)."""
        known = {f.name for f in fields(Options)}
        merged = {k: v for k, v in self._read_config().items() if k in known}
        merged.update({k: v for k, v in (given or {}).items() if k in known and v is not None})
        return Options(**merged)

    def save_options(self, options: Options) -> None:
        doc = {**asdict(options), "context": self.name}
        if doc.get("app") == DEFAULT_APP:
            # Only an explicit --app is remembered, so upgrades pick up the new default.
            del doc["app"]
        tmp = self.config_path.with_name(".config.json.tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        os.replace(tmp, self.config_path)

    def has_config(self) -> bool:
        return self.config_path.exists()

    def server_config(self, options: Options) -> ServerConfig:
        config = ServerConfig(
            data_dir=self.data_dir,
            port=options.port,
            bind_address=options.bind_address,
            datastore=options.datastore,
            cluster_cidr=options.cluster_cidr,
            service_cidr=options.service_cidr,
        )
        if options.node_agent:
            from pocketkube.dns import component as dns
            from pocketkube.kubelet import agent
            from pocketkube.proxy import component as proxy

            # The node's agent, its service proxy, and the cluster DNS it makes reachable.
            config.components[agent.NAME] = agent.run
            config.component_options[agent.NAME] = {"runtime": options.node_runtime}
            for part in (proxy, dns):
                if part.NAME in options.disable:
                    continue
                extra = {"upstreams": options.dns_upstreams} if part is dns and \
                    options.dns_upstreams is not None else {}
                components, part_options = part.component_config(**extra)
                config.components.update(components)
                config.component_options.update(part_options)
        if options.simulated_nodes > 0:
            from pocketkube.simulator.component import component_config

            components, component_options = component_config(options.simulated_nodes)
            config.components.update(components)
            config.component_options.update(component_options)
        return config

    def url(self, options: Options) -> str:
        return server_url(options.bind_address, options.port)

    def _read_config(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.config_path.read_text())
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    # --- data dir --------------------------------------------------------------------------

    def mark(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        (self.data_dir / MARKER).touch()

    def is_marked(self) -> bool:
        return (self.data_dir / MARKER).exists()

    # --- process ---------------------------------------------------------------------------

    def read_pid(self) -> int | None:
        try:
            return int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None

    def running_pid(self) -> int | None:
        """The server's pid if the pid file names a live pocketkube process."""
        pid = self.read_pid()
        return pid if pid is not None and is_pocketkube_process(pid) else None

    def write_pid(self, pid: int) -> None:
        tmp = self.pid_path.with_name(".server.pid.tmp")
        tmp.write_text(f"{pid}\n")
        os.replace(tmp, self.pid_path)

    def clear_pid(self, only: int | None = None) -> None:
        """Remove the pid file (only if it still names `only`, when given)."""
        if only is None or self.read_pid() == only:
            self.pid_path.unlink(missing_ok=True)


def service_ip(config: ServerConfig) -> str:
    """The `kubernetes` Service's cluster IP: the first address of the service range."""
    return str(ipaddress.ip_network(config.service_cidr, strict=False)[1])


def is_pocketkube_process(pid: int) -> bool:
    """Whether `pid` is alive, not a zombie, and runs pocketkube (pids get reused)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    proc = Path("/proc") / str(pid)
    try:
        stat = (proc / "stat").read_text()
        cmdline = (proc / "cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()
    except OSError:
        return True
    state = stat.rpartition(")")[2].split()[:1]
    return state != ["Z"] and b"pocketkube" in cmdline


def wait_for_exit(pid: int, timeout: float) -> bool:
    """Wait up to `timeout` seconds for `pid` to exit; True if it did."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    except OSError:
        fd = -1
    if fd >= 0:
        # A pidfd becomes readable when the process exits: no polling needed.
        try:
            readable, _, _ = select.select([fd], [], [], timeout)
            return bool(readable) or not is_pocketkube_process(pid)
        finally:
            os.close(fd)
    deadline = time.monotonic() + timeout
    while is_pocketkube_process(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def terminate(pid: int, timeout: float) -> bool:
    """SIGTERM, wait `timeout` seconds, then SIGKILL. Returns False if it had to be killed."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    if wait_for_exit(pid, timeout):
        return True
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    wait_for_exit(pid, 10)
    return False
