"""A stand-in control plane for the lifecycle tests: the `serve(config, ready)` contract of
pocketkube.apiserver.app, answering only what `start`, `status` and `version` ask, over TLS
with the cluster's serving certificate and client certificates required.

Loaded by the server subprocess through the hidden `--app file.py:function` option.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl

from aiohttp import web

from pocketkube.config import ServerConfig
from pocketkube.pki import PkiPaths

log = logging.getLogger("pocketkube.fakeapi")

CHECKS = ("ping", "log", "etcd", "poststarthook/start-apiextensions-informers")


def _app(healthy: bool) -> web.Application:
    async def readyz(request: web.Request) -> web.Response:
        lines = [f"[+]{c} ok" for c in CHECKS]
        if not healthy:
            lines[2] = "[-]etcd failed: reason withheld"
        lines.append("readyz check passed" if healthy else "readyz check failed")
        if "verbose" not in request.query:
            lines = ["ok"] if healthy else lines[:-1]
        return web.Response(text="\n".join(lines) + "\n", status=200 if healthy else 500)

    async def version(request: web.Request) -> web.Response:
        return web.json_response({"major": "1", "minor": "32", "gitVersion": "v1.32.4"})

    async def components(request: web.Request) -> web.Response:
        items = [
            {
                "metadata": {"name": name},
                "conditions": [{"type": "Healthy", "status": "True", "message": "ok"}],
            }
            for name in ("scheduler", "controller-manager", "etcd-0")
        ]
        body = {"kind": "ComponentStatusList", "apiVersion": "v1", "items": items}
        return web.Response(text=json.dumps(body), content_type="application/json")

    app = web.Application()
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/version", version)
    app.router.add_get("/api/v1/componentstatuses", components)
    return app


async def serve(config: ServerConfig, ready: asyncio.Event | None = None) -> None:
    await _serve(config, ready, healthy=True)


async def serve_unready(config: ServerConfig, ready: asyncio.Event | None = None) -> None:
    """Answers, but /readyz reports the datastore check failing."""
    await _serve(config, ready, healthy=False)


async def _serve(config: ServerConfig, ready: asyncio.Event | None, healthy: bool) -> None:
    paths = PkiPaths.under(config.pki_dir)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(paths.ca_cert))
    context.load_cert_chain(str(paths.server_cert), str(paths.server_key))
    context.verify_mode = ssl.CERT_REQUIRED
    runner = web.AppRunner(_app(healthy), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.bind_address, config.port, ssl_context=context)
    await site.start()
    log.info("fake API server listening on %s:%d", config.bind_address, config.port)
    if ready is not None and healthy:
        ready.set()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        log.info("fake API server stopped")


async def serve_failing(config: ServerConfig, ready: asyncio.Event | None = None) -> None:
    log.error("cannot open datastore %s", config.datastore)
    raise RuntimeError("datastore unreachable")


async def serve_stubborn(config: ServerConfig, ready: asyncio.Event | None = None) -> None:
    """Serves normally but ignores the request to stop, so only SIGKILL ends it."""
    task = asyncio.ensure_future(serve(config, ready))
    while True:
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            log.info("ignoring cancellation")
