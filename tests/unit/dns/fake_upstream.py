"""A fake upstream resolver on 127.0.0.1 (UDP and TCP on one port), so forwarding is tested
without ever reaching a real resolver. It knows a few names under example.org and counts the
queries it gets."""

from __future__ import annotations

import asyncio
import struct

from dnslib import QTYPE, RCODE, RR, DNSRecord

from pocketkube.dns.server import truncate, udp_size

RECORDS = {
    ("example.org.", QTYPE.A): ["192.0.2.7"],
    ("www.example.org.", QTYPE.A): ["192.0.2.8"],
    ("many.example.org.", QTYPE.A): [f"192.0.2.{i}" for i in range(1, 61)],
}


class FakeUpstream:
    def __init__(self) -> None:
        self.questions: list[tuple[str, int, str]] = []  # (name, type, "udp"|"tcp")
        self.port = 0
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    def reply(self, data: bytes, transport: str) -> bytes:
        request = DNSRecord.parse(data)
        name, qtype = str(request.q.qname).lower(), request.q.qtype
        self.questions.append((name, qtype, transport))
        reply = request.reply()
        found = RECORDS.get((name, qtype))
        if found is None and not any(n == name for n, _ in RECORDS):
            reply.header.rcode = RCODE.NXDOMAIN
        for ip in found or []:
            reply.add_answer(*RR.fromZone(f"{name} 60 IN A {ip}"))
        return truncate(reply, 65535 if transport == "tcp" else udp_size(request))

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        upstream = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                self.transport.sendto(upstream.reply(data, "udp"), addr)  # type: ignore[attr-defined]

        async def tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            (n,) = struct.unpack("!H", await reader.readexactly(2))
            out = self.reply(await reader.readexactly(n), "tcp")
            writer.write(struct.pack("!H", len(out)) + out)
            await writer.drain()
            writer.close()

        # A free UDP port may be taken for TCP: try another until both are ours.
        for _ in range(20):
            udp, _ = await loop.create_datagram_endpoint(Udp, local_addr=("127.0.0.1", 0))
            port = udp.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(tcp, "127.0.0.1", port)
            except OSError:
                udp.close()
                continue
            self._udp, self.port = udp, port
            return port
        raise OSError("no port free for both UDP and TCP on 127.0.0.1")

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
