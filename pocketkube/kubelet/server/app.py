"""The node agent's HTTPS server for logs, exec, attach and port-forward: the kubelet's
streaming endpoints, which the API server proxies `pods/log|exec|attach|portforward` to.

Paths and query parameters are the kubelet's (`/containerLogs/{ns}/{pod}/{container}`,
`/exec/...`, `/attach/...`, `/portForward/{ns}/{pod}`). Clients must present a certificate
signed by the cluster CA (the API server's `apiserver-kubelet-client`), as a kubelet with
`--client-ca-file` demands. Errors are plain text with the kubelet's status codes and words;
the API server turns them into Status objects.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from pathlib import Path
from typing import Protocol

from aiohttp import web

from pocketkube.kubelet.runtime.interface import ContainerStatus, Runtime, SandboxStatus
from pocketkube.kubelet.server import hostlogs, remotecommand
from pocketkube.kubelet.server.logs import LogOptions, parse_time, stream_log

log = logging.getLogger("pocketkube.kubelet.server")

# How often a followed log asks the runtime whether its container still runs (the kubelet
# asks every few seconds; a second keeps `logs -f` prompt to end without a runtime call per
# poll).
STATE_CHECK_PERIOD = 1.0


class PodLookup(Protocol):
    """The agent's view of the pods it runs, by namespace and name."""

    def container(self, ns: str, pod: str, container: str
                  ) -> tuple[Runtime, ContainerStatus] | None:  # fmt: skip
        """The container's current (latest) instance and the runtime that runs it."""
        ...

    def sandbox(self, ns: str, pod: str) -> tuple[Runtime, SandboxStatus] | None: ...

    def log_path(self, ns: str, pod: str, container: str, previous: bool) -> Path | None:
        """The CRI log file of the current instance, or of the one before it (`previous`)."""
        ...


def _gone(request: web.Request) -> bool:
    return request.transport is None or request.transport.is_closing()


def _text(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message)


def request_query(request: web.Request) -> dict[str, str]:
    return {k: v for k, v in request.query.items()}


def log_options(query: dict[str, str], now: float | None = None) -> LogOptions:
    """PodLogOptions from the query string, as the kubelet decodes them (ValueError if bad)."""
    opts = LogOptions(follow=query.get("follow") in ("1", "true", "True"),
                      timestamps=query.get("timestamps") in ("1", "true", "True"))
    if "tailLines" in query:
        opts.tail = int(query["tailLines"])
        if opts.tail < 0:
            opts.tail = -1
    if "limitBytes" in query:
        opts.limit_bytes = int(query["limitBytes"])
        if opts.limit_bytes <= 0:
            raise ValueError("limitBytes must be greater than 0")
    if "sinceSeconds" in query:
        seconds = int(query["sinceSeconds"])
        now = time.time() if now is None else now
        opts.since_ns = int((now - seconds) * 1_000_000_000)
    elif "sinceTime" in query:
        opts.since_ns = parse_time(query["sinceTime"])[0]
    return opts


class StreamingServer:
    """The agent's streaming server (HTTPS, client certificates required)."""

    def __init__(self, lookup: PodLookup, *, host: str, port: int, cert: Path, key: Path,
                 client_ca: Path, host_log_dir: Path = Path("/var/log")) -> None:
        self.lookup = lookup
        self.host_log_dir = host_log_dir  # what /logs/ serves, as the kubelet does
        self.host, self.port = host, port
        self.cert, self.key, self.client_ca = cert, key, client_ca
        self._runner: web.AppRunner | None = None

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.client_ca))
        ctx.load_cert_chain(str(self.cert), str(self.key))
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/containerLogs/{ns}/{pod}/{container}", self.container_logs)
        for verb in ("exec", "attach"):
            app.router.add_route("*", f"/{verb}/{{ns}}/{{pod}}/{{container}}", self.remote)
        app.router.add_route("*", "/portForward/{ns}/{pod}", self.port_forward)
        # What `kubectl get --raw /api/v1/nodes/NODE/proxy/healthz` reaches, as on a kubelet.
        app.router.add_get("/healthz", self.healthz)
        host_logs = hostlogs.handler(self.host_log_dir)
        app.router.add_get("/logs/{tail:.*}", host_logs)
        app.router.add_get("/logs", host_logs)
        return app

    async def start(self) -> int:
        """Start serving; returns the bound port (useful with port 0)."""
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False,
                                     shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context(),
                           reuse_address=True)
        await site.start()
        bound = self._runner.addresses[0][1]
        log.info("streaming server on https://%s:%d", self.host, bound)
        return bound

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- handlers -------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def container_logs(self, request: web.Request) -> web.StreamResponse:
        ns, pod, name = (request.match_info[k] for k in ("ns", "pod", "container"))
        query = request_query(request)
        try:
            opts = log_options(query)
        except ValueError as e:
            return _text(400, f"unable to decode query: {e}")
        previous = query.get("previous") in ("1", "true", "True")
        path = self.lookup.log_path(ns, pod, name, previous)
        found = self.lookup.container(ns, pod, name)
        if path is None or not path.exists():
            if found is None and self.lookup.sandbox(ns, pod) is None:
                return _text(404, f'pod "{pod}" does not exist')
            if previous:
                return _text(400, f'previous terminated container "{name}" in pod "{pod}" '
                                  f"not found")
            return _text(400, f'container "{name}" in pod "{pod}" is waiting to start - '
                              f"no logs yet")

        # What the lookup said counts as the first check.
        checked = {"at": time.monotonic(),
                   "running": found is not None and found[1].state in ("running", "created")}

        async def running() -> bool:
            """Whether to keep following: the container runs and the client is still there."""
            if previous or found is None or _gone(request):
                return False
            now = time.monotonic()
            if now - checked["at"] >= STATE_CHECK_PERIOD:
                runtime, status = found
                current = await runtime.container_status(status.id)
                checked.update(at=now, running=current is not None and
                               current.state in ("running", "created"))
            return bool(checked["running"])

        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            await stream_log(path, opts, resp.write, running=running)
            await resp.write_eof()
        except (ConnectionError, FileNotFoundError) as e:
            log.debug("log stream for %s/%s/%s ended: %s", ns, pod, name, e)
        return resp

    async def remote(self, request: web.Request) -> web.StreamResponse:
        verb = request.path.split("/", 2)[1]
        ns, pod, name = (request.match_info[k] for k in ("ns", "pod", "container"))
        try:
            opts = remotecommand.parse_options(request_query(request))
        except ValueError as e:
            return _text(400, str(e))
        found = self.lookup.container(ns, pod, name)
        if found is None or found[1].state != "running":
            if found is None and self.lookup.sandbox(ns, pod) is None:
                return _text(404, "pod does not exist")
            return _text(500, f'container not found ("{name}")')
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return _text(400, "a websocket upgrade (v5.channel.k8s.io) is required")
        runtime, status = found
        if verb == "exec":
            argv = request.query.getall("command", [])
            return await remotecommand.serve(
                request, opts,
                lambda: runtime.exec(status.id, argv, stdin=opts.stdin, tty=opts.tty), argv)
        return await remotecommand.serve(
            request, opts, lambda: runtime.attach(status.id, stdin=opts.stdin, tty=opts.tty))

    async def port_forward(self, request: web.Request) -> web.StreamResponse:
        ns, pod = request.match_info["ns"], request.match_info["pod"]
        found = self.lookup.sandbox(ns, pod)
        if found is None:
            return _text(404, "pod does not exist")
        runtime, sandbox = found

        async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            return await runtime.port_forward(sandbox.id, port)

        # Imported here: the port-forward module is loaded only when first used.
        from pocketkube.kubelet.server.portforward import handle_portforward

        return await handle_portforward(request, connect, pod=sandbox.id, netns=sandbox.netns)
