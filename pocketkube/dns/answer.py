"""The reply to one question about the cluster domain, as CoreDNS's kubernetes plugin writes it
(plugin/kubernetes/handler.go `ServeDNS` and plugin/backend_lookup.go): the records per query
type built from the entries of `pocketkube.dns.records`, NXDOMAIN or NODATA with the zone's SOA
in the authority section, SERVFAIL for a name error before the caches have synced.

`resolve` is a pure function over a ClusterView. The one thing it cannot do alone is follow an
ExternalName whose target lies outside the cluster domain: the Answer then names the target
(`chase`) and the server completes it with `complete_chase` once the upstream has answered.
"""

from __future__ import annotations

import functools
import ipaddress
import math
from dataclasses import dataclass, field

from dnslib import AAAA, CNAME, NS, PTR, QTYPE, RCODE, RR, SOA, SRV, TXT, A

from pocketkube.dns import records as rec
from pocketkube.dns.records import Entry, NameError_
from pocketkube.dns.view import NO_PORT, ClusterView

MAX_CNAME_CHAIN = 10
SOA_REFRESH, SOA_RETRY, SOA_EXPIRE = 7200, 1800, 86400
DNS_VERSION_TTL = 28800


@dataclass(frozen=True)
class Zone:
    """The cluster domain this server is authoritative for."""

    domain: str = "cluster.local"
    ttl: int = 30
    local_ips: tuple[str, ...] = ()

    @property
    def origin(self) -> str:
        return self.domain.lower().strip(".") + "."


@dataclass
class Answer:
    rcode: int = RCODE.NOERROR
    answer: list[RR] = field(default_factory=list)
    authority: list[RR] = field(default_factory=list)
    additional: list[RR] = field(default_factory=list)
    authoritative: bool = True
    chase: str = ""  # an out-of-zone CNAME target to look up upstream with the same type
    soa: RR | None = None  # what a NODATA carries if the chase comes back empty


def soa_record(view: ClusterView, zone: Zone, owner: str) -> RR:
    ttl = min(zone.ttl, 300)
    return RR(owner, QTYPE.SOA, ttl=ttl, rdata=SOA(
        f"ns.dns.{owner}", f"hostmaster.{owner}",
        (view.modified & 0xFFFFFFFF, SOA_REFRESH, SOA_RETRY, SOA_EXPIRE, zone.ttl)))


@functools.lru_cache(maxsize=65536)
def _family(host: str) -> int:
    try:
        return QTYPE.A if ipaddress.ip_address(host).version == 4 else QTYPE.AAAA
    except ValueError:
        return QTYPE.CNAME


def _address(owner: str, ip: str, ttl: int) -> RR:
    if _family(ip) == QTYPE.A:
        return RR(owner, QTYPE.A, ttl=ttl, rdata=A(ip))
    return RR(owner, QTYPE.AAAA, ttl=ttl, rdata=AAAA(ip))


class _Resolver:
    """One question: `qname` as asked (its case kept in answers), `lname` lower case."""

    def __init__(self, view: ClusterView, zone: Zone, qname: str) -> None:
        self.view, self.zone = view, zone
        self.qname = qname if qname.endswith(".") else qname + "."
        self.lname = self.qname.lower()
        self.origin = zone.origin
        # The zone as the question spells it, so the answers keep the asker's case.
        self.zone_q = self.qname[len(self.qname) - len(self.origin):]
        self.chase = ""

    def base(self, lname: str) -> str:
        return lname[: -len(self.origin)].rstrip(".")

    def services(self, lname: str, qtype: int) -> list[Entry]:
        """kubernetes.go `Services` (raises NameError_)."""
        zone = self.zone_q.rstrip(".")
        base = self.base(lname)
        if qtype == QTYPE.TXT:
            if base == "dns-version":
                return [Entry("", 0, lname, rec.DNS_SCHEMA_VERSION)]
            if rec.records(self.view, base, zone, self.zone.ttl):
                return []
            raise NameError_(base)
        if qtype == QTYPE.NS:
            return rec.ns_addresses(self.view, zone, self.zone.local_ips)
        if base == "ns.dns":  # this server's own name: its addresses, NODATA for other types
            return [e for e in rec.ns_addresses(self.view, zone, self.zone.local_ips)
                    if _family(e.host) == qtype]
        found = rec.records(self.view, base, zone, self.zone.ttl)
        if qtype == QTYPE.SRV:
            found = [e for e in found if _family(e.host) != QTYPE.CNAME]
        return found

    def addresses(self, qname: str, qtype: int, previous: list[RR]) -> list[RR]:
        """backend_lookup.go `A` / `AAAA` for `qname` (raises NameError_)."""
        lname = qname.lower()
        ttl, out, seen = self.zone.ttl, [], set()
        for e in self.services(lname, qtype):
            kind = _family(e.host)
            if kind == QTYPE.CNAME:
                target = e.host.rstrip(".") + "."
                if target.lower() == lname or len(previous) > MAX_CNAME_CHAIN:
                    continue
                cname = RR(qname, QTYPE.CNAME, ttl=ttl, rdata=CNAME(target))
                if any(str(p.rname).lower() == lname and str(p.rdata.label).lower() ==
                       target.lower() for p in previous):
                    continue
                if rec.in_domain(target.lower(), self.origin):
                    try:
                        nxt = self.addresses(target, qtype, [*previous, cname])
                    except NameError_:
                        continue
                    if nxt:
                        out += [cname, *nxt]
                    continue
                out.append(cname)
                self.chase = target
            elif kind == qtype and e.host not in seen:
                seen.add(e.host)
                out.append(_address(qname, e.host, ttl))
        return out

    def srv(self) -> tuple[list[RR], list[RR]]:
        found = self.services(self.lname, QTYPE.SRV)
        # Every entry weighs 100 in its priority (all are priority 0), as CoreDNS counts them
        # before dropping duplicates.
        total = 100 * len(found)
        answer: list[RR] = []
        extra: list[RR] = []
        seen: set[tuple[str, str, int]] = set()
        for e in found:
            if e.port == NO_PORT:
                continue
            weight = max(int(math.floor(100.0 / total * 100)), 1)
            target = e.key.rstrip(".") + "."
            if (target, "", e.port) not in seen:
                seen.add((target, "", e.port))
                answer.append(RR(self.qname, QTYPE.SRV, ttl=self.zone.ttl,
                                 rdata=SRV(0, weight, e.port, target)))
            if (target, e.host, 0) not in seen:
                seen.add((target, e.host, 0))
                extra.append(_address(target, e.host, self.zone.ttl))
        return answer, extra

    def ns(self) -> tuple[list[RR], list[RR]]:
        answer, extra, seen = [], [], set()
        for e in self.services(self.lname, QTYPE.NS):
            target = e.key.rstrip(".") + "."
            extra.append(_address(target, e.host, self.zone.ttl))
            if target not in seen:
                seen.add(target)
                answer.append(RR(self.qname, QTYPE.NS, ttl=self.zone.ttl, rdata=NS(target)))
        return answer, extra


def resolve(view: ClusterView, zone: Zone, qname: str, qtype: int) -> Answer | None:
    """The reply to (qname, qtype), or None when the name is not this server's to answer
    (outside the cluster domain, or a reverse name that is not a cluster address) and
    must be forwarded upstream."""
    lname = qname.lower().rstrip(".") + "."
    if any(rec.in_domain(lname, z) for z in rec.REVERSE_ZONES):
        return _reverse(view, zone, qname, lname, qtype)
    if not rec.in_domain(lname, zone.origin):
        return None
    if qtype in (QTYPE.AXFR, QTYPE.IXFR):
        return Answer(rcode=RCODE.REFUSED, authoritative=False)
    r = _Resolver(view, zone, qname)
    answer: list[RR] = []
    extra: list[RR] = []
    try:
        if qtype in (QTYPE.A, QTYPE.AAAA):
            answer = r.addresses(r.qname, qtype, [])
        elif qtype == QTYPE.TXT:
            answer = [RR(r.qname, QTYPE.TXT, ttl=DNS_VERSION_TTL, rdata=TXT(e.text))
                      for e in r.services(lname, QTYPE.TXT)]
        elif qtype == QTYPE.CNAME:
            found = r.services(lname, QTYPE.CNAME)
            if found and _family(found[0].host) == QTYPE.CNAME:
                answer = [RR(r.qname, QTYPE.CNAME, ttl=zone.ttl,
                             rdata=CNAME(found[0].host.rstrip(".") + "."))]
        elif qtype == QTYPE.SRV:
            answer, extra = r.srv()
        elif qtype == QTYPE.SOA:
            answer = [soa_record(view, zone, r.zone_q)] if lname == zone.origin else []
        elif qtype == QTYPE.NS and lname == zone.origin:
            answer, extra = r.ns()
        elif qtype in (QTYPE.PTR, QTYPE.MX):
            r.services(lname, qtype)  # records for neither here: NODATA or NXDOMAIN
        else:
            r.addresses(r.qname, QTYPE.A, [])  # tells NODATA from NXDOMAIN
    except NameError_:
        code = RCODE.NXDOMAIN if view.synced else RCODE.SERVFAIL
        return Answer(rcode=code, authority=[soa_record(view, zone, r.zone_q)])
    if not answer and not r.chase:
        return Answer(authority=[soa_record(view, zone, r.zone_q)])
    soa = soa_record(view, zone, r.zone_q) if r.chase else None
    return Answer(answer=answer, additional=extra, chase=r.chase, soa=soa)


def _reverse(view: ClusterView, zone: Zone, qname: str, lname: str, qtype: int) -> Answer | None:
    """PTR for cluster addresses; everything else in the reverse zones falls through."""
    if qtype != QTYPE.PTR:
        return None
    ip = rec.address_from_reverse(lname)
    names = rec.reverse(view, ip, zone.origin.rstrip(".")) if ip else []
    if not names:
        return None
    return Answer(answer=[RR(qname, QTYPE.PTR, ttl=zone.ttl, rdata=PTR(n + "."))
                         for n in dict.fromkeys(names)])


def complete_chase(ans: Answer, upstream: list[RR] | None) -> Answer:
    """Add the upstream's records for an out-of-zone CNAME target. Without an upstream answer
    the CNAME is dropped (as CoreDNS does), leaving NODATA if nothing else answered."""
    if upstream is None:
        ans.answer = [r for r in ans.answer
                      if not (r.rtype == QTYPE.CNAME and str(r.rdata.label) == ans.chase)]
    else:
        ans.answer += upstream
    ans.chase = ""
    if not ans.answer:
        return Answer(authority=[ans.soa] if ans.soa is not None else [])
    return ans
