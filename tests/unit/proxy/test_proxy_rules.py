"""rules.build: the iptables-restore input kube-proxy would write for the same objects — chain
names (kube's hashes), rule order, comments, probabilities, affinity, traffic policies, REJECT
for services without endpoints, NodePorts and the terminating fallback."""

from __future__ import annotations

from typing import Any

from pocketkube.proxy.chains import JUMPS
from pocketkube.proxy.model import (
    SERVICE_NAME_LABEL,
    Endpoint,
    endpoints_by_port,
    service_ports,
)
from pocketkube.proxy.rules import NodeInfo, RuleSet, build, probability

Obj = dict[str, Any]
NODE = NodeInfo("node-a", ip="192.168.0.2", cluster_cidr="10.0.0.0/8")
SVC = "KUBE-SVC-XPGD46QRK7WJZT7O"  # ns1/svc1:p80 tcp, as in kube's proxier tests
EXT = "KUBE-EXT-XPGD46QRK7WJZT7O"
SVL = "KUBE-SVL-XPGD46QRK7WJZT7O"
SEP1 = "KUBE-SEP-SXIVWICOYRO3J4NJ"  # 10.180.0.1:80


def service(type_: str = "ClusterIP", **spec: Any) -> Obj:
    port: Obj = {"name": "p80", "port": 80, "protocol": "TCP", "targetPort": 80}
    if "nodePort" in spec:
        port["nodePort"] = spec.pop("nodePort")
    status = spec.pop("status", {})
    return {"metadata": {"namespace": "ns1", "name": "svc1"},
            "spec": {"type": type_, "clusterIP": "172.30.0.41", "ports": [port], **spec},
            "status": status}


def ep(ip: str, node: str = "node-b", ready: bool = True, serving: bool | None = None,
       terminating: bool = False) -> Obj:
    cond: Obj = {"ready": ready, "terminating": terminating}
    if serving is not None:
        cond["serving"] = serving
    return {"addresses": [ip], "conditions": cond, "nodeName": node}


def eslice(*endpoints: Obj, name: str = "svc1-abc") -> Obj:
    return {"metadata": {"namespace": "ns1", "name": name,
                         "labels": {SERVICE_NAME_LABEL: "svc1"}},
            "addressType": "IPv4", "ports": [{"name": "p80", "port": 80, "protocol": "TCP"}],
            "endpoints": list(endpoints)}


def render(svc: Obj, *slices: Obj, node: NodeInfo = NODE, existing: tuple = ()) -> RuleSet:
    by_port = endpoints_by_port(list(slices))
    return build([(sp, by_port.get((sp.port_name, sp.protocol), []))
                  for sp in service_ports(svc)], node, existing)


def test_clusterip_service_golden() -> None:
    rs = render(service(), eslice(ep("10.180.0.1", node="node-a")))
    assert rs.text() == "\n".join([
        "*filter",
        ":KUBE-SERVICES - [0:0]",
        ":KUBE-EXTERNAL-SERVICES - [0:0]",
        ":KUBE-FORWARD - [0:0]",
        ":KUBE-NODEPORTS - [0:0]",
        ":KUBE-PROXY-FIREWALL - [0:0]",
        ":KUBE-FIREWALL - [0:0]",
        '-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" '
        "-d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT "
        "-j DROP",
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" '
        "-m mark --mark 0x4000/0x4000 -j ACCEPT",
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" '
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "COMMIT",
        "*nat",
        ":KUBE-SERVICES - [0:0]",
        ":KUBE-NODEPORTS - [0:0]",
        ":KUBE-POSTROUTING - [0:0]",
        ":KUBE-MARK-MASQ - [0:0]",
        f":{SVC} - [0:0]",
        f":{SEP1} - [0:0]",
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" '
        "-j MASQUERADE --random-fully",
        "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000",
        '-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp '
        f"-d 172.30.0.41 --dport 80 -j {SVC}",
        f'-A {SVC} -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp '
        "-d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ",
        f'-A {SVC} -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j {SEP1}',
        f"-A {SEP1} -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ",
        f"-A {SEP1} -m comment --comment ns1/svc1:p80 -m tcp -p tcp "
        "-j DNAT --to-destination 10.180.0.1:80",
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must '
        'be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
        "COMMIT", ""])


def test_probabilities_spread_over_ready_endpoints_only() -> None:
    rs = render(service(), eslice(ep("10.180.0.1"), ep("10.180.0.2"), ep("10.180.0.3"),
                                  ep("10.180.0.4", ready=False, serving=False)))
    spread = [r for r in rs.chain("nat", SVC) if " -> " in r]
    assert [r.split("--probability ")[1].split()[0] if "statistic" in r else None
            for r in spread] == ["0.3333333333", "0.5000000000", None]
    assert "10.180.0.4" not in rs.text()
    assert probability(3) == "0.3333333333" and probability(7) == "0.1428571429"


def test_session_affinity_client_ip_uses_recent_with_timeout() -> None:
    rs = render(service(sessionAffinity="ClientIP",
                        sessionAffinityConfig={"clientIP": {"timeoutSeconds": 600}}),
                eslice(ep("10.180.0.1"), ep("10.180.0.2")))
    svc_rules = rs.chain("nat", SVC)
    assert svc_rules[1] == (
        f'-A {SVC} -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m recent '
        f"--name {SEP1} --rcheck --seconds 600 --reap -j {SEP1}")
    assert "statistic" in svc_rules[3] and "recent" not in svc_rules[3]
    assert rs.chain("nat", SEP1)[1] == (
        f"-A {SEP1} -m comment --comment ns1/svc1:p80 -m recent --name {SEP1} --set "
        "-m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80")


def test_no_endpoints_rejects_in_filter_and_writes_no_nat_chains() -> None:
    rs = render(service("NodePort", nodePort=30080), eslice())
    assert rs.chain("filter", "KUBE-SERVICES") == [
        '-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m tcp -p tcp '
        "-d 172.30.0.41 --dport 80 -j REJECT"]
    assert rs.chain("filter", "KUBE-EXTERNAL-SERVICES") == [
        '-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" '
        "-m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30080 -j REJECT"]
    assert rs.active_nat_chains == set()
    assert rs.chain("nat", "KUBE-NODEPORTS") == []


def test_nodeport_goes_through_the_ext_chain_with_masquerade() -> None:
    rs = render(service("NodePort", nodePort=30080), eslice(ep("10.180.0.1")))
    assert rs.chain("nat", "KUBE-NODEPORTS") == [
        "-A KUBE-NODEPORTS -m comment --comment ns1/svc1:p80 -m tcp -p tcp --dport 30080 "
        f"-j {EXT}"]
    assert rs.chain("nat", EXT) == [
        f'-A {EXT} -m comment --comment "masquerade traffic for ns1/svc1:p80 external '
        'destinations" -j KUBE-MARK-MASQ', f"-A {EXT} -j {SVC}"]
    # The nodeports jump is the last rule of KUBE-SERVICES.
    assert rs.chain("nat", "KUBE-SERVICES")[-1].endswith("-j KUBE-NODEPORTS")


def test_nodeports_off_localhost_when_disabled() -> None:
    node = NodeInfo("node-a", localhost_nodeports=False)
    rs = render(service("NodePort", nodePort=30080), eslice(ep("10.180.0.1")), node=node)
    assert rs.chain("nat", "KUBE-SERVICES")[-1].endswith(
        "-m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS")
    assert rs.chain("filter", "KUBE-FIREWALL") == []
    only = NodeInfo("node-a", nodeport_addresses=["127.0.0.1", "10.150.0.1"])
    tails = render(service(), eslice(ep("10.180.0.1")), node=only).chain("nat", "KUBE-SERVICES")
    assert [t.split(" -d ")[1] for t in tails[1:]] == [
        "127.0.0.1 -j KUBE-NODEPORTS", "10.150.0.1 -j KUBE-NODEPORTS"]


def test_external_traffic_policy_local() -> None:
    svc = service("NodePort", nodePort=30080, externalTrafficPolicy="Local")
    rs = render(svc, eslice(ep("10.180.0.1", node="node-a"), ep("10.180.0.2", node="node-b")))
    assert rs.chain("nat", EXT) == [
        f'-A {EXT} -m comment --comment "pod traffic for ns1/svc1:p80 external destinations" '
        f"-s 10.0.0.0/8 -j {SVC}",
        f'-A {EXT} -m comment --comment "masquerade LOCAL traffic for ns1/svc1:p80 external '
        'destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ',
        f'-A {EXT} -m comment --comment "route LOCAL traffic for ns1/svc1:p80 external '
        f'destinations" -m addrtype --src-type LOCAL -j {SVC}',
        f"-A {EXT} -j {SVL}"]
    assert [r.split("-> ")[1].split('"')[0] for r in rs.chain("nat", SVL)] == ["10.180.0.1:80"]
    assert len([r for r in rs.chain("nat", SVC) if " -> " in r]) == 2
    # No endpoint on this node: external traffic that is not short-circuited is dropped.
    rs = render(svc, eslice(ep("10.180.0.2", node="node-b")))
    assert SVL not in rs.active_nat_chains
    assert rs.chain("filter", "KUBE-EXTERNAL-SERVICES") == [
        '-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns1/svc1:p80 has no local endpoints" '
        "-m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30080 -j DROP"]
    assert rs.chain("nat", EXT)[-1].endswith(f"-j {SVC}")  # only the LOCAL short-circuit


def test_internal_traffic_policy_local() -> None:
    svc = service(internalTrafficPolicy="Local")
    rs = render(svc, eslice(ep("10.180.0.1", node="node-a"), ep("10.180.0.2", node="node-b")))
    assert rs.chain("nat", "KUBE-SERVICES")[0].endswith(f"-j {SVL}")
    assert SVC not in rs.active_nat_chains
    assert "10.180.0.2" not in rs.text()
    rs = render(svc, eslice(ep("10.180.0.2", node="node-b")))
    assert rs.chain("filter", "KUBE-SERVICES") == [
        '-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 has no local endpoints" '
        "-m tcp -p tcp -d 172.30.0.41 --dport 80 -j DROP"]


def test_terminating_serving_endpoints_are_a_fallback() -> None:
    slices = eslice(ep("10.180.0.1", ready=False, serving=True, terminating=True),
                    ep("10.180.0.2", ready=False, serving=False, terminating=True),
                    ep("10.180.0.3", ready=False, serving=False))
    text = render(service(), slices).text()
    assert "--to-destination 10.180.0.1:80" in text
    assert "10.180.0.2" not in text and "10.180.0.3" not in text
    # With a ready endpoint the terminating one is not used.
    text = render(service(), eslice(ep("10.180.0.1", ready=False, serving=True,
                                       terminating=True), ep("10.180.0.9"))).text()
    assert "10.180.0.1" not in text and "10.180.0.9:80" in text


def test_load_balancer_ingress_and_source_ranges() -> None:
    svc = service("LoadBalancer", nodePort=30080, loadBalancerSourceRanges=["192.168.0.0/24"],
                  status={"loadBalancer": {"ingress": [{"ip": "10.150.0.1"}]}})
    rs = render(svc, eslice(ep("10.180.0.1")))
    fw = "KUBE-FW-XPGD46QRK7WJZT7O"
    assert '"ns1/svc1:p80 loadbalancer IP" -m tcp -p tcp -d 10.150.0.1 --dport 80 -j ' + fw \
        in rs.chain("nat", "KUBE-SERVICES")[1]
    assert rs.chain("nat", fw) == [
        f'-A {fw} -m comment --comment "ns1/svc1:p80 loadbalancer IP" -s 192.168.0.0/24 -j {EXT}',
        f'-A {fw} -m comment --comment "ns1/svc1:p80 loadbalancer IP" -s 10.150.0.1 -j {EXT}',
        f'-A {fw} -m comment --comment "other traffic to ns1/svc1:p80 will be dropped by '
        'KUBE-PROXY-FIREWALL"']
    assert rs.chain("filter", "KUBE-PROXY-FIREWALL")[0].endswith(
        "-d 10.150.0.1 --dport 80 -j DROP")
    plain = render(service("LoadBalancer", status={"loadBalancer": {"ingress": [
        {"ip": "10.150.0.1"}, {"ip": "10.150.0.9", "ipMode": "Proxy"}]}}),
        eslice(ep("10.180.0.1")))
    lb = [r for r in plain.chain("nat", "KUBE-SERVICES") if "loadbalancer IP" in r]
    assert len(lb) == 1 and lb[0].endswith(f"-d 10.150.0.1 --dport 80 -j {EXT}")


def test_stale_service_chains_are_deleted_and_others_left_alone() -> None:
    rs = render(service(), eslice(ep("10.180.0.1")),
                existing=(SVC, "KUBE-SEP-OLDOLDOLDOLDOLDO", "CNI-abc", "KUBE-SERVICES"))
    assert "-X KUBE-SEP-OLDOLDOLDOLDOLDO" in rs.nat_rules
    assert ":KUBE-SEP-OLDOLDOLDOLDOLDO - [0:0]" in rs.nat_chains
    assert not any(r.startswith("-X") and ("CNI" in r or "SERVICES" in r or SVC in r)
                   for r in rs.nat_rules)


def test_services_without_proxying() -> None:
    assert service_ports(service(clusterIP="None")) == []
    assert service_ports({"metadata": {"namespace": "a", "name": "b"},
                          "spec": {"type": "ExternalName", "externalName": "x.example"}}) == []


def test_duplicate_endpoints_across_slices_are_merged_and_sorted() -> None:
    merged = endpoints_by_port([eslice(ep("10.0.0.10"), ep("10.0.0.2"), name="b"),
                                eslice(ep("10.0.0.2"), name="a")])
    assert [str(e) for e in merged[("p80", "TCP")]] == ["10.0.0.10:80", "10.0.0.2:80"]
    assert isinstance(merged[("p80", "TCP")][0], Endpoint)


def test_jump_rules_are_inserted_at_the_top() -> None:
    text = RuleSet().text(JUMPS)
    assert '-I PREROUTING 1 -m comment --comment "kubernetes service portals" -j KUBE-SERVICES' \
        in text
    assert '-I POSTROUTING 1 -m comment --comment "kubernetes postrouting rules" ' \
        "-j KUBE-POSTROUTING" in text
