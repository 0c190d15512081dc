"""The answers of cluster DNS as pure functions over a ClusterView: what CoreDNS's kubernetes
plugin answers for each kind of name and query type."""

from __future__ import annotations

from dnslib import QTYPE, RCODE, RR, A

from pocketkube.dns.answer import Answer, Zone, complete_chase, resolve
from pocketkube.dns.view import ClusterView
from tests.unit.dns.fixtures import cluster, endpoint_slice, ep, service

ZONE = Zone("cluster.local", ttl=30, local_ips=("10.150.0.1",))


def ask(name: str, qtype: str = "A", view: ClusterView | None = None) -> Answer:
    ans = resolve(view or cluster(), ZONE, name, getattr(QTYPE, qtype))
    assert ans is not None, f"{name} was not answered from the cluster"
    return ans


def data(records: list[RR]) -> list[str]:
    return sorted(str(r.rdata) for r in records)


def test_cluster_ip_service_a_record() -> None:
    ans = ask("web.default.svc.cluster.local.")
    assert ans.rcode == RCODE.NOERROR and ans.authoritative
    assert [(str(r.rname), r.rtype, r.ttl, str(r.rdata)) for r in ans.answer] == [
        ("web.default.svc.cluster.local.", QTYPE.A, 30, "10.96.0.20")]
    assert not ans.chase


def test_answers_keep_the_case_of_the_question() -> None:
    ans = ask("Web.DEFAULT.svc.Cluster.Local.")
    assert [str(r.rname) for r in ans.answer] == ["Web.DEFAULT.svc.Cluster.Local."]


def test_dual_stack_service_has_a_and_aaaa() -> None:
    assert data(ask("db.default.svc.cluster.local", "A").answer) == ["10.96.0.30"]
    assert data(ask("db.default.svc.cluster.local", "AAAA").answer) == ["fd00::30"]


def test_nodata_for_an_existing_name_of_another_type() -> None:
    ans = ask("web.default.svc.cluster.local", "AAAA")
    assert ans.rcode == RCODE.NOERROR and ans.answer == []
    assert [r.rtype for r in ans.authority] == [QTYPE.SOA]
    assert ask("web.default.svc.cluster.local", "MX").answer == []
    assert ask("web.default.svc.cluster.local", "TXT").rcode == RCODE.NOERROR


def test_nxdomain_carries_the_zone_soa() -> None:
    view = cluster()
    ans = ask("nope.default.svc.cluster.local", view=view)
    assert ans.rcode == RCODE.NXDOMAIN and ans.answer == []
    (soa,) = ans.authority
    assert str(soa.rname) == "cluster.local." and soa.ttl == 30
    assert str(soa.rdata.mname) == "ns.dns.cluster.local."
    assert str(soa.rdata.rname) == "hostmaster.cluster.local."
    assert soa.rdata.times == (view.modified, 7200, 1800, 86400, 30)


def test_names_that_do_not_exist() -> None:
    for name in ("web.nope.svc.cluster.local", "nope.cluster.local",
                 "a.b.c.web.default.svc.cluster.local", "empty.default.svc.cluster.local",
                 "_nope._tcp.web.default.svc.cluster.local", "web-9.nginx.default.svc.cluster.local",
                 "x.ext.default.svc.cluster.local"):
        assert ask(name).rcode == RCODE.NXDOMAIN, name


def test_namespace_and_apex_names_are_nodata() -> None:
    for name in ("default.svc.cluster.local", "svc.cluster.local", "cluster.local",
                 "pod.cluster.local", "default.pod.cluster.local"):
        ans = ask(name)
        assert (ans.rcode, ans.answer) == (RCODE.NOERROR, []), name


def test_headless_service_answers_ready_endpoints() -> None:
    assert data(ask("nginx.default.svc.cluster.local").answer) == ["10.150.0.11", "10.150.0.12"]


def test_statefulset_hostnames_under_a_headless_service() -> None:
    assert data(ask("web-0.nginx.default.svc.cluster.local").answer) == ["10.150.0.11"]
    assert data(ask("web-1.nginx.default.svc.cluster.local").answer) == ["10.150.0.12"]
    # Not ready: no name.
    assert ask("web-2.nginx.default.svc.cluster.local").rcode == RCODE.NXDOMAIN


def test_endpoint_without_hostname_is_named_by_its_address() -> None:
    assert data(ask("10-150-0-5.web.default.svc.cluster.local").answer) == ["10.150.0.5"]


def test_srv_for_a_named_port() -> None:
    ans = ask("_http._tcp.web.default.svc.cluster.local", "SRV")
    assert [(r.rdata.priority, r.rdata.weight, r.rdata.port, str(r.rdata.target))
            for r in ans.answer] == [(0, 100, 80, "web.default.svc.cluster.local.")]
    assert [(str(r.rname), str(r.rdata)) for r in ans.additional] == [
        ("web.default.svc.cluster.local.", "10.96.0.20")]
    udp = ask("_dns._udp.web.default.svc.cluster.local", "SRV").answer
    assert [r.rdata.port for r in udp] == [53]


def test_srv_for_the_service_name_lists_every_port() -> None:
    ans = ask("web.default.svc.cluster.local", "SRV")
    assert sorted((r.rdata.port, r.rdata.weight) for r in ans.answer) == [(53, 50), (80, 50)]
    assert len(ans.additional) == 1


def test_srv_of_a_headless_service_targets_each_endpoint() -> None:
    ans = ask("_web._tcp.nginx.default.svc.cluster.local", "SRV")
    assert sorted((str(r.rdata.target), r.rdata.port, r.rdata.weight) for r in ans.answer) == [
        ("web-0.nginx.default.svc.cluster.local.", 80, 50),
        ("web-1.nginx.default.svc.cluster.local.", 80, 50)]
    assert sorted((str(r.rname), str(r.rdata)) for r in ans.additional) == [
        ("web-0.nginx.default.svc.cluster.local.", "10.150.0.11"),
        ("web-1.nginx.default.svc.cluster.local.", "10.150.0.12")]


def test_pod_names_answer_the_address_they_spell() -> None:
    assert data(ask("10-150-0-7.default.pod.cluster.local").answer) == ["10.150.0.7"]
    assert data(ask("fd00--7.default.pod.cluster.local", "AAAA").answer) == ["fd00::7"]
    assert ask("not-an-ip.default.pod.cluster.local").rcode == RCODE.NXDOMAIN
    assert ask("10-150-0-7.nope.pod.cluster.local").rcode == RCODE.NXDOMAIN


def test_external_name_outside_the_cluster_is_a_cname_to_chase() -> None:
    ans = ask("ext.default.svc.cluster.local")
    assert [(r.rtype, str(r.rdata)) for r in ans.answer] == [(QTYPE.CNAME, "example.org.")]
    assert ans.chase == "example.org."
    upstream = [RR("example.org.", QTYPE.A, ttl=60, rdata=A("192.0.2.7"))]
    done = complete_chase(ans, upstream)
    assert [str(r.rdata) for r in done.answer] == ["example.org.", "192.0.2.7"]


def test_external_name_without_an_upstream_answer_is_nodata() -> None:
    done = complete_chase(ask("ext.default.svc.cluster.local"), None)
    assert done.answer == [] and done.rcode == RCODE.NOERROR
    assert [r.rtype for r in done.authority] == [QTYPE.SOA]


def test_external_name_inside_the_cluster_follows_the_cname() -> None:
    ans = ask("alias.default.svc.cluster.local")
    assert [(str(r.rname), str(r.rdata)) for r in ans.answer] == [
        ("alias.default.svc.cluster.local.", "web.default.svc.cluster.local."),
        ("web.default.svc.cluster.local.", "10.96.0.20")]
    assert not ans.chase
    cname = ask("ext.default.svc.cluster.local", "CNAME")
    assert [str(r.rdata) for r in cname.answer] == ["example.org."]
    assert ask("ext.default.svc.cluster.local", "SRV").answer == []


def test_txt_dns_version() -> None:
    ans = ask("dns-version.cluster.local", "TXT")
    assert [(str(r.rdata), r.ttl) for r in ans.answer] == [('"1.1.0"', 28800)]
    assert ask("nope.default.svc.cluster.local", "TXT").rcode == RCODE.NXDOMAIN


def test_zone_apex_soa_and_ns() -> None:
    soa = ask("cluster.local", "SOA")
    assert [r.rtype for r in soa.answer] == [QTYPE.SOA]
    assert ask("web.default.svc.cluster.local", "SOA").answer == []
    ns = ask("cluster.local", "NS")
    assert [str(r.rdata) for r in ns.answer] == ["kube-dns.kube-system.svc.cluster.local."]
    assert [(str(r.rname), str(r.rdata)) for r in ns.additional] == [
        ("kube-dns.kube-system.svc.cluster.local.", "10.96.0.10")]
    assert data(ask("ns.dns.cluster.local").answer) == ["10.96.0.10"]


def test_reverse_lookups_of_cluster_addresses() -> None:
    assert data(ask("20.0.96.10.in-addr.arpa", "PTR").answer) == [
        "web.default.svc.cluster.local."]
    assert data(ask("11.0.150.10.in-addr.arpa", "PTR").answer) == [
        "web-0.nginx.default.svc.cluster.local."]
    view = cluster()
    assert resolve(view, ZONE, "99.0.0.10.in-addr.arpa.", QTYPE.PTR) is None
    assert resolve(view, ZONE, "20.0.96.10.in-addr.arpa.", QTYPE.A) is None


def test_other_names_are_not_answered_here() -> None:
    assert resolve(cluster(), ZONE, "example.org.", QTYPE.A) is None
    assert resolve(cluster(), ZONE, "notcluster.local.", QTYPE.A) is None


def test_zone_transfers_are_refused() -> None:
    assert ask("cluster.local", "AXFR").rcode == RCODE.REFUSED


def test_name_errors_before_sync_are_servfail() -> None:
    view = cluster()
    view.synced = False
    assert ask("nope.default.svc.cluster.local", view=view).rcode == RCODE.SERVFAIL
    assert data(ask("web.default.svc.cluster.local", view=view).answer) == ["10.96.0.20"]


def test_view_follows_changes() -> None:
    view = cluster()
    view.set_slice(endpoint_slice("nginx", [ep("10.150.0.21", hostname="web-0")],
                                  ports=[("web", 80, "TCP")], name="nginx-second"))
    assert data(ask("web-0.nginx.default.svc.cluster.local", view=view).answer) == [
        "10.150.0.11", "10.150.0.21"]
    view.delete_slice(endpoint_slice("nginx", [], name="nginx-abcde"))
    assert data(ask("nginx.default.svc.cluster.local", view=view).answer) == ["10.150.0.21"]
    view.delete_service(service("web"))
    assert ask("web.default.svc.cluster.local", view=view).rcode == RCODE.NXDOMAIN
    view.set_service(service("web", cluster_ip="10.96.0.99"))
    assert data(ask("web.default.svc.cluster.local", view=view).answer) == ["10.96.0.99"]
