"""The single-process cluster: the API server, then every enabled component, as k3s composes
its parts. Each component gets its own API client (as the cluster admin, named by its user agent)
and runs until the server stops; a component that crashes is restarted with backoff and reported
unhealthy meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from pocketkube.apiserver import app as apiserver
from pocketkube.apiserver.health import Health
from pocketkube.client.rest import ApiClient, ClientConfig
from pocketkube.components import Component, ComponentContext
from pocketkube.config import ServerConfig

log = logging.getLogger("pocketkube.server")


def enabled_components(config: ServerConfig) -> dict[str, Component]:
    """The components this configuration runs, by component-status name."""
    from pocketkube.controllers import manager
    from pocketkube.scheduler import scheduler

    return {"controller-manager": manager.run, "scheduler": scheduler.run, **config.components}


async def control_plane(config: ServerConfig, ready: asyncio.Event | None = None) -> None:
    health = Health()
    api_ready = asyncio.Event()
    server = asyncio.create_task(apiserver.serve(config, api_ready, health), name="apiserver")
    waiter = asyncio.create_task(api_ready.wait())
    await asyncio.wait({server, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if server.done():
        waiter.cancel()
        await server  # raises what stopped it
        return
    url = f"https://{_connect_host(config.bind_address)}:{config.port}"
    tasks = []
    clients = []
    for name, component in enabled_components(config).items():
        client = ApiClient(ClientConfig.from_data_dir(config.data_dir, url, f"pocketkube-{name}"))
        clients.append(client)
        ctx = ComponentContext(name, config, client, dict(config.component_options.get(name, {})))
        tasks.append(asyncio.create_task(_supervise(ctx, component, health), name=name))
    if ready is not None:
        ready.set()
    try:
        # Shielded: on shutdown the components stop first, while the API they use still answers.
        await asyncio.shield(server)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for c in clients:
            await c.close()
        if not server.done():
            server.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await server


async def _supervise(ctx: ComponentContext, component: Component, health: Health) -> None:
    state = {"running": False, "error": "starting"}

    async def check() -> tuple[bool, str]:
        if not state["running"]:
            return False, str(state["error"])
        if ctx.health is not None:
            return await ctx.health()
        return True, "ok"

    health.add_component(ctx.name, check)
    backoff = 1.0
    while True:
        try:
            state["running"] = True
            await component(ctx)
            state.update(running=False, error="stopped")
            return
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.exception("%s failed; restarting in %.0fs", ctx.name, backoff)
            state.update(running=False, error=f"{type(e).__name__}: {e}")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)


def _connect_host(bind: str) -> str:
    return "127.0.0.1" if bind in ("0.0.0.0", "::", "") else bind
