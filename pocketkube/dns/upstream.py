"""Forwarding names outside the cluster domain to the host's resolvers, as CoreDNS's `forward .
/etc/resolv.conf` does: the query goes out unchanged over the transport the client used (UDP,
or TCP after a truncated reply), each upstream is tried in turn, and a reply is accepted only
if its ID and question match the query.

Hand-written over asyncio because the exchange is a few lines and dnslib's own client is
blocking; dnslib still parses and builds the messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import struct
from pathlib import Path

from dnslib import QTYPE, RR, DNSRecord

log = logging.getLogger("pocketkube.dns")

Address = tuple[str, int]


class UpstreamError(Exception):
    """No upstream gave a usable answer."""


def resolv_conf_nameservers(path: Path = Path("/etc/resolv.conf")) -> list[Address]:
    """The `nameserver` lines of a resolv.conf, port 53 each."""
    out: list[Address] = []
    try:
        text = path.read_text()
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            out.append((parts[1].split("%")[0], 53))
    return out


def parse_address(text: str) -> Address:
    """'1.2.3.4', '1.2.3.4:5353', '[::1]:5353' or '::1' as (host, port)."""
    if text.startswith("["):
        host, _, port = text[1:].partition("]")
        return host, int(port.lstrip(":") or 53)
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, 53


class _Datagram(asyncio.DatagramProtocol):
    def __init__(self, query_id: int) -> None:
        self.query_id = query_id
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: object) -> None:
        if len(data) >= 2 and struct.unpack("!H", data[:2])[0] == self.query_id and \
                not self.reply.done():
            self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)


class Upstream:
    """The resolvers to forward to; `exclude` drops this server's own addresses so a host
    whose resolv.conf names cluster DNS does not loop."""

    def __init__(self, servers: list[Address], timeout: float = 2.0,
                 exclude: set[Address] | None = None) -> None:
        self.servers = [s for s in servers if s not in (exclude or set())]
        self.timeout = timeout

    async def exchange(self, data: bytes, tcp: bool = False) -> bytes:
        """The first matching reply to the raw query `data` from any upstream."""
        if not self.servers:
            raise UpstreamError("no upstream resolvers")
        query = DNSRecord.parse(data)
        servers = list(self.servers)
        random.shuffle(servers)  # CoreDNS forward's default policy is random
        last: Exception | None = None
        for server in servers:
            try:
                raw = await asyncio.wait_for(
                    self._tcp(server, data) if tcp else self._udp(server, data, query.header.id),
                    self.timeout)
                reply = DNSRecord.parse(raw)
            except Exception as e:  # unreachable, refused, timed out or unparsable: next one
                last = e
                log.debug("upstream %s:%d: %s", *server, e)
                continue
            if reply.header.id == query.header.id and reply.questions == query.questions:
                return raw
            last = UpstreamError(f"mismatched reply from {server[0]}:{server[1]}")
        raise UpstreamError(str(last))

    async def lookup(self, name: str, qtype: int) -> tuple[list[RR], bool] | None:
        """(answer records, truncated) for one question, or None if no upstream answered."""
        query = DNSRecord.question(name, QTYPE[qtype])
        try:
            reply = DNSRecord.parse(await self.exchange(query.pack()))
        except Exception as e:
            log.debug("upstream lookup of %s: %s", name, e)
            return None
        return list(reply.rr), bool(reply.header.tc)

    async def _udp(self, server: Address, data: bytes, query_id: int) -> bytes:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(
            lambda: _Datagram(query_id), remote_addr=server)
        try:
            transport.sendto(data)
            return await proto.reply
        finally:
            transport.close()

    async def _tcp(self, server: Address, data: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(*server)
        try:
            writer.write(struct.pack("!H", len(data)) + data)
            await writer.drain()
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            return await reader.readexactly(length)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
