"""The "simulated-nodes" component: N nodes that register, renew their leases and run the pods
bound to them without running anything, as kwok does for Kubernetes, so the scheduler and the
controllers can be exercised on thousands of nodes from one machine.

`pocketkube server --simulated-nodes N` runs it in-process (options from
ServerConfig.component_options["simulated-nodes"]); `pocketkube simulate` runs the same
component against any cluster named by a kubeconfig until interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from pocketkube.client.rest import ApiClient, ClientConfig
from pocketkube.client.workqueue import Clock, RealClock
from pocketkube.components import ComponentContext
from pocketkube.components.signals import run_until_signalled
from pocketkube.config import CLUSTER_CIDR, ServerConfig
from pocketkube.simulator.nodes import NodeManager, NodeTimings
from pocketkube.simulator.nodespec import NodeShape
from pocketkube.simulator.pods import PodManager
from pocketkube.simulator.timing import WallClock

log = logging.getLogger("pocketkube.simulator")

NAME = "simulated-nodes"


@dataclass
class SimulatorOptions:
    """What ctx.options may hold (all optional but `nodes`)."""

    nodes: int = 0
    cpu: str = "4"
    memory: str = "16Gi"
    pods: int = 110
    ephemeral_storage: str = "100Gi"
    name_prefix: str = "sim-"
    lease_interval: float = 10.0
    status_interval: float = 300.0
    batch_size: int = 100
    max_inflight: int = 64  # API writes in flight at once, for all nodes together
    workers: int = 16  # pod sync workers

    @classmethod
    def from_dict(cls, options: dict[str, Any]) -> SimulatorOptions:
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValueError(f"unknown simulated-nodes options: {', '.join(unknown)}")
        return cls(**{k: v for k, v in options.items() if v is not None})


class Simulator:
    def __init__(
        self,
        client: ApiClient,
        options: SimulatorOptions,
        cluster_cidr: str = CLUSTER_CIDR,
        clock: Clock | None = None,
    ) -> None:
        self.options = options
        self.clock = clock or RealClock()
        self.wall = WallClock(self.clock)
        limit = asyncio.Semaphore(max(options.max_inflight, 1))
        shape = NodeShape(
            cpu=options.cpu,
            memory=options.memory,
            pods=options.pods,
            ephemeral_storage=options.ephemeral_storage,
        )
        timings = NodeTimings(
            lease_interval=options.lease_interval,
            status_interval=options.status_interval,
            batch_size=options.batch_size,
        )
        self.nodes = NodeManager(
            client,
            options.nodes,
            options.name_prefix,
            shape,
            self.clock,
            self.wall,
            limit,
            cluster_cidr,
            timings,
        )
        self.pods = PodManager(
            client, self.nodes, self.clock, self.wall, limit, workers=options.workers
        )
        self.ready = asyncio.Event()

    async def health(self) -> tuple[bool, str]:
        active = self.nodes.active_count
        if not self.nodes.registered.is_set():
            return False, f"registering nodes: {active}/{self.options.nodes}"
        if not self.ready.is_set():
            return False, f"{active} nodes, starting pods"
        return True, f"{active} nodes, {self.pods.running_pods()} pods"

    async def run(self) -> None:
        periodic: asyncio.Task[None] | None = None
        try:
            await self.nodes.start()
            periodic = asyncio.create_task(self.nodes.run_periodic(), name="simulated-leases")
            await self.nodes.register_all()
            await self.pods.start()
            self.ready.set()
            await periodic
        finally:
            if periodic is not None:
                periodic.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await periodic
            await self.pods.stop()
            await self.nodes.stop()


async def run(ctx: ComponentContext) -> None:
    """The component entry point (ServerConfig.components["simulated-nodes"])."""
    options = SimulatorOptions.from_dict(ctx.options)
    sim = Simulator(ctx.client, options, ctx.config.cluster_cidr)
    ctx.health = sim.health
    await sim.run()


def component_config(nodes: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(components, component_options) entries that make a ServerConfig run `nodes` nodes."""
    return {NAME: run}, {NAME: {"nodes": nodes}}


def default_kubeconfig() -> Path:
    env = os.environ.get("KUBECONFIG")
    if env:
        return Path(env.split(os.pathsep)[0]).expanduser()
    return Path.home() / ".kube" / "config"


def run_standalone(kubeconfig: Path, options: dict[str, Any]) -> int:
    """`pocketkube simulate`: run the component against the cluster in `kubeconfig` until
    SIGINT or SIGTERM; returns the exit code."""
    try:
        client_config = ClientConfig.from_kubeconfig(kubeconfig, user_agent="pocketkube-simulate")
    except (OSError, KeyError, StopIteration, TypeError, ValueError) as e:
        log.error("cannot use kubeconfig %s: %s", kubeconfig, e)
        return 1
    return asyncio.run(_standalone(client_config, options))


async def _standalone(client_config: ClientConfig, options: dict[str, Any]) -> int:
    client = ApiClient(client_config)
    ctx = ComponentContext(NAME, ServerConfig(), client, options)
    task = asyncio.create_task(run(ctx), name=NAME)

    async def report() -> None:
        last = ""
        while True:
            await asyncio.sleep(5)
            if ctx.health is not None:
                _, text = await ctx.health()
                if text != last:
                    log.info("%s", text)
                    last = text

    reporter = asyncio.create_task(report())
    try:
        return await run_until_signalled(task, log, "simulated nodes")
    finally:
        reporter.cancel()
        await client.close()
