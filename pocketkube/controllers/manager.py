"""The controller manager component: shared informers and every controller, in one task group
(`pocketkube server` runs it in-process as "controller-manager")."""

from __future__ import annotations

import asyncio
import logging

from pocketkube.components import ComponentContext
from pocketkube.controllers.base import Controller, InformerFactory
from pocketkube.controllers.daemonset import DaemonSetController
from pocketkube.controllers.deployment import DeploymentController
from pocketkube.controllers.endpoints import EndpointsController
from pocketkube.controllers.endpointslice import EndpointSliceController
from pocketkube.controllers.namespace import NamespaceController
from pocketkube.controllers.replicaset import (
    ReplicaSetController,
    ReplicationControllerController,
)
from pocketkube.controllers.serviceaccounts import ServiceAccountsController
from pocketkube.controllers.statefulset import StatefulSetController

log = logging.getLogger("pocketkube.controllers")


def build(ctx: ComponentContext, informers: InformerFactory) -> list[Controller]:
    return [
        NamespaceController(ctx.client, informers),
        EndpointsController(ctx.client, informers),
        EndpointSliceController(ctx.client, informers),
        ServiceAccountsController(ctx.client, informers, ctx.config.pki_dir / "ca.crt"),
        StatefulSetController(ctx.client, informers),
        DaemonSetController(ctx.client, informers),
        ReplicaSetController(ctx.client, informers),
        ReplicationControllerController(ctx.client, informers),
        DeploymentController(ctx.client, informers),
    ]


async def run(ctx: ComponentContext) -> None:
    informers = InformerFactory(ctx.client)
    controllers = build(ctx, informers)
    informers.start()
    try:
        await informers.wait_synced()
        log.info("controller manager started %d controllers", len(controllers))

        async def health() -> tuple[bool, str]:
            return True, "ok"

        ctx.health = health
        await asyncio.gather(*(c.run() for c in controllers))
    finally:
        for c in controllers:
            await c.queue.shutdown()
        await informers.stop()
