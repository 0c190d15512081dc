"""The control plane with node timings short enough for end-to-end tests: simulated nodes
renew their leases every second, the node lifecycle controller gives up on a node after 6 s
without one, and pod GC looks every second with a 2 s quarantine. Loaded by
`pocketkube server --app tests/e2e/gc_nodes_app.py:control_plane`; everything else is the
real control plane."""

from __future__ import annotations

import asyncio

from pocketkube.cli import compose
from pocketkube.config import ServerConfig

NODE_GRACE = 6.0
LEASE_INTERVAL = 1.0


async def control_plane(config: ServerConfig, ready: asyncio.Event | None = None) -> None:
    cm = config.component_options.setdefault("controller-manager", {})
    cm["nodelifecycle"] = {"grace_period": NODE_GRACE, "monitor_period": 0.5}
    cm["podgc"] = {"period": 1.0, "quarantine": 2.0}
    if "simulated-nodes" in config.component_options:
        config.component_options["simulated-nodes"]["lease_interval"] = LEASE_INTERVAL
    await compose.control_plane(config, ready)
