"""Running the components (controller manager, scheduler, simulated nodes, …) beside the API
server: the supervision loop shared by both ways `pocketkube server` runs them, and the entry
point of the components process (`python -m pocketkube.cli.components`).

With two cores and one GIL per process, the API server and its components compete for one core
if they share a process; in a second process each gets its own. The server starts this module
with the components to run, described on the first line of stdin (see `encode_spec`), and keeps
stdin open as a lifeline. The process reports the port of its health endpoint
(`http://127.0.0.1:<port>/healthz/<component>`, as kube-scheduler serves /healthz) on the file
descriptor named by --report-fd, and stops when it gets SIGTERM, when stdin reaches EOF or, on
Linux, when the server dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import dataclasses
import importlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from pocketkube.apiserver.health import Health
from pocketkube.client.rest import ApiClient, ClientConfig
from pocketkube.components import Component, ComponentContext
from pocketkube.config import ServerConfig

log = logging.getLogger("pocketkube.components")

CHECK_TIMEOUT = 1.5  # below the server's probe timeout, so a slow check reports its own reason
STOP_GRACE = 10.0  # after this, a process asked to stop exits whatever its components do
_PR_SET_PDEATHSIG = 1


# --- supervision (in either process) ---------------------------------------------------------


async def supervise(ctx: ComponentContext, component: Component, health: Health) -> None:
    """Run `component` until it returns or is cancelled, restarting it with backoff when it
    fails; its componentstatus in `health` says why it is not running meanwhile."""
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


async def run_components(
    url: str, config: ServerConfig, components: dict[str, Component], health: Health
) -> None:
    """Supervise every component, each with its own API client (the cluster admin, named by
    its user agent), until cancelled; then stop them and close their clients."""
    tasks = []
    clients = []
    try:
        for name, component in components.items():
            client = ApiClient(
                ClientConfig.from_data_dir(config.data_dir, url, f"pocketkube-{name}")
            )
            clients.append(client)
            options = dict(config.component_options.get(name, {}))
            ctx = ComponentContext(name, config, client, options)
            tasks.append(asyncio.create_task(supervise(ctx, component, health), name=name))
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for c in clients:
            await c.close()


# --- what the server tells the components process ---------------------------------------------


@dataclasses.dataclass
class Spec:
    url: str
    config: ServerConfig
    components: dict[str, Component]
    # Components named in the spec that this process could not import: name -> reason.
    missing: dict[str, str] = dataclasses.field(default_factory=dict)


def reference(component: Component) -> str | None:
    """The "module:qualname" that names `component` for another process, or None if it has
    no such name (a closure, a lambda, a function of __main__)."""
    module = getattr(component, "__module__", None)
    qualname = getattr(component, "__qualname__", None)
    if not module or not qualname or module == "__main__" or "<" in qualname:
        return None
    try:
        return f"{module}:{qualname}" if _resolve(f"{module}:{qualname}") is component else None
    except (ImportError, AttributeError):
        return None


def _resolve(ref: str) -> Component:
    module, _, qualname = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def encode_spec(url: str, config: ServerConfig, components: dict[str, str]) -> bytes:
    """One JSON line: the server URL, the ServerConfig (all but its callables) and the
    components as name -> reference. Raises TypeError if a config value is not JSON."""
    values: dict[str, Any] = {}
    paths = []
    for f in dataclasses.fields(config):
        if f.name == "components":
            continue
        value = getattr(config, f.name)
        if isinstance(value, Path):
            value, paths = str(value), [*paths, f.name]
        values[f.name] = value
    doc = {"url": url, "config": values, "paths": paths, "components": components}
    return orjson.dumps(doc) + b"\n"


def decode_spec(line: bytes) -> Spec:
    doc = orjson.loads(line)
    values = dict(doc["config"])
    for name in doc["paths"]:
        values[name] = Path(values[name])
    components: dict[str, Component] = {}
    missing: dict[str, str] = {}
    for name, ref in doc["components"].items():
        try:
            components[name] = _resolve(ref)
        except (ImportError, AttributeError) as e:
            missing[name] = f"cannot load {ref}: {e}"
    config = ServerConfig(**values)
    config.components.update(components)
    return Spec(doc["url"], config, components, missing)


# --- the components process -------------------------------------------------------------------


async def serve_health(health: Health) -> tuple[web.AppRunner, int]:
    """Serve /healthz (the process answers) and /healthz/<component> on an ephemeral
    loopback port: 200 with the component's message when healthy, 500 with its reason if not."""

    async def process(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def component(request: web.Request) -> web.Response:
        check = health.components().get(request.match_info["name"])
        if check is None:
            return web.Response(status=404, text="404 page not found\n")
        try:
            ok, message = await asyncio.wait_for(check(), CHECK_TIMEOUT)
        except TimeoutError:
            ok, message = False, f"health check timed out after {CHECK_TIMEOUT:g}s"
        except Exception as e:  # a failing check is an unhealthy component
            ok, message = False, str(e) or type(e).__name__
        return web.Response(status=200 if ok else 500, text=message)

    app = web.Application()
    app.router.add_get("/healthz", process)
    app.router.add_get("/healthz/{name}", component)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


def die_with_parent(parent_pid: int) -> bool:
    """Ask Linux to SIGTERM this process when its parent dies; False if it already has."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed: %s", os.strerror(ctypes.get_errno()))
    # The parent may have died before prctl took effect: we were then re-parented.
    return os.getppid() == parent_pid


async def _main(spec: Spec, report_fd: int) -> int:
    loop = asyncio.get_running_loop()
    health = Health()
    for name, reason in spec.missing.items():
        log.error("%s: %s", name, reason)
        health.add_component(name, _failing(reason))
    runner, port = await serve_health(health)
    task = asyncio.create_task(run_components(spec.url, spec.config, spec.components, health))
    stopping = asyncio.Event()

    def stop(why: str) -> None:
        if not stopping.is_set():
            log.info("%s: stopping components", why)
            stopping.set()
            task.cancel()
            # Components get STOP_GRACE seconds to wind down; the server does not wait longer.
            loop.call_later(STOP_GRACE, os._exit, 1)

    loop.add_signal_handler(signal.SIGTERM, stop, "received SIGTERM")
    lifeline = asyncio.create_task(_watch_stdin(lambda: stop("the server closed stdin")))
    os.write(report_fd, f"{port}\n".encode())
    os.close(report_fd)
    log.info("running %s (health on 127.0.0.1:%d)", ", ".join(spec.components), port)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # Components that returned stay reported as stopped until the server stops us.
        await stopping.wait()
    finally:
        lifeline.cancel()
        await runner.cleanup()
    return 0


def _failing(reason: str) -> Any:
    async def check() -> tuple[bool, str]:
        return False, reason

    return check


async def _watch_stdin(on_eof: Any) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(sys.stdin.fileno(), "rb", 0)
    )
    try:
        while await reader.read(4096):
            pass
        on_eof()
    finally:
        transport.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pocketkube.cli.components")
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--report-fd", type=int, required=True)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    # The same format as the server's log, which this process shares.
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # Ctrl-C in a terminal reaches the whole process group: the server decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not die_with_parent(args.parent_pid):
        log.error("the server (pid %d) is gone; not starting", args.parent_pid)
        return 1
    line = sys.stdin.buffer.readline()
    if not line:
        log.error("no components given on stdin")
        return 1
    return asyncio.run(_main(decode_spec(line), args.report_fd))


if __name__ == "__main__":
    sys.exit(main())
