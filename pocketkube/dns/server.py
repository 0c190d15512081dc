"""The cluster DNS server: UDP and TCP on one address and port, asyncio, dnslib for the wire
format. Questions about the cluster domain are answered from the in-memory ClusterView
(pocketkube.dns.answer); everything else is forwarded upstream (pocketkube.dns.upstream).

What a client sees follows CoreDNS with the Corefile kubeadm installs (kubernetes, forward,
loadbalance): authoritative answers without the RA flag, address records in random order, the
request's EDNS payload size echoed, and a UDP reply that does not fit 512 bytes (or the EDNS
size) cut record by record with the TC bit set, as miekg/dns `Msg.Truncate` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import struct

from dnslib import EDNS0, OPCODE, QTYPE, RCODE, RR, DNSError, DNSHeader, DNSRecord

from pocketkube.dns.answer import Answer, Zone, complete_chase, resolve
from pocketkube.dns.upstream import Upstream, UpstreamError
from pocketkube.dns.view import ClusterView

log = logging.getLogger("pocketkube.dns")

MIN_UDP_SIZE = 512
MAX_TCP_SIZE = 65535
TCP_IDLE_TIMEOUT = 10.0  # seconds a TCP client may keep a connection without asking


def udp_size(request: DNSRecord) -> int:
    """The largest reply the client takes over UDP: its EDNS payload size, at least 512."""
    for rr in request.ar:
        if rr.rtype == QTYPE.OPT:
            return max(int(rr.rclass), MIN_UDP_SIZE)
    return MIN_UDP_SIZE


def truncate(reply: DNSRecord, size: int) -> bytes:
    """`reply` packed into at most `size` bytes: whole records, answer then authority then
    additional, each section up to the first record that does not fit; TC when any is left out.
    The OPT record is always kept."""
    data = reply.pack()
    if len(data) <= size:
        return data
    opt = [r for r in reply.ar if r.rtype == QTYPE.OPT]
    sections = (reply.rr, reply.auth, [r for r in reply.ar if r.rtype != QTYPE.OPT])
    kept: list[list[RR]] = [[], [], []]
    for i, section in enumerate(sections):
        lo, hi = 0, len(section)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            trial = [*kept[:i], section[:mid], *kept[i + 1:]]
            msg = DNSRecord(reply.header, questions=reply.questions, rr=trial[0],
                            auth=trial[1], ar=trial[2] + opt)
            if len(msg.pack()) <= size:
                lo = mid
            else:
                hi = mid - 1
        # Later sections still get what fits, as truncateLoop goes on while room is left.
        kept[i] = section[:lo]
    out = DNSRecord(reply.header, questions=reply.questions, rr=kept[0], auth=kept[1],
                    ar=kept[2] + opt)
    out.header.tc = 1
    return out.pack()


def _shuffled(records: list[RR]) -> list[RR]:
    """The loadbalance plugin's round robin: CNAMEs and others first, then the address
    records in random order."""
    if len(records) < 2:
        return records
    addresses = [r for r in records if r.rtype in (QTYPE.A, QTYPE.AAAA)]
    if len(addresses) < 2:
        return records
    random.shuffle(addresses)
    return [r for r in records if r.rtype not in (QTYPE.A, QTYPE.AAAA)] + addresses


def _error_reply(data: bytes, rcode: int) -> bytes | None:
    """A bare reply with `rcode` to a query too broken to parse (None if no header)."""
    if len(data) < 12:
        return None
    qid, flags = struct.unpack("!HH", data[:4])
    flags = (flags & 0x7900) | 0x8000 | rcode  # keep opcode and RD, set QR
    return struct.pack("!HHHHHH", qid, flags, 0, 0, 0, 0)


class DnsServer:
    """Answers from `view` for `zone`, forwards the rest to `upstream`."""

    def __init__(self, view: ClusterView, zone: Zone, upstream: Upstream) -> None:
        self.view = view
        self.zone = zone
        self.upstream = upstream
        self.queries = 0
        self.address: tuple[str, int] | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- answering ----------------------------------------------------------------------------
    def answer_now(self, request: DNSRecord) -> Answer | None:
        """The answer if it needs no upstream (None: forward the query as it is)."""
        q = request.q
        return resolve(self.view, self.zone, str(q.qname), q.qtype)

    def build(self, request: DNSRecord, ans: Answer) -> DNSRecord:
        reply = DNSRecord(DNSHeader(id=request.header.id, qr=1, aa=int(ans.authoritative),
                                    rd=request.header.rd, opcode=request.header.opcode,
                                    rcode=ans.rcode), q=request.q)
        reply.rr = _shuffled(ans.answer)
        reply.auth = list(ans.authority)
        reply.ar = list(ans.additional)
        for rr in request.ar:
            if rr.rtype == QTYPE.OPT:
                reply.ar.append(EDNS0(udp_len=rr.rclass, flags="do" if rr.ttl & 0x8000 else ""))
                break
        return reply

    async def handle(self, data: bytes, tcp: bool) -> bytes | None:
        """The reply to one raw query (None: drop it)."""
        self.queries += 1
        try:
            request = DNSRecord.parse(data)
        except (DNSError, IndexError, struct.error, ValueError):
            return _error_reply(data, RCODE.FORMERR)
        if request.header.opcode != OPCODE.QUERY:
            return self.pack(request, self.build(request, Answer(RCODE.NOTIMP,
                                                                 authoritative=False)), tcp)
        if len(request.questions) != 1:
            return self.pack(request, self.build(request, Answer(RCODE.FORMERR,
                                                                 authoritative=False)), tcp)
        ans = self.answer_now(request)
        if ans is None:
            try:
                return await self.upstream.exchange(data, tcp)
            except UpstreamError as e:
                log.debug("forwarding %s: %s", request.q.qname, e)
                return self.pack(request, self.build(request, Answer(RCODE.SERVFAIL,
                                                                     authoritative=False)), tcp)
        truncated = False
        if ans.chase:
            found = await self.upstream.lookup(ans.chase, request.q.qtype)
            truncated = bool(found and found[1])
            ans = complete_chase(ans, found[0] if found else None)
        reply = self.build(request, ans)
        reply.header.tc = int(truncated)
        return self.pack(request, reply, tcp)

    def pack(self, request: DNSRecord, reply: DNSRecord, tcp: bool) -> bytes:
        return truncate(reply, MAX_TCP_SIZE if tcp else udp_size(request))

    def handle_fast(self, data: bytes) -> bytes | None:
        """A UDP query answered without awaiting anything, or None when it needs the upstream
        (then `handle` runs as a task); keeps the common case free of task overhead."""
        try:
            request = DNSRecord.parse(data)
        except (DNSError, IndexError, struct.error, ValueError):
            return None
        if request.header.opcode != OPCODE.QUERY or len(request.questions) != 1:
            return None
        ans = self.answer_now(request)
        if ans is None or ans.chase:
            return None
        self.queries += 1
        return truncate(self.build(request, ans), udp_size(request))

    # -- transports ---------------------------------------------------------------------------
    async def start(self, host: str, port: int = 53) -> int:
        """Listen on UDP and TCP `host`:`port` (0: a free port, the same for both); returns
        the port."""
        loop = asyncio.get_running_loop()
        for _ in range(20):
            udp, _proto = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(host, port))
            bound = udp.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, host, bound,
                                                       reuse_address=True)
            except OSError:
                udp.close()
                if port:
                    raise
                continue
            self._udp = udp
            self.address = (host, bound)
            log.info("cluster DNS on %s:%d (udp, tcp) for %s", host, bound, self.zone.domain)
            return bound
        raise OSError(f"no port free for both UDP and TCP on {host}")

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            with contextlib.suppress(Exception):
                await self._tcp.wait_closed()
            self._tcp = None
        for t in list(self._tasks):
            t.cancel()
        self._tasks.clear()

    def spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve_tcp(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_TIMEOUT)
                    (length,) = struct.unpack("!H", head)
                    data = await asyncio.wait_for(reader.readexactly(length), TCP_IDLE_TIMEOUT)
                except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
                    return
                reply = await self.handle(data, tcp=True)
                if reply is None:
                    return
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except Exception:
            log.exception("DNS over TCP")
        finally:
            writer.close()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            reply = self.server.handle_fast(data)
        except Exception:
            log.exception("DNS query from %s", addr[0])
            reply = _error_reply(data, RCODE.SERVFAIL)
        if reply is not None:
            self._send(reply, addr)
            return
        self.server.spawn(self._slow(data, addr))

    async def _slow(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            reply = await self.server.handle(data, tcp=False)
        except Exception:
            log.exception("DNS query from %s", addr[0])
            reply = _error_reply(data, RCODE.SERVFAIL)
        if reply is not None:
            self._send(reply, addr)

    def _send(self, reply: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)
