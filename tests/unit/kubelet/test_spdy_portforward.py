"""handle_portforward driven by a hand-written SPDY/3.1 client: over a websocket from aiohttp's
test client (kubectl's default tunnel) and over a raw TCP connection after `Upgrade: SPDY/3.1`."""

from __future__ import annotations

import asyncio
import re
import socket
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer

from pocketkube.kubelet.server import portforward
from pocketkube.kubelet.server.portforward import TUNNEL_PROTOCOL, handle_portforward
from pocketkube.kubelet.server.spdy import (
    CANCEL,
    DataFrame,
    Frame,
    FrameReader,
    FrameWriter,
    Ping,
    RstStream,
    SynReply,
    SynStream,
)

FLOOD_LIMIT = 64 * 1024 * 1024
PATH = "/api/v1/namespaces/default/pods/p1/portforward"


class Pod:
    """TCP servers on 127.0.0.1 standing in for the pod's ports: 80 echoes until EOF, 82 floods
    until its writes back up; any other port is one nothing listens on."""

    def __init__(self) -> None:
        self.ports: dict[int, int] = {}
        self.flooded = 0
        self.stalled = asyncio.Event()
        self.servers: list[asyncio.Server] = []

    async def start(self) -> None:
        for port, handler in ((80, self._echo), (82, self._flood)):
            server = await asyncio.start_server(handler, "127.0.0.1", 0)
            self.servers.append(server)
            self.ports[port] = server.sockets[0].getsockname()[1]
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.closed_port = sock.getsockname()[1]

    async def connect(self, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.ports.get(port, self.closed_port))

    async def _echo(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def _flood(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        chunk = bytes(range(256)) * 256
        while self.flooded < FLOOD_LIMIT:
            writer.write(chunk)
            self.flooded += len(chunk)
            # Kernel buffers are full and nobody reads: the forwarder stopped pulling.
            if writer.transport.get_write_buffer_size() > 4 * 1024 * 1024:
                self.stalled.set()
                break
            await asyncio.sleep(0)
        await writer.drain()
        writer.close()


class Peer:
    """A port-forward client: sends frames, and records what comes back per stream."""

    def __init__(self, send: Callable[[bytes], Awaitable[None]],
                 recv: Callable[[], Awaitable[bytes]]) -> None:  # fmt: skip
        self._send, self._recv = send, recv
        self.writer, self.reader = FrameWriter(), FrameReader()
        self.data: dict[int, bytearray] = defaultdict(bytearray)
        self.fin: set[int] = set()
        self.replied: set[int] = set()
        self.resets: dict[int, int] = {}
        self.pings: list[int] = []

    async def send(self, *frames: Frame) -> None:
        for frame in frames:
            await self._send(self.writer.encode(frame))

    async def open(self, request_id: int, error_id: int, port: int = 80) -> int:
        """kubectl's sequence for one local connection; returns the data stream's id."""
        headers = {"port": [str(port)], "requestid": [str(request_id)]}
        await self.send(SynStream(error_id, {**headers, "streamtype": ["error"]}),
                        DataFrame(error_id, b"", fin=True),
                        SynStream(error_id + 2, {**headers, "streamtype": ["data"]}))  # fmt: skip
        return error_id + 2

    async def until(self, done: Callable[[], bool]) -> None:
        async def pump() -> None:
            while not done():
                chunk = await self._recv()
                assert chunk, "the connection closed"
                for frame in self.reader.feed(chunk):
                    self._record(frame)

        await asyncio.wait_for(pump(), 30)

    def _record(self, frame: Frame) -> None:
        if isinstance(frame, SynReply):
            self.replied.add(frame.stream_id)
        elif isinstance(frame, DataFrame):
            assert frame.stream_id in self.replied and frame.stream_id not in self.fin
            self.data[frame.stream_id] += frame.data
            if frame.fin:
                self.fin.add(frame.stream_id)
        elif isinstance(frame, RstStream):
            self.resets[frame.stream_id] = frame.status
        elif isinstance(frame, Ping):
            self.pings.append(frame.id)


@pytest.fixture
async def pod() -> AsyncIterator[Pod]:
    result = Pod()
    await result.start()
    yield result
    for server in result.servers:
        server.close()


@pytest.fixture
async def client(pod: Pod) -> AsyncIterator[TestClient]:
    async def portforward(request: web.Request) -> web.StreamResponse:
        return await handle_portforward(request, pod.connect, pod="4f2a", netns="/run/netns/cni-1")

    app = web.Application()
    app.router.add_route("*", PATH, portforward)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


@pytest.fixture
async def tunnel(client: TestClient) -> AsyncIterator[Peer]:
    ws = await client.ws_connect(PATH, protocols=(TUNNEL_PROTOCOL,))
    assert ws.protocol == TUNNEL_PROTOCOL

    async def recv() -> bytes:
        message = await ws.receive()
        return message.data if message.type == WSMsgType.BINARY else b""

    yield Peer(ws.send_bytes, recv)
    await ws.close()


async def test_a_pair_is_forwarded_and_half_closed(tunnel: Peer) -> None:
    data = await tunnel.open(0, 1)
    await tunnel.until(lambda: {1, data} <= tunnel.replied)
    await tunnel.send(DataFrame(data, b"hello "), DataFrame(data, b"pod"))
    await tunnel.until(lambda: bytes(tunnel.data[data]) == b"hello pod")
    assert data not in tunnel.fin  # the pod keeps its side open until it reads EOF
    await tunnel.send(DataFrame(data, b"", fin=True))
    await tunnel.until(lambda: {1, data} <= tunnel.fin)
    assert tunnel.data[1] == b"" and tunnel.resets == {}


async def test_concurrent_pairs_share_the_tunnel(tunnel: Peer) -> None:
    streams = [await tunnel.open(n, 1 + 4 * n) for n in range(4)]
    for n, sid in enumerate(streams):
        await tunnel.send(DataFrame(sid, f"conn {n} ".encode() * 5000, fin=True))
    await tunnel.until(lambda: set(streams) <= tunnel.fin)
    assert [bytes(tunnel.data[sid]) for sid in streams] == [
        f"conn {n} ".encode() * 5000 for n in range(4)
    ]


async def test_a_refused_port_is_reported_on_the_error_stream(tunnel: Peer, pod: Pod) -> None:
    data = await tunnel.open(0, 1, port=81)
    await tunnel.until(lambda: {1, data} <= tunnel.fin)
    assert tunnel.data[1].decode() == (
        'error forwarding port 81 to pod 4f2a, uid : failed to execute portforward in network '
        'namespace "/run/netns/cni-1": failed to connect to localhost:81 inside namespace "4f2a", '
        "IPv4: dial tcp4 127.0.0.1:81: connect: connection refused"
    )  # fmt: skip


async def test_data_for_a_failed_forward_does_not_hold_up_the_tunnel(tunnel: Peer) -> None:
    data = await tunnel.open(0, 1, port=81)
    await tunnel.until(lambda: {1, data} <= tunnel.fin)
    await tunnel.send(DataFrame(data, bytes(3 * 1024 * 1024)))  # more than a stream may buffer
    second = await tunnel.open(1, 5)
    await tunnel.send(DataFrame(second, b"still here", fin=True))
    await tunnel.until(lambda: second in tunnel.fin)
    assert tunnel.data[second] == b"still here"


async def test_a_pair_missing_its_data_stream_times_out(tunnel: Peer,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr(portforward, "STREAM_CREATION_TIMEOUT", 0.01)
    await tunnel.send(SynStream(1, {"port": ["80"], "requestid": ["0"], "streamtype": ["error"]}))
    await tunnel.until(lambda: 1 in tunnel.fin)
    assert re.fullmatch(r"\(conn=0x[0-9a-f]+, request=0\) timed out waiting for streams",
                        tunnel.data[1].decode())  # fmt: skip


async def test_bad_streams_are_reset_and_pings_answered(tunnel: Peer) -> None:
    await tunnel.send(SynStream(1, {"streamtype": ["data"]}),
                      SynStream(3, {"port": ["80"], "streamtype": ["stdin"]}),
                      SynStream(5, {"port": ["0"], "streamtype": ["data"]}), Ping(7))  # fmt: skip
    await tunnel.until(lambda: len(tunnel.resets) == 3 and tunnel.pings == [7])
    assert tunnel.resets == {1: CANCEL, 3: CANCEL, 5: CANCEL} and not tunnel.replied


async def test_a_client_reset_ends_the_forward(tunnel: Peer) -> None:
    data = await tunnel.open(0, 1)
    await tunnel.send(DataFrame(data, b"x"))
    await tunnel.until(lambda: tunnel.data[data] == b"x")
    await tunnel.send(RstStream(data, CANCEL))
    await tunnel.until(lambda: 1 in tunnel.fin)  # the error stream ends, empty
    assert tunnel.data[1] == b""


async def test_a_slow_reader_stops_reading_from_the_pod(client: TestClient, pod: Pod) -> None:
    ws = await client.ws_connect(PATH, protocols=(TUNNEL_PROTOCOL,))

    async def recv() -> bytes:
        message = await ws.receive()
        return message.data if message.type == WSMsgType.BINARY else b""

    tunnel = Peer(ws.send_bytes, recv)
    data = await tunnel.open(0, 1, port=82)
    # Nothing reads the websocket: the pod's writes must back up long before it sent it all.
    await asyncio.wait_for(pod.stalled.wait(), 30)
    assert pod.flooded < FLOOD_LIMIT
    await tunnel.until(lambda: data in tunnel.fin)
    assert len(tunnel.data[data]) == pod.flooded
    await ws.close()


async def _raw_upgrade(client: TestClient, headers: str) -> tuple[bytes, asyncio.StreamReader,
                                                                  asyncio.StreamWriter]:  # fmt: skip
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(f"POST {PATH} HTTP/1.1\r\nHost: pod\r\nContent-Length: 0\r\n{headers}\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    return head, reader, writer


async def test_plain_spdy_upgrade_takes_over_the_connection(client: TestClient) -> None:
    head, reader, writer = await _raw_upgrade(client, "Connection: Upgrade\r\n"
        "Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\n")  # fmt: skip
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"X-Stream-Protocol-Version: portforward.k8s.io\r\n" in head
    assert b"Upgrade: SPDY/3.1\r\n" in head

    async def send(raw: bytes) -> None:
        writer.write(raw)
        await writer.drain()

    peer = Peer(send, lambda: reader.read(65536))
    streams = [await peer.open(n, 1 + 4 * n) for n in range(2)]
    big = bytes(range(256)) * 8192  # 2 MiB each way
    for sid in streams:
        await peer.send(DataFrame(sid, big), DataFrame(sid, b"", fin=True))
    await peer.until(lambda: set(streams) <= peer.fin)
    assert all(bytes(peer.data[sid]) == big for sid in streams)
    writer.close()


@pytest.mark.parametrize(("headers", "status", "text"), [
    ("Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n", 400,
     "unable to upgrade: header X-Stream-Protocol-Version does not exist in request with "),
    ("Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n",
     403, "unable to upgrade: unable to negotiate protocol: client supports [v4.channel.k8s.io], "
          "server accepts [portforward.k8s.io]"),
    ("X-Stream-Protocol-Version: portforward.k8s.io\r\n", 400,
     "unable to upgrade: missing upgrade headers in request: http.Header{"),
])  # fmt: skip
async def test_bad_upgrades_get_the_kubelet_answers(client: TestClient, headers: str, status: int,
                                                    text: str) -> None:  # fmt: skip
    head, reader, writer = await _raw_upgrade(client, headers + "Connection: close\r\n"
                                              if "Connection:" not in headers else headers)  # fmt: skip
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), head
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    assert (await reader.readexactly(length)).decode().startswith(text)
    writer.close()


async def test_a_websocket_without_the_tunnel_protocol_is_refused(client: TestClient) -> None:
    response = await client.get(PATH, headers={
        "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol": "v4.channel.k8s.io"})  # fmt: skip
    assert response.status == 400
    assert "SPDY/3.1+portforward.k8s.io" in await response.text()
