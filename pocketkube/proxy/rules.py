"""The whole `iptables-restore` input for the filter and nat tables, as a pure function of the
Services, their endpoints and this node — kube-proxy's syncProxyRules (pkg/proxy/iptables/
proxier.go) rule for rule: the same chains (KUBE-SERVICES, KUBE-SVC-/KUBE-SVL-/KUBE-EXT-/KUBE-FW-/
KUBE-SEP-<hash>, KUBE-NODEPORTS, KUBE-POSTROUTING, KUBE-MARK-MASQ, KUBE-FORWARD, ...), the same
order and the same comments, so a node's `iptables-save` reads as it would under Kubernetes.

Every sync writes every chain (kube's "full sync"); the input is applied with `--noflush`, so
declaring a chain flushes only that chain and nothing else in the table is touched. The jump
rules from the built-in chains (PREROUTING, OUTPUT, ...) are not part of it: they must be
inserted once, not rewritten (see chains.JUMPS and iptables.py). Chain names come from
chains.py, one set per cluster.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from pocketkube.proxy.chains import Chains, Jump, is_service_chain
from pocketkube.proxy.model import Endpoint, ServicePort, categorize

MASQ_MARK = "0x4000"  # kube's default masqueradeBit 14


def probability(n: int) -> str:
    """1/n as kube prints it ("%0.10f"); iptables-save shows it back as e.g. 0.33333333349."""
    return f"{1.0 / n:0.10f}"


@dataclass
class NodeInfo:
    name: str
    ip: str = ""  # the node's InternalIP (lets it through loadBalancerSourceRanges)
    zone: str = ""
    cluster_cidr: str = ""  # pod range: kube's ClusterCIDR local-traffic detector
    localhost_nodeports: bool = True  # needs net.ipv4.conf.all.route_localnet=1
    nodeport_addresses: list[str] = field(default_factory=list)  # empty: every local address
    masquerade_all: bool = False
    conntrack_tcp_liberal: bool = False
    random_fully: bool = True
    tag: str = ""  # the cluster's chain tag (tag_for(service range))
    canary: bool = False  # also write the KUBE-PROXY-CANARY chains (iptables.canary_present)


@dataclass
class RuleSet:
    filter_chains: list[str] = field(default_factory=list)
    filter_rules: list[str] = field(default_factory=list)
    nat_chains: list[str] = field(default_factory=list)
    nat_rules: list[str] = field(default_factory=list)
    active_nat_chains: set[str] = field(default_factory=set)

    def text(self, jumps: Iterable[Jump] = ()) -> str:
        """The iptables-restore input; `jumps` are inserted at the top of their chains."""
        extra: dict[str, list[str]] = {"filter": [], "nat": []}
        for j in jumps:
            extra[j.table].append(" ".join(["-I", j.chain, "1", *j.args()]))
        return "".join([
            "*filter\n", *(c + "\n" for c in self.filter_chains),
            *(r + "\n" for r in self.filter_rules), *(r + "\n" for r in extra["filter"]),
            "COMMIT\n", "*nat\n", *(c + "\n" for c in self.nat_chains),
            *(r + "\n" for r in self.nat_rules), *(r + "\n" for r in extra["nat"]), "COMMIT\n"])

    def chain(self, table: str, name: str) -> list[str]:
        """The rules of one chain (for tests and debugging)."""
        rules = self.filter_rules if table == "filter" else self.nat_rules
        return [r for r in rules if r.startswith(f"-A {name} ")]


def _line(*parts: str | Iterable[str]) -> str:
    out: list[str] = []
    for p in parts:
        out.extend([p] if isinstance(p, str) else p)
    return " ".join(out)


def build(services: list[tuple[ServicePort, list[Endpoint]]], node: NodeInfo,
          existing_nat_chains: Iterable[str] = ()) -> RuleSet:
    """All rules for `services` (each with every endpoint its slices list). Chains in
    `existing_nat_chains` that look like service chains and are no longer used are deleted."""
    c = Chains(node.tag)
    rs = RuleSet()
    rs.filter_chains = [f":{name} - [0:0]" for name in c.filter]
    rs.nat_chains = [f":{name} - [0:0]" for name in c.nat]
    if node.canary:
        # Empty chains whose disappearance tells the proxy someone flushed the tables.
        rs.filter_chains.append(f":{c.canary} - [0:0]")
        rs.nat_chains.append(f":{c.canary} - [0:0]")
    nat, flt = rs.nat_rules, rs.filter_rules
    mark = f"{MASQ_MARK}/{MASQ_MARK}"
    nat.append(_line("-A", c.postrouting, "-m mark ! --mark", mark, "-j RETURN"))
    nat.append(_line("-A", c.postrouting, "-j MARK --xor-mark", MASQ_MARK))
    masq = _line("-A", c.postrouting, "-m comment --comment",
                 '"kubernetes service traffic requiring SNAT"', "-j MASQUERADE")
    nat.append(masq + (" --random-fully" if node.random_fully else ""))
    nat.append(_line("-A", c.mark_masq, "-j MARK --or-mark", MASQ_MARK))
    rs.filter_chains.append(f":{c.kubelet_firewall} - [0:0]")
    if node.localhost_nodeports:
        # route_localnet opens 127.0.0.0/8 to other hosts; this is kube's guard against it.
        flt.append(_line("-A", c.kubelet_firewall, "-m comment --comment",
                         '"block incoming localnet connections"', "-d 127.0.0.0/8",
                         "! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT",
                         "-j DROP"))
    for sp, endpoints in sorted(services, key=lambda s: (s[0].key, s[0].proto)):
        _service(rs, c, sp, endpoints, node)
    for chain in sorted(set(existing_nat_chains) - rs.active_nat_chains):
        if is_service_chain(chain):
            rs.nat_chains.append(f":{chain} - [0:0]")
            nat.append(f"-X {chain}")
    tail = '"kubernetes service nodeports; NOTE: this must be the last rule in this chain"'
    if not node.nodeport_addresses:
        dst = "-m addrtype --dst-type LOCAL"
        if not node.localhost_nodeports:
            dst += " ! -d 127.0.0.0/8"
        nat.append(_line("-A", c.services, "-m comment --comment", tail, dst,
                         "-j", c.nodeports))
    else:
        for addr in node.nodeport_addresses:
            loopback = ipaddress.ip_network(addr, strict=False).subnet_of(
                ipaddress.ip_network("127.0.0.0/8"))
            if loopback and not node.localhost_nodeports:
                continue
            nat.append(_line("-A", c.services, "-m comment --comment", tail, "-d", addr,
                             "-j", c.nodeports))
    if not node.conntrack_tcp_liberal:
        flt.append(_line("-A", c.forward, "-m conntrack --ctstate INVALID -j DROP"))
    flt.append(_line("-A", c.forward, "-m comment --comment", '"kubernetes forwarding rules"',
                     "-m mark --mark", mark, "-j ACCEPT"))
    flt.append(_line("-A", c.forward, "-m comment --comment",
                     '"kubernetes forwarding conntrack rule"',
                     "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"))
    return rs


def _service(rs: RuleSet, c: Chains, sp: ServicePort, endpoints: list[Endpoint],
             node: NodeInfo) -> None:
    nat, flt = rs.nat_rules, rs.filter_rules
    cat = categorize(endpoints, sp, node.name, node.zone)
    name, proto = sp.key, sp.proto
    match = ["-m", proto, "-p", proto]
    cluster_chain, local_chain = c.service(sp, "KUBE-SVC-"), c.service(sp, "KUBE-SVL-")
    ext_chain, fw_chain = c.service(sp, "KUBE-EXT-"), c.service(sp, "KUBE-FW-")
    uses_cluster = bool(cat.cluster) and sp.uses_cluster_endpoints
    uses_local = bool(cat.local) and sp.uses_local_endpoints

    internal_chain, has_internal = cluster_chain, cat.has_any
    if sp.internal_policy_local:
        internal_chain, has_internal = local_chain, has_internal and bool(cat.local)
    external_policy_chain, has_external = cluster_chain, cat.has_any
    if sp.external_policy_local:
        external_policy_chain, has_external = local_chain, has_external and bool(cat.local)
    uses_ext = cat.has_any and sp.externally_accessible
    uses_fw = cat.has_any and bool(sp.load_balancer_vips) and bool(
        sp.load_balancer_source_ranges)
    lb_chain = fw_chain if uses_fw else ext_chain

    int_target = ext_target = ""
    int_comment = ext_comment = ""
    if not cat.has_any:
        int_target = ext_target = "REJECT"
        int_comment = ext_comment = f'"{name} has no endpoints"'
    else:
        if not has_internal:
            int_target, int_comment = "DROP", f'"{name} has no local endpoints"'
        if not has_external:
            ext_target, ext_comment = "DROP", f'"{name} has no local endpoints"'

    cluster_ip = ["-d", sp.cluster_ip, "--dport", str(sp.port)]
    if has_internal:
        nat.append(_line("-A", c.services, "-m comment --comment", f'"{name} cluster IP"', match,
                         cluster_ip, "-j", internal_chain))
    else:
        flt.append(_line("-A", c.services, "-m comment --comment", int_comment, match,
                         cluster_ip, "-j", int_target))
    for ip in sp.external_ips:
        dst = ["-d", ip, "--dport", str(sp.port)]
        if cat.has_any:
            nat.append(_line("-A", c.services, "-m comment --comment", f'"{name} external IP"',
                             match, dst, "-j", ext_chain))
        if not has_external:
            flt.append(_line("-A", c.external_services, "-m comment --comment", ext_comment,
                             match, dst, "-j", ext_target))
    for ip in sp.load_balancer_vips:
        dst = ["-d", ip, "--dport", str(sp.port)]
        if cat.has_any:
            nat.append(_line("-A", c.services, "-m comment --comment",
                             f'"{name} loadbalancer IP"', match, dst, "-j", lb_chain))
        if uses_fw:
            flt.append(_line("-A", c.proxy_firewall, "-m comment --comment",
                             f'"{name} traffic not accepted by {fw_chain}"', match, dst,
                             "-j DROP"))
    if not has_external:
        for ip in sp.load_balancer_vips:
            flt.append(_line("-A", c.external_services, "-m comment --comment", ext_comment,
                             match, "-d", ip, "--dport", str(sp.port), "-j", ext_target))
    if sp.node_port:
        if cat.has_any:
            nat.append(_line("-A", c.nodeports, "-m comment --comment", name, match,
                             "--dport", str(sp.node_port), "-j", ext_chain))
        if not has_external:
            flt.append(_line("-A", c.external_services, "-m comment --comment", ext_comment,
                             "-m addrtype --dst-type LOCAL", match,
                             "--dport", str(sp.node_port), "-j", ext_target))
    if sp.health_check_node_port:
        flt.append(_line("-A", c.nodeports, "-m comment --comment",
                         f'"{name} health check node port"', "-m tcp -p tcp",
                         "--dport", str(sp.health_check_node_port), "-j ACCEPT"))

    if has_internal:
        args = _line("-m comment --comment", f'"{name} cluster IP"', match, cluster_ip)
        if node.masquerade_all:
            nat.append(_line("-A", internal_chain, args, "-j", c.mark_masq))
        elif node.cluster_cidr:
            # Off-cluster sources may route here and bounce off-node: masquerade them.
            nat.append(_line("-A", internal_chain, args, "! -s", node.cluster_cidr,
                             "-j", c.mark_masq))
    if uses_ext:
        _add_chain(rs, ext_chain)
        if not sp.external_policy_local:
            nat.append(_line("-A", ext_chain, "-m comment --comment",
                             f'"masquerade traffic for {name} external destinations"',
                             "-j", c.mark_masq))
        else:
            if node.cluster_cidr:
                nat.append(_line("-A", ext_chain, "-m comment --comment",
                                 f'"pod traffic for {name} external destinations"',
                                 "-s", node.cluster_cidr, "-j", cluster_chain))
            nat.append(_line("-A", ext_chain, "-m comment --comment",
                             f'"masquerade LOCAL traffic for {name} external destinations"',
                             "-m addrtype --src-type LOCAL -j", c.mark_masq))
            nat.append(_line("-A", ext_chain, "-m comment --comment",
                             f'"route LOCAL traffic for {name} external destinations"',
                             "-m addrtype --src-type LOCAL -j", cluster_chain))
        if has_external:
            nat.append(_line("-A", ext_chain, "-j", external_policy_chain))
    if uses_fw:
        _add_chain(rs, fw_chain)
        head = _line("-A", fw_chain, "-m comment --comment", f'"{name} loadbalancer IP"')
        allow_node = False
        for cidr in sp.load_balancer_source_ranges:
            nat.append(_line(head, "-s", cidr, "-j", ext_chain))
            if node.ip and ipaddress.ip_address(node.ip) in ipaddress.ip_network(cidr):
                allow_node = True
        if allow_node:
            for ip in sp.load_balancer_vips:
                nat.append(_line(head, "-s", ip, "-j", ext_chain))
        nat.append(_line("-A", fw_chain, "-m comment --comment",
                         f'"other traffic to {name} will be dropped by KUBE-PROXY-FIREWALL"'))
    if uses_cluster:
        _add_chain(rs, cluster_chain)
        _to_endpoints(rs, c, sp, cluster_chain, cat.cluster)
    if uses_local:
        _add_chain(rs, local_chain)
        _to_endpoints(rs, c, sp, local_chain, cat.local)
    for ep in cat.reachable:
        chain = c.endpoint(sp, ep)
        _add_chain(rs, chain)
        head = _line("-A", chain, "-m comment --comment", name)
        nat.append(_line(head, "-s", ep.ip, "-j", c.mark_masq))
        recent = ["-m", "recent", "--name", chain, "--set"] if sp.session_affinity_seconds else []
        nat.append(_line(head, recent, match, "-j DNAT --to-destination", str(ep)))


def _add_chain(rs: RuleSet, chain: str) -> None:
    rs.nat_chains.append(f":{chain} - [0:0]")
    rs.active_nat_chains.add(chain)


def _to_endpoints(rs: RuleSet, c: Chains, sp: ServicePort, chain: str,
                  endpoints: list[Endpoint]) -> None:
    if sp.session_affinity_seconds:
        for ep in endpoints:
            rs.nat_rules.append(_line(
                "-A", chain, "-m comment --comment", f'"{sp.key} -> {ep}"',
                "-m recent --name", c.endpoint(sp, ep), "--rcheck --seconds",
                str(sp.session_affinity_seconds), "--reap -j", c.endpoint(sp, ep)))
    n = len(endpoints)
    for i, ep in enumerate(endpoints):
        spread = ["-m", "statistic", "--mode", "random", "--probability", probability(n - i)] \
            if i < n - 1 else []
        rs.nat_rules.append(_line("-A", chain, "-m comment --comment", f'"{sp.key} -> {ep}"',
                                  spread, "-j", c.endpoint(sp, ep)))
