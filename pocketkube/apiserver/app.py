"""The API server: `serve(config)` runs pocketkube's control plane until cancelled.

It loads the PKI, opens the store, fills the watch cache, creates the bootstrap objects, and
serves the Kubernetes API over HTTPS (client certificates verified against the cluster CA).
Later components (scheduler, controllers, node agent, proxy, DNS) join the same process through
`components`, each talking to this server through the API only.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl

from aiohttp import web

from pocketkube.apiserver import dispatch
from pocketkube.apiserver.auth import TokenAuthority
from pocketkube.apiserver.health import Health
from pocketkube.config import ServerConfig
from pocketkube.pki import PkiPaths, default_hosts, ensure_pki
from pocketkube.registry.registry import Registry
from pocketkube.storage.factory import create_backend

log = logging.getLogger("pocketkube.apiserver")

COMPACT_INTERVAL = 300.0


def ssl_context(paths: PkiPaths) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(paths.ca_cert))
    ctx.load_cert_chain(str(paths.server_cert), str(paths.server_key))
    # Client certificates are optional: bearer tokens and the health endpoints need none.
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def build_app(registry: Registry, tokens: TokenAuthority, health: Health,
              server_address: str) -> web.Application:
    app = web.Application(middlewares=[dispatch.status_middleware, dispatch.inflight_middleware],
                          client_max_size=8 * 1024 * 1024, handler_args={"max_field_size": 65536})
    app["registry"] = registry
    app["tokens"] = tokens
    app["health"] = health
    app["server_address"] = server_address
    app["inflight"] = {"read": 0, "mutating": 0}
    app.router.add_route("*", "/{tail:.*}", dispatch.handle)
    return app


async def _compactor(registry: Registry) -> None:
    """Keep about five minutes of history, as kube-apiserver's compaction interval does."""
    previous = 0
    while True:
        await asyncio.sleep(COMPACT_INTERVAL)
        try:
            current = await registry.backend.current_revision()
            if previous:
                await registry.backend.compact(previous)
            previous = current
        except Exception as e:
            log.warning("compaction failed: %s", e)


EVENT_TTL = 3600.0  # kube-apiserver's --event-ttl default
EVENT_SWEEP_INTERVAL = 60.0


async def _expire_events(registry: Registry, ttl: float = EVENT_TTL) -> None:
    """Delete events older than the TTL, as kube does through etcd leases on event keys."""
    from datetime import UTC, datetime

    from pocketkube.registry.strategy import Context

    stores = [registry.store("", "events"), registry.store("events.k8s.io", "events")]
    while True:
        await asyncio.sleep(EVENT_SWEEP_INTERVAL)
        now = datetime.now(UTC)
        for store in stores:
            for key, obj in list(store.cache.items.items()):
                meta = obj.get("metadata") or {}
                stamp = obj.get("lastTimestamp") or obj.get("eventTime") or \
                    meta.get("creationTimestamp")
                try:
                    when = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
                except ValueError:
                    continue
                if when.tzinfo is None:
                    when = when.replace(tzinfo=UTC)
                if (now - when).total_seconds() < ttl:
                    continue
                try:
                    await store.delete(meta.get("namespace"), meta["name"], {}, Context())
                except Exception as e:  # gone already, or the store is busy: next sweep
                    log.debug("event %s not expired: %s", key, e)


def _warm_openapi(registry: Registry) -> None:
    """Build every OpenAPI document once, off the event loop (they are built lazily and cached;
    the first `kubectl apply` would otherwise wait for them on the loop)."""
    from pocketkube.apiserver import openapi, openapi_v2

    openapi.v3_index_bytes()
    for group, version in registry.table.group_versions():
        openapi.v3_document(group, version)
    doc = openapi_v2.default()
    doc.json_bytes()
    doc.protobuf_bytes()


def _health(registry: Registry, health: Health | None) -> Health:
    health = health or Health()

    async def store() -> tuple[bool, str]:
        await asyncio.wait_for(registry.backend.current_revision(), 2.0)
        return True, ""

    async def cache() -> tuple[bool, str]:
        return registry.cache.ready.is_set(), "" if registry.cache.ready.is_set() else \
            "watch cache not loaded"

    health.add_check("etcd", store)
    health.add_check("watch-cache", cache)

    async def etcd_component() -> tuple[bool, str]:
        await asyncio.wait_for(registry.backend.current_revision(), 2.0)
        return True, "ok"

    health.add_component("etcd-0", etcd_component)
    return health


async def serve(config: ServerConfig, ready: asyncio.Event | None = None,
                health: Health | None = None) -> None:
    loop = asyncio.get_running_loop()
    hosts = default_hosts(config.bind_address)
    paths = await loop.run_in_executor(
        None, ensure_pki, config.pki_dir, hosts, str(_first_ip(config.service_cidr)))
    backend = create_backend(config.datastore, config.data_dir)
    registry = Registry(backend, config.service_cidr)
    await registry.start()
    advertise = _advertise(config.bind_address)
    await registry.bootstrap(advertise, config.port, config.cluster_cidr)
    tokens = TokenAuthority(paths.sa_key, paths.sa_pub)
    address = f"{advertise}:{config.port}"
    app = build_app(registry, tokens, _health(registry, health), address)
    app["pki"] = paths  # the client certificate for node agents (handlers/streaming.py)
    # Open watch streams would otherwise hold a graceful shutdown for a minute.
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, config.bind_address, config.port, ssl_context=ssl_context(paths),
                       backlog=1024, reuse_address=True)
    await site.start()
    warm = loop.run_in_executor(None, _warm_openapi, registry)
    compactor = asyncio.create_task(_compactor(registry), name="compactor")
    expirer = asyncio.create_task(_expire_events(registry), name="event-ttl")
    log.info("serving the Kubernetes API on https://%s:%d (datastore %s)",
             config.bind_address, config.port, config.datastore)
    if ready is not None:
        ready.set()
    try:
        await asyncio.Event().wait()
    finally:
        compactor.cancel()
        expirer.cancel()
        warm.cancel()
        await runner.cleanup()
        await registry.close()
        log.info("API server stopped")


def _first_ip(cidr: str) -> str:
    import ipaddress

    return str(ipaddress.ip_network(cidr, strict=False)[1])


def _advertise(bind: str) -> str:
    if bind in ("0.0.0.0", "::"):
        try:
            return socket.gethostbyname(socket.gethostname())
        except OSError:
            return "127.0.0.1"
    return bind
