"""The DNS server over real UDP and TCP sockets on 127.0.0.1, asked with dnslib's client:
cluster names answered from the view, other names forwarded to a fake upstream on 127.0.0.1,
and replies too big for UDP truncated with the TC bit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from dnslib import EDNS0, QTYPE, RCODE, DNSRecord

from pocketkube.dns.answer import Zone
from pocketkube.dns.server import DnsServer
from pocketkube.dns.upstream import Upstream
from tests.unit.dns.fake_upstream import FakeUpstream
from tests.unit.dns.fixtures import cluster, endpoint_slice, ep, service


@dataclass
class Running:
    server: DnsServer
    upstream: FakeUpstream
    port: int

    async def ask(self, name: str, qtype: str = "A", tcp: bool = False,
                  edns: int = 0) -> DNSRecord:
        q = DNSRecord.question(name, qtype)
        if edns:
            q.add_ar(EDNS0(udp_len=edns))
        raw = await asyncio.to_thread(q.send, "127.0.0.1", self.port, tcp, 5)
        reply = DNSRecord.parse(raw)
        assert reply.header.id == q.header.id
        return reply


@pytest.fixture
async def dns() -> AsyncIterator[Running]:
    view = cluster()
    view.set_service(service("big", cluster_ip="None", ports=[("web", 80, "TCP")]))
    view.set_slice(endpoint_slice("big", [ep(f"10.150.1.{i}") for i in range(1, 61)],
                                  ports=[("web", 80, "TCP")]))
    upstream = FakeUpstream()
    up_port = await upstream.start()
    server = DnsServer(view, Zone(local_ips=("10.150.0.1",)),
                       Upstream([("127.0.0.1", up_port)], timeout=2.0))
    port = await server.start("127.0.0.1", 0)
    try:
        yield Running(server, upstream, port)
    finally:
        await server.close()
        await upstream.close()


def addresses(reply: DNSRecord) -> list[str]:
    return sorted(str(r.rdata) for r in reply.rr if r.rtype in (QTYPE.A, QTYPE.AAAA))


async def test_a_record_over_udp_and_tcp(dns: Running) -> None:
    for tcp in (False, True):
        reply = await dns.ask("web.default.svc.cluster.local", tcp=tcp)
        assert reply.header.rcode == RCODE.NOERROR
        assert reply.header.aa == 1 and reply.header.qr == 1 and reply.header.ra == 0
        assert [(str(r.rname), r.ttl, str(r.rdata)) for r in reply.rr] == [
            ("web.default.svc.cluster.local.", 30, "10.96.0.20")]
    assert dns.upstream.questions == []


async def test_srv_with_additional_addresses(dns: Running) -> None:
    reply = await dns.ask("_web._tcp.nginx.default.svc.cluster.local", "SRV")
    assert sorted((str(r.rdata.target), r.rdata.port) for r in reply.rr) == [
        ("web-0.nginx.default.svc.cluster.local.", 80),
        ("web-1.nginx.default.svc.cluster.local.", 80)]
    assert sorted(str(r.rdata) for r in reply.ar) == ["10.150.0.11", "10.150.0.12"]


async def test_headless_service_and_hostnames(dns: Running) -> None:
    assert addresses(await dns.ask("nginx.default.svc.cluster.local")) == [
        "10.150.0.11", "10.150.0.12"]
    assert addresses(await dns.ask("web-1.nginx.default.svc.cluster.local")) == ["10.150.0.12"]


async def test_external_name_is_a_cname_completed_upstream(dns: Running) -> None:
    reply = await dns.ask("ext.default.svc.cluster.local")
    assert [(QTYPE[r.rtype], str(r.rdata)) for r in reply.rr] == [
        ("CNAME", "example.org."), ("A", "192.0.2.7")]
    assert dns.upstream.questions == [("example.org.", QTYPE.A, "udp")]


async def test_nxdomain_with_soa(dns: Running) -> None:
    reply = await dns.ask("nope.default.svc.cluster.local")
    assert reply.header.rcode == RCODE.NXDOMAIN and reply.header.aa == 1
    assert reply.rr == []
    assert [(str(r.rname), QTYPE[r.rtype]) for r in reply.auth] == [("cluster.local.", "SOA")]
    nodata = await dns.ask("web.default.svc.cluster.local", "AAAA")
    assert nodata.header.rcode == RCODE.NOERROR and nodata.rr == [] and len(nodata.auth) == 1
    assert dns.upstream.questions == []


async def test_other_names_go_upstream(dns: Running) -> None:
    reply = await dns.ask("www.example.org")
    assert addresses(reply) == ["192.0.2.8"]
    missing = await dns.ask("missing.example.org", tcp=True)
    assert missing.header.rcode == RCODE.NXDOMAIN
    assert dns.upstream.questions == [("www.example.org.", QTYPE.A, "udp"),
                                      ("missing.example.org.", QTYPE.A, "tcp")]


async def test_servfail_when_the_upstream_is_gone(dns: Running) -> None:
    await dns.upstream.close()
    dns.server.upstream.timeout = 0.3
    reply = await dns.ask("www.example.org")
    assert reply.header.rcode == RCODE.SERVFAIL


async def test_udp_reply_over_512_bytes_is_truncated(dns: Running) -> None:
    udp = await dns.ask("big.default.svc.cluster.local")
    assert udp.header.tc == 1
    assert 0 < len(udp.rr) < 60 and len(udp.pack()) <= 512
    tcp = await dns.ask("big.default.svc.cluster.local", tcp=True)
    assert tcp.header.tc == 0 and len(addresses(tcp)) == 60
    edns = await dns.ask("big.default.svc.cluster.local", edns=4096)
    assert edns.header.tc == 0 and len(addresses(edns)) == 60
    assert [r.rclass for r in edns.ar if r.rtype == QTYPE.OPT] == [4096]


async def test_truncated_upstream_reply_is_passed_on(dns: Running) -> None:
    udp = await dns.ask("many.example.org")
    assert udp.header.tc == 1
    tcp = await dns.ask("many.example.org", tcp=True)
    assert len(addresses(tcp)) == 60


async def test_malformed_query_gets_formerr(dns: Running) -> None:
    loop = asyncio.get_running_loop()
    got: asyncio.Future[bytes] = loop.create_future()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            got.set_result(data)

    transport, _ = await loop.create_datagram_endpoint(
        Client, remote_addr=("127.0.0.1", dns.port))
    try:
        transport.sendto(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05bro")
        data = await asyncio.wait_for(got, 5)
    finally:
        transport.close()
    assert data[:2] == b"\x12\x34" and data[3] & 0x0F == RCODE.FORMERR and data[2] & 0x80
