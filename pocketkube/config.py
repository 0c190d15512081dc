"""Configuration shared by the `pocketkube` command and the components it starts."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_PORT = 6443
SERVICE_CIDR = "10.96.0.0/12"
CLUSTER_CIDR = "10.244.0.0/16"
CLUSTER_DOMAIN = "cluster.local"
# kube-system ConfigMap where the API server publishes the cluster's address ranges.
CLUSTER_CONFIG = "pocketkube-config"


def default_data_dir() -> Path:
    env = os.environ.get("POCKETKUBE_HOME")
    return Path(env).expanduser() if env else Path.home() / ".pocketkube"


@dataclass
class ServerConfig:
    data_dir: Path = field(default_factory=default_data_dir)
    port: int = DEFAULT_PORT
    bind_address: str = "127.0.0.1"
    # "sqlite" or "etcd://host:port[,host:port]"
    datastore: str = "sqlite"
    service_cidr: str = SERVICE_CIDR
    cluster_cidr: str = CLUSTER_CIDR
    # In-process components to run beside the API server: name -> `async def run(ctx)`.
    components: dict[str, Any] = field(default_factory=dict)
    component_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def pki_dir(self) -> Path:
        return self.data_dir / "pki"

    @property
    def kubeconfig_path(self) -> Path:
        return self.data_dir / "kubeconfig"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "db" / "state.db"
