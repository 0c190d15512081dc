"""The userspace proxy mode, for the process runtime on machines without root: asyncio TCP and
UDP listeners on 127.0.0.1:<nodePort> (and on each load-balancer ingress IP, at the service
port, where that address is local) that forward each connection — or each client's datagrams —
to the service's endpoints in turn (round-robin).

Endpoint choice follows the iptables mode: Ready endpoints, Serving+Terminating ones when none
is Ready, node-local ones for a Local external policy. A connection that cannot reach one
endpoint tries the next, so a dead endpoint costs a retry, not a failed request.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from dataclasses import dataclass, field

from pocketkube.proxy.changetracker import Snapshot
from pocketkube.proxy.model import Endpoint, categorize

log = logging.getLogger("pocketkube.proxy.userspace")

CONNECT_TIMEOUT = 5.0
UDP_IDLE = 60.0

ListenKey = tuple[str, int, str]  # (host, port, protocol)


@dataclass
class Backends:
    name: str
    endpoints: list[Endpoint] = field(default_factory=list)
    _turn: itertools.count = field(default_factory=itertools.count)

    def order(self) -> list[Endpoint]:
        """Every endpoint, starting with the next one in the rotation."""
        eps = list(self.endpoints)
        if not eps:
            return []
        start = next(self._turn) % len(eps)
        return eps[start:] + eps[:start]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()


class _TcpListener:
    def __init__(self, backends: Backends) -> None:
        self.backends = backends
        self.server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        self.server = await asyncio.start_server(self._serve, host, port, reuse_address=True)

    async def _serve(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        upstream = None
        for ep in self.backends.order():
            try:
                upstream = await asyncio.wait_for(
                    asyncio.open_connection(ep.ip, ep.port), CONNECT_TIMEOUT)
                break
            except (OSError, TimeoutError) as e:
                log.debug("%s: endpoint %s unreachable: %s", self.backends.name, ep, e)
        if upstream is None:
            cwriter.close()
            return
        ureader, uwriter = upstream
        try:
            await asyncio.gather(_pipe(creader, uwriter), _pipe(ureader, cwriter))
        finally:
            for w in (uwriter, cwriter):
                w.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()


class _UdpSession(asyncio.DatagramProtocol):
    """One client's datagrams to one endpoint; replies go back through the front socket."""

    def __init__(self, front: _UdpListener, client: tuple[str, int]) -> None:
        self.front, self.client = front, client
        self.transport: asyncio.DatagramTransport | None = None
        self.idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.front.transport is not None:
            self.front.transport.sendto(data, self.client)
        self.touch()

    def touch(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        self.idle = asyncio.get_running_loop().call_later(UDP_IDLE, self.close)

    def close(self) -> None:
        self.front.sessions.pop(self.client, None)
        if self.transport is not None:
            self.transport.close()


class _UdpListener(asyncio.DatagramProtocol):
    def __init__(self, backends: Backends) -> None:
        self.backends = backends
        self.transport: asyncio.DatagramTransport | None = None
        self.sessions: dict[tuple[str, int], _UdpSession] = {}

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=(host, port), reuse_port=False)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        session = self.sessions.get(addr)
        if session is not None and session.transport is not None:
            session.transport.sendto(data)
            session.touch()
            return
        order = self.backends.order()
        if order:
            asyncio.get_running_loop().create_task(self._open(addr, order[0], data))

    async def _open(self, client: tuple[str, int], ep: Endpoint, first: bytes) -> None:
        loop = asyncio.get_running_loop()
        session = _UdpSession(self, client)
        try:
            await loop.create_datagram_endpoint(lambda: session, remote_addr=(ep.ip, ep.port))
        except OSError as e:
            log.debug("%s: endpoint %s unreachable: %s", self.backends.name, ep, e)
            return
        self.sessions[client] = session
        assert session.transport is not None
        session.transport.sendto(first)
        session.touch()

    async def close(self) -> None:
        for s in list(self.sessions.values()):
            s.close()
        if self.transport is not None:
            self.transport.close()


class UserspaceProxier:
    def __init__(self, node_name: str, loopback: str = "127.0.0.1") -> None:
        self.node_name = node_name
        self.loopback = loopback
        self.listeners: dict[ListenKey, _TcpListener | _UdpListener] = {}
        self._failed: set[ListenKey] = set()

    def desired(self, snap: Snapshot) -> dict[ListenKey, Backends]:
        want: dict[ListenKey, Backends] = {}
        for sp, eps in snap.services:
            if sp.protocol not in ("TCP", "UDP"):
                continue
            cat = categorize(eps, sp, self.node_name, snap.node_zone)
            # Host-originated traffic to a node port uses every endpoint (kube's "route LOCAL
            # traffic" rule); Local policy narrows only traffic from elsewhere.
            chosen = cat.cluster or cat.local
            if sp.node_port:
                want[(self.loopback, sp.node_port, sp.protocol)] = Backends(sp.key, chosen)
            for vip in sp.load_balancer_vips:
                want[(vip, sp.port, sp.protocol)] = Backends(sp.key, chosen)
        return want

    async def sync(self, snap: Snapshot) -> None:
        want = self.desired(snap)
        for key in [k for k in self.listeners if k not in want]:
            await self.listeners.pop(key).close()
        self._failed &= set(want)
        for key, backends in want.items():
            current = self.listeners.get(key)
            if current is not None:
                current.backends.name = backends.name
                current.backends.endpoints = backends.endpoints
                continue
            if key in self._failed:
                continue
            host, port, proto = key
            listener = _TcpListener(backends) if proto == "TCP" else _UdpListener(backends)
            try:
                await listener.start(host, port)
            except OSError as e:
                # Not a local address, or taken: skip it until the service changes.
                self._failed.add(key)
                log.warning("cannot listen on %s:%d/%s for %s: %s", host, port, proto,
                            backends.name, e)
                continue
            self.listeners[key] = listener
            log.info("forwarding %s:%d/%s to %s", host, port, proto, backends.name)

    async def close(self) -> None:
        for listener in self.listeners.values():
            await listener.close()
        self.listeners.clear()
