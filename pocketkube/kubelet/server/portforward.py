"""Port-forward for the node agent: kubectl's SPDY/3.1 stream pairs, each copied to and from a
TCP connection to a port of the pod.

kubectl 1.32 first asks for a websocket with subprotocol `SPDY/3.1+portforward.k8s.io`, whose
binary messages, concatenated, carry a raw SPDY/3.1 byte stream both ways (the API server's
stream tunnel); on any other answer it retries with a plain `Upgrade: SPDY/3.1` and
`X-Stream-Protocol-Version: portforward.k8s.io`. Both end in the same protocol, the kubelet's
(pkg/kubelet/cri/streaming/portforward/httpstream.go): for every local connection the client
opens an `error` stream and a `data` stream carrying the same `requestid` and `port` headers;
once both are there pocketkube connects to the port and copies bytes both ways, half-closing
each direction on its own (the pod's EOF becomes a FIN on the data stream, the client's FIN
shuts the socket's write side). When the connection or the copy fails, the text the kubelet
would write goes on the error stream, which kubectl prints as `an error occurred forwarding`.

aiohttp has no hijack for non-websocket upgrades (its parser only switches for `websocket`), so
the plain SPDY path takes the connection over the way aiohttp's own WebSocketResponse does:
`request.protocol.set_parser()` installs a feeder before the 101 goes out, so every later byte
bypasses the HTTP parser and lands in an asyncio.StreamReader (which pauses the transport when
it fills up), and frames are written straight to `request.transport`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable

from aiohttp import WSMsgType, web

from pocketkube.kubelet.server.spdy import (
    MAX_DATA,
    SpdyConnection,
    SpdyError,
    SpdyStream,
    StreamReset,
)

log = logging.getLogger(__name__)

PORT_FORWARD_PROTOCOL = "portforward.k8s.io"
TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
STREAM_CREATION_TIMEOUT = 30.0  # the kubelet's wait for a pair's second stream
BUFFER_LIMIT = 256 * 1024  # bytes queued on the raw connection, either way, before it waits
MAX_MESSAGE = 17 * 1024 * 1024  # a websocket message holds at most one 16 MiB SPDY frame

Connect = Callable[[int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


async def handle_portforward(request: web.Request, connect: Connect, *, pod: str | None = None,
                             uid: str = "", netns: str = "") -> web.StreamResponse:  # fmt: skip
    """Serve one port-forward connection until the client goes away.

    `connect(port)` opens a TCP connection to the pod's port. `pod`, `uid` and `netns` only
    shape error messages, as the kubelet's CRI streaming server words them (pod = the sandbox
    id, uid empty); `pod` defaults to the route's `{pod}` part."""
    if pod is None:
        pod = request.match_info.get("pod", "")
    forwarder = _Forwarder(connect, pod, uid, netns)
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return await _serve_websocket(request, forwarder)
    return await _serve_spdy(request, forwarder)


async def _serve_websocket(request: web.Request, forwarder: _Forwarder) -> web.StreamResponse:
    ws = web.WebSocketResponse(protocols=(TUNNEL_PROTOCOL,), max_msg_size=MAX_MESSAGE)
    if ws.can_prepare(request).protocol != TUNNEL_PROTOCOL:
        return web.Response(status=400, text=(
            f"unable to upgrade: the websocket subprotocol {TUNNEL_PROTOCOL} is required\n"))  # fmt: skip
    await ws.prepare(request)
    conn = forwarder.bind(ws.send_bytes)  # send_bytes waits while the transport is backed up
    try:
        async for message in ws:
            if message.type == WSMsgType.BINARY:
                await conn.feed(message.data)
    except SpdyError as exc:
        log.warning("port-forward tunnel from %s: %s", request.remote, exc)
    except StreamReset:  # the client went away while we answered it
        log.debug("port-forward tunnel from %s closed", request.remote)
    finally:
        await forwarder.shutdown()
        await ws.close()
    return ws


class _Feed:
    """The parser aiohttp's protocol hands an upgraded connection's bytes to."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.reader.feed_data(data)
        return False, b""

    def feed_eof(self) -> None:
        self.reader.feed_eof()


async def _serve_spdy(request: web.Request, forwarder: _Forwarder) -> web.StreamResponse:
    # httpstream.Handshake, then spdy's UpgradeResponse, with their words.
    offered = request.headers.getall("X-Stream-Protocol-Version", [])
    protocols = [p.strip() for value in offered for p in value.split(",") if p.strip()]
    if not offered:
        return web.Response(status=400, text=(
            "unable to upgrade: header X-Stream-Protocol-Version does not exist in request "
            f"with {len(request.headers)} headers\n"))  # fmt: skip
    if PORT_FORWARD_PROTOCOL not in protocols:
        return web.Response(
            status=403, headers={"X-Accepted-Stream-Protocol-Versions": PORT_FORWARD_PROTOCOL},
            text=("unable to upgrade: unable to negotiate protocol: client supports "
                  f"[{' '.join(protocols)}], server accepts [{PORT_FORWARD_PROTOCOL}]\n"))  # fmt: skip
    if ("upgrade" not in request.headers.get("Connection", "").lower()
            or "spdy/3.1" not in request.headers.get("Upgrade", "").lower()):  # fmt: skip
        headers = ", ".join(f'"{k}":[]string{{"{v}"}}' for k, v in request.headers.items())
        return web.Response(status=400, text=(
            f"unable to upgrade: missing upgrade headers in request: http.Header{{{headers}}}\n"))  # fmt: skip
    transport, protocol = request.transport, request.protocol
    if transport is None:
        raise ConnectionResetError("connection lost before the upgrade")
    incoming = asyncio.StreamReader(limit=BUFFER_LIMIT)
    incoming.set_transport(transport)
    protocol.set_parser(_Feed(incoming))  # type: ignore[arg-type]  # from here on bytes are ours
    protocol.keep_alive(False)
    response = web.StreamResponse(status=101, headers={
        "X-Stream-Protocol-Version": PORT_FORWARD_PROTOCOL,
        "Connection": "Upgrade", "Upgrade": "SPDY/3.1"})  # fmt: skip
    response.force_close()
    await response.prepare(request)

    async def send(data: bytes) -> None:
        if transport.is_closing():
            raise ConnectionResetError("connection closed")
        transport.write(data)
        if transport.get_write_buffer_size() > BUFFER_LIMIT:
            await protocol._drain_helper()  # aiohttp's pause_writing/resume_writing waiter

    conn = forwarder.bind(send)
    try:
        while data := await incoming.read(MAX_DATA * 2):
            await conn.feed(data)
    except SpdyError as exc:
        log.warning("port-forward connection from %s: %s", request.remote, exc)
    except StreamReset:  # the client went away while we answered it
        log.debug("port-forward connection from %s closed", request.remote)
    finally:
        await forwarder.shutdown()
        transport.close()
    return response


class _Pair:
    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.error: SpdyStream | None = None
        self.data: SpdyStream | None = None
        self.timer: asyncio.TimerHandle | None = None

    def add(self, stream: SpdyStream) -> str | None:
        if stream.header("streamType") == "error":
            if self.error is not None:
                return "error stream already assigned"
            self.error = stream
        else:
            if self.data is not None:
                return "data stream already assigned"
            self.data = stream
        return None


class _Forwarder:
    """The kubelet's httpStreamHandler: pairs streams by request id and forwards each pair."""

    def __init__(self, connect: Connect, pod: str, uid: str, netns: str) -> None:
        self._connect = connect
        self._pod, self._uid, self._netns = pod, uid, netns
        self._pairs: dict[str, _Pair] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.conn: SpdyConnection | None = None

    def bind(self, send: Callable[[bytes], Awaitable[None]]) -> SpdyConnection:
        self.conn = SpdyConnection(send, accept=_check_stream, opened=self._opened)
        return self.conn

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _opened(self, stream: SpdyStream) -> None:
        request_id = stream.header("requestID")
        if not request_id:  # clients older than request ids: derive one from the stream ids
            offset = 0 if stream.header("streamType") == "error" else 2
            request_id = str(stream.id - offset)
        pair = self._pairs.get(request_id)
        if pair is None:
            pair = self._pairs[request_id] = _Pair(request_id)
            loop = asyncio.get_running_loop()
            pair.timer = loop.call_later(STREAM_CREATION_TIMEOUT, self._timed_out, pair)
        problem = pair.add(stream)
        if problem is not None:
            message = f"error processing stream for request {request_id}: {problem}"
            log.warning("port-forward to pod %s: %s", self._pod, message)
            if pair.error is not None:
                self._spawn(_write_quietly(pair.error, message))
        elif pair.error is not None and pair.data is not None:
            if pair.timer is not None:
                pair.timer.cancel()
            del self._pairs[request_id]
            self._spawn(self._forward(pair.error, pair.data))

    def _timed_out(self, pair: _Pair) -> None:
        self._pairs.pop(pair.request_id, None)
        message = f"(conn={id(self.conn):#x}, request={pair.request_id}) timed out waiting for streams"
        log.warning("port-forward to pod %s: %s", self._pod, message)
        if pair.error is not None:
            self._spawn(_write_quietly(pair.error, message, close=True))

    def _message(self, port: int, detail: str) -> str:
        return (f"error forwarding port {port} to pod {self._pod}, uid {self._uid}: failed to "
                f'execute portforward in network namespace "{self._netns}": {detail}')  # fmt: skip

    async def _forward(self, error: SpdyStream, data: SpdyStream) -> None:
        try:
            await self._forward_pair(error, data)
        finally:
            error.discard()
            data.discard()

    async def _forward_pair(self, error: SpdyStream, data: SpdyStream) -> None:
        port = int(data.header("port"))
        try:
            reader, writer = await self._connect(port)
        except Exception as exc:  # whatever the runtime raises becomes the client's message
            detail = str(exc)
            if isinstance(exc, OSError) and exc.errno:
                detail = f"dial tcp4 127.0.0.1:{port}: connect: {_strerror(exc)}"
            if not detail.startswith("failed to"):
                detail = (f'failed to connect to localhost:{port} inside namespace "{self._pod}", '
                          f"IPv4: {detail}")  # fmt: skip
            message = self._message(port, detail)
            log.info("%s", message)
            await _write_quietly(error, message, close=True)
            await _write_quietly(data, None, close=True)
            return
        try:
            failure = await _copy(data, reader, writer)
        finally:
            writer.close()
        message = None
        if failure is not None:
            message = self._message(port, _strerror(failure))
            log.info("%s", message)
        await _write_quietly(error, message, close=True)
        await _write_quietly(data, None, close=True)

    async def shutdown(self) -> None:
        """The connection is gone: stop every forward and close its pod connection."""
        if self.conn is not None:
            self.conn.terminate()
        for pair in self._pairs.values():
            if pair.timer is not None:
                pair.timer.cancel()
        self._pairs.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _check_stream(stream: SpdyStream) -> str | None:
    """httpStreamReceived: the reason a stream is refused, or None."""
    port = stream.header("port")
    if not port:
        return '"port" header is required'
    if not (port.isascii() and port.isdigit()) or int(port) > 65535:
        why = "value out of range" if port.isascii() and port.isdigit() else "invalid syntax"
        return f'unable to parse "{port}" as a port: strconv.ParseUint: parsing "{port}": {why}'
    if int(port) < 1:
        return f'port "{port}" must be > 0'
    kind = stream.header("streamType")
    if not kind:
        return '"streamType" header is required'
    if kind not in ("error", "data"):
        return f'invalid stream type "{kind}"'
    return None


async def _copy(data: SpdyStream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                ) -> BaseException | None:  # fmt: skip
    """Copy both ways until both directions ended; a pod-side failure is returned."""

    async def to_pod() -> None:
        while chunk := await data.read():
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # the client's FIN: the pod reads EOF, may still answer

    async def to_client() -> None:
        while chunk := await reader.read(MAX_DATA):
            await data.write(chunk)  # waits while the client's transport is backed up
        await data.close()

    upload, download = asyncio.ensure_future(to_pod()), asyncio.ensure_future(to_client())
    pending = {upload, download}
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = None if task.cancelled() else task.exception()
                if exc is None:
                    continue
                for other in pending:
                    other.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                pending = set()
                # A reset by the client is how it ends a forward; after the pod's EOF a failed
                # write to it is just the pod having gone.
                pod_done = download.done() and not download.cancelled() and not download.exception()
                if not isinstance(exc, StreamReset) and not pod_done:
                    return exc
    finally:
        for task in (upload, download):
            task.cancel()
        await asyncio.gather(upload, download, return_exceptions=True)
    return None


def _strerror(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()
    return str(exc)


async def _write_quietly(stream: SpdyStream, message: str | None, *, close: bool = False) -> None:
    try:
        if message:
            await stream.write(message.encode())
        if close:
            await stream.close()
    except StreamReset:
        pass
