"""The control plane of `pocketkube server`: the API server, then every enabled component, as
k3s composes its parts.

The API server runs in this process; once it is ready, the components run in one child process
(pocketkube/cli/components.py), so that the API server and the components each have a core
instead of sharing one GIL. The child is restarted with backoff if it dies, stopped before the API
server on shutdown, and dies with this process. Its components' health, served by the child on
loopback, is probed for `kubectl get componentstatuses` and `pocketkube status`.

`pocketkube server --components-in-process` (or POCKETKUBE_COMPONENTS_IN_PROCESS=1) runs the
components in this process instead, as one asyncio program: easier to debug, one process fewer.
A component that another process cannot import by name (a closure, say) always runs here.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sys
from pathlib import Path

import pocketkube
from pocketkube.apiserver import app as apiserver
from pocketkube.apiserver.health import Health, remote_check
from pocketkube.cli.components import encode_spec, reference, run_components
from pocketkube.components import Component
from pocketkube.config import ServerConfig

log = logging.getLogger("pocketkube.server")

IN_PROCESS_ENV = "POCKETKUBE_COMPONENTS_IN_PROCESS"
STOP_TIMEOUT = 12.0  # the child's own grace period (components.STOP_GRACE) plus a margin
BACKOFF_MAX = 30.0
BACKOFF_RESET = 60.0  # a child that ran this long restarts without waiting


def enabled_components(config: ServerConfig) -> dict[str, Component]:
    """The components this configuration runs, by component-status name."""
    from pocketkube.controllers import manager
    from pocketkube.scheduler import scheduler

    return {"controller-manager": manager.run, "scheduler": scheduler.run, **config.components}


def components_in_process() -> bool:
    """Whether the components run in the API server's process (POCKETKUBE_COMPONENTS_IN_PROCESS)."""
    return os.environ.get(IN_PROCESS_ENV, "").lower() not in ("", "0", "false", "no")


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
    local, remote = _placement(enabled_components(config))
    runners = []
    if remote:
        try:
            spec = encode_spec(url, config, remote)
        except TypeError as e:
            log.warning("running the components in-process: the config cannot be passed on (%s)", e)
            local = enabled_components(config)
        else:
            child = ComponentsProcess(spec, list(remote), health)
            runners.append(asyncio.create_task(child.run(), name="components-process"))
    if local:
        runners.append(
            asyncio.create_task(run_components(url, config, local, health), name="components")
        )
    if ready is not None:
        ready.set()
    try:
        # Shielded: on shutdown the components stop first, while the API they use still answers.
        await asyncio.shield(server)
    finally:
        for t in runners:
            t.cancel()
        for t in runners:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if not server.done():
            server.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await server


def _placement(components: dict[str, Component]) -> tuple[dict[str, Component], dict[str, str]]:
    """(components to run here, components for the child process by reference)."""
    if components_in_process():
        return dict(components), {}
    local: dict[str, Component] = {}
    remote: dict[str, str] = {}
    for name, component in components.items():
        ref = reference(component)
        if ref is None:
            log.info("%s runs in the API server's process: it has no importable name", name)
            local[name] = component
        else:
            remote[name] = ref
    return local, remote


class ComponentsDown(Exception):
    """Raised by a component's health check while the components process is not serving."""


class ComponentsProcess:
    """The child process that runs the components: started, watched and restarted with backoff
    until cancelled, then terminated. Registers one componentstatus check per component."""

    def __init__(self, spec: bytes, names: list[str], health: Health) -> None:
        self.spec = spec
        self.names = names
        self.proc: asyncio.subprocess.Process | None = None
        self.status = "starting"
        self._health_url: str | None = None
        for name in names:
            health.add_component(name, remote_check(functools.partial(self._locate, name)))

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.returncode is None else None

    def _locate(self, name: str) -> str:
        if self._health_url is None:
            raise ComponentsDown(self.status)
        return f"{self._health_url}/healthz/{name}"

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = 1.0
        try:
            while True:
                started = loop.time()
                code = await self._run_once()
                if loop.time() - started >= BACKOFF_RESET:
                    backoff = 1.0
                log.error("components process exited with code %s; restarting in %.0fs",
                          code, backoff)  # fmt: skip
                self.status = f"components process exited with code {code}; restarting"
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
        finally:
            await self._stop()

    async def _run_once(self) -> int:
        read_fd, write_fd = os.pipe()
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self._command(write_fd),
                stdin=asyncio.subprocess.PIPE,
                pass_fds=(write_fd,),
                env=_child_env(),
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        proc = self.proc
        self.status = "starting"
        log.info("components process started (pid %d): %s", proc.pid, ", ".join(self.names))
        assert proc.stdin is not None
        try:
            # The spec, then nothing: stdin stays open as the child's lifeline.
            proc.stdin.write(self.spec)
            await proc.stdin.drain()
        except OSError as e:
            log.warning("cannot hand the components to pid %d: %s", proc.pid, e)
        port = await _read_port(read_fd)
        if port is not None:
            self._health_url = f"http://127.0.0.1:{port}"
        try:
            code = await proc.wait()
        finally:
            self._health_url = None
        proc.stdin.close()
        return code

    def _command(self, report_fd: int) -> list[str]:
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
        return [
            sys.executable, "-m", "pocketkube.cli.components",
            "--parent-pid", str(os.getpid()),
            "--report-fd", str(report_fd),
            "--log-level", level,
        ]  # fmt: skip

    async def _stop(self) -> None:
        """SIGTERM the child and wait for it; SIGKILL if it takes longer than STOP_TIMEOUT."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        self.status = "stopping"
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            log.warning("components process (pid %d) did not stop; killing it", proc.pid)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()


async def _read_port(fd: int) -> int | None:
    """The health port the child writes on `fd`; None if it exits first."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    pipe = os.fdopen(fd, "rb", 0)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    try:
        line = await reader.readline()
    finally:
        transport.close()
    text = line.strip()
    return int(text) if text.isdigit() else None


def _child_env() -> dict[str, str]:
    """This environment, with PYTHONPATH extended so the child imports the same pocketkube and
    the same component modules as this process (which may have added to sys.path itself)."""
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    extra = [str(Path(pocketkube.__file__).resolve().parent.parent)]
    extra += [p for p in sys.path if p and not any(p.startswith(x) for x in prefixes)]
    inherited = os.environ.get("PYTHONPATH")
    paths = list(dict.fromkeys([*extra, *([inherited] if inherited else [])]))
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def _connect_host(bind: str) -> str:
    return "127.0.0.1" if bind in ("0.0.0.0", "::", "") else bind
