"""Cluster DNS against a real cluster with a real node: the DNS component runs in this test
process (on a free port, at the node's InternalIP, forwarding to a fake upstream on 127.0.0.1),
objects are made with the real kubectl, and the names are asked over UDP and TCP at
<InternalIP>:<port> as a pod's resolver would ask them through the kube-dns Service.

Covered: the kube-dns Service, Endpoints and EndpointSlice it publishes and `kubectl
cluster-info` listing CoreDNS; a ClusterIP service and its SRV record; a StatefulSet's
headless service answering both pod IPs and each pod's stable name; an ExternalName CNAME
completed upstream; NXDOMAIN with the SOA; pod names; forwarding; the kube-dns Service put back
after it is deleted.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from pocketkube.client.rest import ApiClient, ClientConfig
from pocketkube.components import ComponentContext
from pocketkube.config import ServerConfig
from pocketkube.dns.component import NAME, run
from tests.e2e.conftest import Kubectl
from tests.support.cluster import Cluster
from tests.support.waiting import eventually
from tests.unit.dns.fake_upstream import FakeUpstream

Obj = dict[str, Any]




pytestmark = pytest.mark.usefixtures("require_root")


class DnsInProcess:
    """The DNS component and a fake upstream on an event loop of their own, in a thread."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.upstream = FakeUpstream()
        self.ctx: ComponentContext | None = None
        self.task: Future[None] | None = None

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def start(self) -> None:
        self.thread.start()
        up_port = self.call(self.upstream.start())

        async def make() -> ComponentContext:
            client = ApiClient(ClientConfig.from_data_dir(
                self.cluster.data_dir, self.cluster.url, "dns-test"))
            return ComponentContext(NAME, ServerConfig(data_dir=self.cluster.data_dir), client,
                                    {"port": 0, "upstreams": [f"127.0.0.1:{up_port}"]})

        self.ctx = self.call(make())
        self.task = asyncio.run_coroutine_threadsafe(run(self.ctx), self.loop)

    def healthy(self) -> tuple[bool, str]:
        if self.task is not None and self.task.done():
            self.task.result()  # raises what stopped the component
        if self.ctx is None or self.ctx.health is None:
            return False, "not started"
        return self.call(self.ctx.health())

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.ctx is not None:
            self.call(self.ctx.client.close())
        self.call(self.upstream.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def cluster(require_root: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("dns"), extra_args=["--node-agent", "--disable", "cluster-dns"])
    c.start()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def dns(cluster: Cluster) -> Iterator[DnsInProcess]:
    # The node first reports 127.0.0.1, then the pod bridge's gateway once its network is up.
    eventually(lambda: ready_node(cluster), timeout=90)
    d = DnsInProcess(cluster)
    d.start()
    try:
        eventually(lambda: d.healthy()[0] and server_address(cluster)[0] == node_ip(cluster),
                   timeout=90)
        yield d
    finally:
        d.stop()


@pytest.fixture
def k(cluster: Cluster, dns: DnsInProcess) -> Iterator[Kubectl]:
    name = f"dns-{os.urandom(3).hex()}"
    cluster.kubectl("create", "namespace", name)
    try:
        yield Kubectl(cluster, name)
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def ready_node(cluster: Cluster) -> bool:
    """Whether the node is Ready with a pod range (its InternalIP is then the gateway)."""
    proc = cluster.kubectl("get", "nodes", "-o", "json", check=False)
    if proc.returncode != 0:
        return False
    return any(n["spec"].get("podCIDR") and any(
        c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
        for n in json.loads(proc.stdout)["items"])


def node_ip(cluster: Cluster) -> str:
    node = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"][0]
    return next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")


def server_address(cluster: Cluster) -> tuple[str, int]:
    """Where the published kube-dns endpoints say DNS answers."""
    node = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"][0]
    proc = cluster.kubectl("get", "endpointslice", f"kube-dns-{node['metadata']['name']}",
                           "-n", "kube-system", "-o", "json", check=False)
    if proc.returncode != 0:
        return "", 0
    s = json.loads(proc.stdout)
    return s["endpoints"][0]["addresses"][0], s["ports"][0]["port"]


def ask(cluster: Cluster, name: str, qtype: str = "A", tcp: bool = False) -> DNSRecord:
    host, port = server_address(cluster)
    q = DNSRecord.question(name, qtype)
    return DNSRecord.parse(q.send(host, port, tcp=tcp, timeout=5))


def addresses(reply: DNSRecord) -> list[str]:
    return sorted(str(r.rdata) for r in reply.rr if r.rtype in (QTYPE.A, QTYPE.AAAA))


def resolves(cluster: Cluster, name: str, count: int = 1) -> list[str]:
    """The addresses of `name` once it has `count` of them (the informers catch up)."""
    return eventually(lambda: (lambda a: a if len(a) == count else None)(
        addresses(ask(cluster, name))), timeout=60)


def test_publishes_kube_dns_at_the_node_address(cluster: Cluster, dns: DnsInProcess) -> None:
    svc = json.loads(cluster.kubectl("get", "service", "kube-dns", "-n", "kube-system",
                                     "-o", "json").stdout)
    host, port = server_address(cluster)
    assert host == node_ip(cluster) and port > 0
    assert svc["spec"]["clusterIP"] == "10.96.0.10"
    assert "selector" not in svc["spec"]
    assert [(p["name"], p["port"], p["protocol"], p["targetPort"])
            for p in svc["spec"]["ports"]] == [("dns", 53, "UDP", port),
                                                ("dns-tcp", 53, "TCP", port)]
    assert svc["metadata"]["labels"]["kubernetes.io/cluster-service"] == "true"
    ep = json.loads(cluster.kubectl("get", "endpoints", "kube-dns", "-n", "kube-system",
                                    "-o", "json").stdout)
    assert [a["ip"] for a in ep["subsets"][0]["addresses"]] == [host]
    # kubectl colours the line; without its escape codes it reads as for CoreDNS in kubeadm.
    info = re.sub(r"\x1b\[[0-9;]*m", "", cluster.kubectl("cluster-info").stdout)
    assert (f"CoreDNS is running at {cluster.url}/api/v1/namespaces/kube-system/services/"
            "kube-dns:dns/proxy") in info.splitlines(), info
    # The server answers for itself.
    assert addresses(ask(cluster, "kube-dns.kube-system.svc.cluster.local")) == ["10.96.0.10"]


def test_cluster_ip_service_and_srv(cluster: Cluster, k: Kubectl) -> None:
    k("create", "service", "clusterip", "web", "--tcp=80:8080")
    ip = k("get", "service", "web", "-o", "jsonpath={.spec.clusterIP}").stdout
    name = f"web.{k.ns}.svc.cluster.local"
    assert resolves(cluster, name) == [ip]
    for tcp in (False, True):
        srv = ask(cluster, f"_80-8080._tcp.{name}", "SRV", tcp=tcp)
        assert [(r.rdata.port, str(r.rdata.target)) for r in srv.rr] == [(80, name + ".")]
        assert addresses(DNSRecord(rr=srv.ar)) == [ip]


def test_statefulset_behind_a_headless_service(cluster: Cluster, k: Kubectl) -> None:
    k.apply([
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "nginx"},
         "spec": {"clusterIP": "None", "selector": {"app": "nginx"},
                  "ports": [{"name": "web", "port": 80}]}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
         "spec": {"serviceName": "nginx", "replicas": 2,
                  "selector": {"matchLabels": {"app": "nginx"}},
                  "template": {"metadata": {"labels": {"app": "nginx"}},
                               "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                                   {"name": "box", "image": "busybox",
                                    "command": ["sh", "-c", "exec sleep 3600"],
                                    "ports": [{"name": "web", "containerPort": 80}]}]}}}},
    ])
    k("rollout", "status", "statefulset/web", "--timeout=90s")
    pods = json.loads(k("get", "pods", "-l", "app=nginx", "-o", "json").stdout)["items"]
    ips = {p["metadata"]["name"]: p["status"]["podIP"] for p in pods}
    assert len(ips) == 2
    svc = f"nginx.{k.ns}.svc.cluster.local"
    assert resolves(cluster, svc, count=2) == sorted(ips.values())
    assert resolves(cluster, f"web-0.{svc}") == [ips["web-0"]]
    assert resolves(cluster, f"web-1.{svc}") == [ips["web-1"]]
    srv = ask(cluster, f"_web._tcp.{svc}", "SRV", tcp=True)
    assert sorted(str(r.rdata.target) for r in srv.rr) == [f"web-0.{svc}.", f"web-1.{svc}."]
    pod_name = ips["web-0"].replace(".", "-") + f".{k.ns}.pod.cluster.local"
    assert addresses(ask(cluster, pod_name)) == [ips["web-0"]]


def test_external_name_nxdomain_and_forwarding(cluster: Cluster, k: Kubectl,
                                               dns: DnsInProcess) -> None:
    k("create", "service", "externalname", "ext", "--external-name=www.example.org")
    name = f"ext.{k.ns}.svc.cluster.local"
    reply = eventually(lambda: (lambda r: r if r.rr else None)(ask(cluster, name)), timeout=60)
    assert [(QTYPE[r.rtype], str(r.rdata)) for r in reply.rr] == [
        ("CNAME", "www.example.org."), ("A", "192.0.2.8")]
    missing = ask(cluster, f"missing.{k.ns}.svc.cluster.local")
    assert missing.header.rcode == RCODE.NXDOMAIN and missing.header.aa == 1
    assert [QTYPE[r.rtype] for r in missing.auth] == ["SOA"]
    before = len(dns.upstream.questions)
    assert addresses(ask(cluster, "example.org")) == ["192.0.2.7"]
    assert dns.upstream.questions[before:] == [("example.org.", QTYPE.A, "udp")]


def test_deleted_kube_dns_service_comes_back(cluster: Cluster, dns: DnsInProcess) -> None:
    uid = cluster.kubectl("get", "service", "kube-dns", "-n", "kube-system",
                          "-o", "jsonpath={.metadata.uid}").stdout
    cluster.kubectl("delete", "service", "kube-dns", "-n", "kube-system")
    new_uid = eventually(lambda: (lambda p: p.returncode == 0 and p.stdout != uid and p.stdout)(
        cluster.kubectl("get", "service", "kube-dns", "-n", "kube-system",
                        "-o", "jsonpath={.metadata.uid}", check=False)), timeout=30)
    assert new_uid
    assert addresses(ask(cluster, "kube-dns.kube-system.svc.cluster.local")) == ["10.96.0.10"]
