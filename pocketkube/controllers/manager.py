"""The controller manager component: shared informers and every controller, in one task group
(`pocketkube server` runs it in-process as "controller-manager")."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from pocketkube.client.leaderelection import LeaderElector, default_identity
from pocketkube.components import ComponentContext
from pocketkube.controllers.base import Controller, InformerFactory
from pocketkube.controllers.cronjob import CronJobController
from pocketkube.controllers.daemonset import DaemonSetController
from pocketkube.controllers.deployment import DeploymentController
from pocketkube.controllers.disruption import DisruptionController
from pocketkube.controllers.endpoints import EndpointsController
from pocketkube.controllers.endpointslice import EndpointSliceController
from pocketkube.controllers.garbagecollector import GarbageCollector
from pocketkube.controllers.job import JobController
from pocketkube.controllers.namespace import NamespaceController
from pocketkube.controllers.nodeipam import NodeIpamController
from pocketkube.controllers.nodelifecycle import NodeLifecycleController
from pocketkube.controllers.podgc import PodGCController
from pocketkube.controllers.replicaset import (
    ReplicaSetController,
    ReplicationControllerController,
)
from pocketkube.controllers.serviceaccounts import ServiceAccountsController
from pocketkube.controllers.servicelb import ServiceLBController
from pocketkube.controllers.statefulset import StatefulSetController
from pocketkube.controllers.taintmanager import TaintEvictionController
from pocketkube.controllers.ttlafterfinished import TTLAfterFinishedController

log = logging.getLogger("pocketkube.controllers")


def build(ctx: ComponentContext, informers: InformerFactory) -> list[Controller]:
    return [
        NamespaceController(ctx.client, informers),
        EndpointsController(ctx.client, informers),
        EndpointSliceController(ctx.client, informers),
        ServiceAccountsController(ctx.client, informers, ctx.config.pki_dir / "ca.crt"),
        GarbageCollector(ctx.client, informers),
        NodeLifecycleController(ctx.client, informers, **ctx.options.get("nodelifecycle", {})),
        TaintEvictionController(ctx.client, informers),
        NodeIpamController(ctx.client, informers, ctx.config.cluster_cidr),
        PodGCController(ctx.client, informers, **ctx.options.get("podgc", {})),
        StatefulSetController(ctx.client, informers),
        DaemonSetController(ctx.client, informers),
        ReplicaSetController(ctx.client, informers),
        ReplicationControllerController(ctx.client, informers),
        DeploymentController(ctx.client, informers),
        JobController(ctx.client, informers),
        CronJobController(ctx.client, informers),
        TTLAfterFinishedController(ctx.client, informers),
        DisruptionController(ctx.client, informers),
        ServiceLBController(ctx.client, informers),
    ]


async def run(ctx: ComponentContext) -> None:
    """Lead through the kube-system/kube-controller-manager Lease, then run every controller
    until leadership is lost; that raises, so the supervisor starts a new candidate.
    ctx.options["leader_election"] may set identity, lease_duration, renew_deadline and
    retry_period."""
    le = dict(ctx.options.get("leader_election") or {})
    elector = LeaderElector(ctx.client, "kube-controller-manager", "kube-system",
                            identity=le.pop("identity", None) or default_identity(), **le)
    async with elector.leading() as lost:
        log.info("%s leads; starting controllers", elector.identity)
        await _run_controllers(ctx, lost)
    if lost.is_set():
        raise RuntimeError("controller manager lost its leader lease")


async def _run_controllers(ctx: ComponentContext, lost: asyncio.Event) -> None:
    informers = InformerFactory(ctx.client)
    controllers = build(ctx, informers)
    informers.start()
    try:
        await informers.wait_synced()
        log.info("controller manager started %d controllers", len(controllers))

        async def health() -> tuple[bool, str]:
            return True, "ok"

        ctx.health = health
        work = asyncio.ensure_future(asyncio.gather(*(c.run() for c in controllers)))
        stop = asyncio.ensure_future(lost.wait())
        try:
            await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not work.done():
                work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
    finally:
        for c in controllers:
            await c.queue.shutdown()
        await informers.stop()
