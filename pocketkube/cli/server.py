"""`pocketkube server`: run the control plane in the foreground.

It prepares what the control plane needs from the data dir (PKI, kubeconfig, remembered
options, pid file), then runs the control plane's `serve(config, ready)` coroutine until SIGTERM
or SIGINT cancels it. `pocketkube start` runs exactly this command in the background.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from pocketkube.cli.instance import Instance, Options, service_ip
from pocketkube.components.signals import run_until_signalled
from pocketkube.config import ServerConfig
from pocketkube.kubeconfig import write_kubeconfig
from pocketkube.pki import default_hosts, ensure_pki

log = logging.getLogger("pocketkube.server")

ServeFn = Callable[[ServerConfig, asyncio.Event | None], Awaitable[None]]


class AppNotFound(Exception):
    pass


def load_app(spec: str) -> ServeFn:
    """Resolve "package.module:function" or "/path/to/file.py:function" to the entry point."""
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise AppNotFound(f"{spec!r} is not of the form module:function")
    if target.endswith(".py"):
        module_spec = importlib.util.spec_from_file_location(Path(target).stem, target)
        if module_spec is None or module_spec.loader is None or not Path(target).exists():
            raise AppNotFound(f"cannot load {target}")
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as exc:
            if exc.name and target.startswith(exc.name):
                raise AppNotFound(f"{target} is not available in this installation") from exc
            raise
    serve = getattr(module, attr, None)
    if not callable(serve):
        raise AppNotFound(f"{target} has no callable {attr!r}")
    return serve


def prepare(instance: Instance, options: Options) -> ServerConfig:
    """Create the data dir, PKI and standalone kubeconfig, and remember the options."""
    instance.mark()
    config = instance.server_config(options)
    paths = ensure_pki(config.pki_dir, default_hosts(options.bind_address), service_ip(config))
    write_kubeconfig(config.kubeconfig_path, instance.url(options), paths, instance.name)
    instance.save_options(options)
    return config


def run_server(instance: Instance, options: Options) -> int:
    """Run until stopped by a signal; returns the process exit code."""
    other = instance.running_pid()
    if other is not None and other != os.getpid():
        log.error("pocketkube is already running for %s (pid %d)", instance.data_dir, other)
        return 1
    config = prepare(instance, options)
    try:
        serve = load_app(options.app)
    except AppNotFound as exc:
        log.error("cannot start the control plane: %s", exc)
        return 1
    instance.write_pid(os.getpid())
    try:
        return asyncio.run(_serve(serve, config, instance.url(options)))
    finally:
        instance.clear_pid(only=os.getpid())


async def _serve(serve: ServeFn, config: ServerConfig, url: str) -> int:
    ready = asyncio.Event()
    task = asyncio.create_task(serve(config, ready), name="control-plane")

    async def announce() -> None:
        await ready.wait()
        log.info("API server ready at %s (data dir %s)", url, config.data_dir)

    announcer = asyncio.create_task(announce())
    try:
        code = await run_until_signalled(task, log, "control plane", exit_code_if_done=1)
    finally:
        announcer.cancel()
    if code == 1 and task.done() and not task.cancelled() and task.exception() is None:
        log.error("control plane exited without being asked to stop")
    return code
