"""The server side of Kubernetes' websocket remote-command protocol (`v5.channel.k8s.io`, and
`v4.channel.k8s.io`), bridging a websocket to an exec or attach `StreamSession`.

Every message is binary and starts with a channel byte: 0 stdin (client → server), 1 stdout,
2 stderr, 3 error (one Status as JSON, then the server closes), 4 resize
(`{"Width":..,"Height":..}`) and, in v5 only, 255 "close this channel" (`\\xff\\x00` ends the
process's stdin). The Status sent on channel 3 is the kubelet's: Success, or Failure with reason
NonZeroExitCode, the exit code as an ExitCode cause and the message
`command terminated with non-zero exit code: error executing command [argv], exit code N`;
kubectl turns that cause into its own exit code.

aiohttp's websocket does the framing and answers the client's pings; this module only speaks
the channel layer on top of it, which no library implements for Python servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from pocketkube.kubelet.runtime.interface import StreamSession

log = logging.getLogger("pocketkube.kubelet.remotecommand")

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
PROTOCOLS = (V5, V4)
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
READ_SIZE = 32 * 1024
MAX_MESSAGE = 16 * 1024 * 1024


@dataclass
class StreamOptions:
    stdin: bool = False
    stdout: bool = False
    stderr: bool = False
    tty: bool = False


def _flag(query: Mapping[str, str], name: str) -> bool:
    return query.get(name, "") in ("1", "true", "True")


def parse_options(query: Mapping[str, str]) -> StreamOptions:
    """The streams asked for, as the kubelet reads them (`stdin=1`; `true` is accepted too).
    With a TTY there is no separate stderr. Raises ValueError with the kubelet's message."""
    opts = StreamOptions(_flag(query, "stdin"), _flag(query, "stdout"), _flag(query, "stderr"),
                         _flag(query, "tty"))
    if opts.tty:
        opts.stderr = False
    if not (opts.stdin or opts.stdout or opts.stderr):
        raise ValueError("you must specify at least 1 of stdin, stdout, stderr")
    return opts


def success_status() -> dict[str, Any]:
    return {"metadata": {}, "status": "Success"}


def exit_status(argv: list[str], code: int) -> dict[str, Any]:
    """The Failure the kubelet reports for a command that exited with a non-zero code."""
    return {
        "metadata": {}, "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command "
                   f"[{' '.join(argv)}], exit code {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def internal_status(message: str) -> dict[str, Any]:
    return {"metadata": {}, "status": "Failure", "message": f"Internal error occurred: {message}",
            "reason": "InternalError", "details": {"causes": [{"message": message}]},
            "code": 500}


def negotiate(request: web.Request) -> str | None:
    """The protocol to answer with, or None when the client offered none that is served."""
    offered = [p.strip() for h in request.headers.getall("Sec-WebSocket-Protocol", [])
               for p in h.split(",")]
    return next((p for p in offered if p in PROTOCOLS), None)


async def serve(request: web.Request, opts: StreamOptions,
                open_session: Callable[[], Awaitable[StreamSession]],
                argv: list[str] | None = None) -> web.StreamResponse:
    """Upgrade `request` and run one exec (`argv` given) or attach session over it."""
    protocol = negotiate(request)
    if protocol is None:
        offered = request.headers.get("Sec-WebSocket-Protocol", "")
        return web.Response(status=400, text=f"unsupported websocket protocols {offered!r}; "
                                             f"supported: {', '.join(PROTOCOLS)}")
    ws = web.WebSocketResponse(protocols=PROTOCOLS, max_msg_size=MAX_MESSAGE)
    await ws.prepare(request)
    try:
        session = await open_session()
    except Exception as e:  # the runtime's failure goes to the client as a Status, like kube's
        what = "executing command in container" if argv is not None else "attaching to container"
        log.warning("error %s: %s", what, e)
        await _finish(ws, internal_status(f"error {what}: {e}"))
        return ws
    bridge = _Bridge(ws, session, opts, v5=ws.ws_protocol == V5)
    try:
        try:
            code = await bridge.run()
        except Exception as e:
            log.warning("stream session failed: %s", e)
            await _finish(ws, internal_status(str(e)))
            return ws
        if code is None:
            return ws  # the client went away
        if argv is not None and code != 0:
            await _finish(ws, exit_status(argv, code))
        else:
            await _finish(ws, success_status())
    finally:
        await bridge.stop()
    return ws


async def _finish(ws: web.WebSocketResponse, status: dict[str, Any]) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):
        if not ws.closed:
            await ws.send_bytes(bytes([ERROR]) + json.dumps(status).encode())
        await ws.close()


class _Bridge:
    """Copies the client's stdin and resizes into the session and its output back out."""

    def __init__(self, ws: web.WebSocketResponse, session: StreamSession, opts: StreamOptions,
                 *, v5: bool) -> None:
        self.ws, self.session, self.opts, self.v5 = ws, session, opts, v5
        self.tasks: list[asyncio.Task[Any]] = []

    async def run(self) -> int | None:
        """The exit code (0 for an attach that ended), or None when the client left first."""
        inbound = asyncio.create_task(self._inbound(), name="remotecommand-in")
        outbound = asyncio.create_task(self._outbound(), name="remotecommand-out")
        self.tasks = [inbound, outbound]
        done, _ = await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)
        if outbound in done:
            code = outbound.result()
            return 0 if code is None else code
        inbound.result()
        return None

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        with contextlib.suppress(Exception):
            await self.session.close()

    async def _outbound(self) -> int | None:
        s = self.session
        pumps = [self._pump(s.stdout, STDOUT, self.opts.stdout),
                 self._pump(s.stderr, STDERR, self.opts.stderr)]
        await asyncio.gather(*pumps)
        return await s.wait()

    async def _pump(self, reader: asyncio.StreamReader | None, channel: int, send: bool) -> None:
        if reader is None:
            return
        while True:
            try:
                data = await reader.read(READ_SIZE)
            except (OSError, ConnectionError):
                data = b""  # a terminal whose process is gone reads EIO: its end of output
            if not data:
                return
            if send and not self.ws.closed:
                with contextlib.suppress(ConnectionError):
                    await self.ws.send_bytes(bytes([channel]) + data)

    async def _inbound(self) -> None:
        stdin = self.session.stdin
        async for msg in self.ws:
            if msg.type != WSMsgType.BINARY or not msg.data:
                continue
            channel, data = msg.data[0], msg.data[1:]
            if channel == STDIN:
                if stdin is not None and data and not stdin.is_closing():
                    stdin.write(data)
                    with contextlib.suppress(ConnectionError):
                        await stdin.drain()
            elif channel == RESIZE:
                await self._resize(data)
            elif channel == CLOSE and self.v5 and data[:1] == bytes([STDIN]) and stdin:
                _close_stdin(stdin)

    async def _resize(self, data: bytes) -> None:
        try:
            size = json.loads(data)
            width, height = int(size.get("Width", 0)), int(size.get("Height", 0))
        except (ValueError, TypeError, AttributeError):
            log.debug("ignoring a malformed resize message %r", data[:100])
            return
        if width > 0 and height > 0:
            await self.session.resize(width, height)


def _close_stdin(stdin: asyncio.StreamWriter) -> None:
    if stdin.is_closing():
        return
    try:
        if stdin.can_write_eof():
            stdin.write_eof()
        else:
            stdin.close()
    except (OSError, RuntimeError):
        stdin.close()
