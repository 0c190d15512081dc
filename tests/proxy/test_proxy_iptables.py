"""The iptables proxy on a real node (needs root, runc and iptables): a pocketkube server with
its node agent runs busybox httpd pods; the proxy component runs in this test process against
it and programs the host's iptables. Traffic goes only to this cluster's ClusterIPs (DNAT'd
into its pods), its pod IPs and 127.0.0.1.

Covered: a ClusterIP Service spreads requests over its two ready pods (from the host and from a
third pod), the NodePort answers on 127.0.0.1, a pod failing readiness leaves the rotation
(time from the EndpointSlice change to the rules measured), deleting the Service removes its
rules, and cleanup() leaves `iptables-save` as it found it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from pocketkube.client.rest import ApiClient, ClientConfig
from pocketkube.components import ComponentContext
from pocketkube.config import ServerConfig
from pocketkube.proxy import component
from pocketkube.proxy.model import port_proto_hash
from pocketkube.proxy.rules import RuleSet
from tests.support.cluster import Cluster
from tests.support.node import node_cluster, ready_node

log = logging.getLogger("pocketkube.tests.proxy")
Obj = dict[str, Any]
NS = "default"
SERVER = ("mkdir -p /www && echo \"$HOSTNAME\" > /www/index.html && touch /tmp/ready && "
          "exec httpd -f -p 8080 -h /www")


def iptables_state() -> list[str]:
    """iptables-save without what other clusters on this host change meanwhile (CNI chains and
    rules), comments, counters, and tables holding nothing but empty built-in chains."""
    out = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    tables: dict[str, list[str]] = {}
    current: list[str] = []
    for line in out.splitlines():
        if line.startswith("#") or "CNI-" in line or "service-guard" in line or line == "COMMIT":
            continue
        if line.startswith("*"):
            current = tables.setdefault(line, [])
        elif line.startswith(":"):
            current.append(line.split(" [")[0])
        else:
            current.append(line)
    return sorted(f"{t} {line}" for t, lines in tables.items()
                  if any(not line.endswith("ACCEPT") for line in lines) for line in lines)


@pytest.fixture(scope="module")
def baseline() -> list[str]:
    """The host's tables before the proxy runs (after removing what an interrupted earlier run
    may have left), taken before the cluster starts."""
    missing = [t for t in ("runc", "conmon", "iptables-restore") if not shutil.which(t)]
    assert os.geteuid() == 0 and not missing, "these tests need root, runc, conmon, iptables"
    asyncio.run(component.cleanup())
    return iptables_state()


@pytest.fixture(scope="module")
def cluster(baseline: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with node_cluster(tmp_path_factory.mktemp("proxy"), "--disable", "proxy") as c:
        yield c




def web_pod(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "web"}},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                "name": "web", "image": "busybox", "command": ["sh", "-c", SERVER],
                "ports": [{"containerPort": 8080}],
                "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]},
                                   "periodSeconds": 1, "failureThreshold": 1}}]}}


@pytest.fixture(scope="module")
def web(cluster: Cluster) -> Obj:
    """Two ready httpd pods behind a NodePort Service, and a client pod."""
    client = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
              "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                  "name": "c", "image": "busybox", "command": ["sleep", "3600"]}]}}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
           "spec": {"type": "NodePort", "selector": {"app": "web"},
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}
    docs = [web_pod("web-1"), web_pod("web-2"), client, svc]
    cluster.kubectl("-n", NS, "create", "-f", "-",
                    input="\n".join(json.dumps(d) for d in docs))
    cluster.kubectl("-n", NS, "wait", "--for=condition=Ready", "pod/web-1", "pod/web-2",
                    "pod/client", "--timeout=60s")
    service = json.loads(cluster.kubectl("-n", NS, "get", "svc", "web", "-o", "json").stdout)
    pods = json.loads(cluster.kubectl("-n", NS, "get", "pods", "-o", "json").stdout)["items"]
    return {"service": service, "ips": {p["metadata"]["name"]: p["status"]["podIP"]
                                        for p in pods}}


class RunningProxy:
    def __init__(self, proxy: component.Proxy) -> None:
        self.proxy = proxy
        self.synced: asyncio.Queue[tuple[float, RuleSet]] = asyncio.Queue()
        proxy.proxier.listeners.append(  # type: ignore[union-attr]
            lambda rs: self.synced.put_nowait((time.monotonic(), rs)))

    async def until(self, check: Any, timeout: float = 30.0) -> tuple[float, RuleSet]:
        """The first sync (past or future) whose rules pass `check`."""
        rules = self.proxy.proxier.rules  # type: ignore[union-attr]
        if rules is not None and check(rules):
            return time.monotonic(), rules
        deadline = time.monotonic() + timeout
        while True:
            at, rs = await asyncio.wait_for(self.synced.get(), deadline - time.monotonic())
            if check(rs):
                return at, rs


@contextlib.asynccontextmanager
async def running_proxy(cluster: Cluster, **options: Any) -> AsyncIterator[RunningProxy]:
    node = ready_node(cluster)
    assert node is not None
    pod_range = ipaddress.ip_network(node["spec"]["podCIDR"]).supernet(new_prefix=16)
    client = ApiClient(ClientConfig.from_data_dir(cluster.data_dir, cluster.url, "proxy-test"))
    ctx = ComponentContext("proxy", ServerConfig(data_dir=cluster.data_dir,
                                                 cluster_cidr=str(pod_range)), client,
                           {"node_name": node["metadata"]["name"], "mode": "iptables",
                            **options})
    proxy = component.Proxy(ctx, component.ProxyOptions.from_dict(ctx.options))
    running = RunningProxy(proxy)
    task = asyncio.create_task(proxy.run())
    try:
        await running.until(lambda rs: True)
        ok, text = await proxy.health()
        assert ok, text
        yield running
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.close()


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - test cluster only
        return resp.read().decode().strip()


async def pages(url: str, n: int) -> list[str]:
    return [await asyncio.to_thread(get, url) for _ in range(n)]


async def test_clusterip_spreads_over_ready_pods(cluster: Cluster, web: Obj) -> None:
    ip = web["service"]["spec"]["clusterIP"]
    async with running_proxy(cluster) as p:
        _, rs = await p.until(lambda rs: web["ips"]["web-1"] in rs.text()
                                and web["ips"]["web-2"] in rs.text())
        assert "--probability 0.5000000000" in rs.text()
        assert set(await pages(f"http://{ip}/", 20)) == {"web-1", "web-2"}
        seen = set()
        for _ in range(12):  # from inside the cluster: the third pod fetches the ClusterIP
            out = await asyncio.to_thread(cluster.kubectl, "-n", NS, "exec", "client", "--",
                                          "wget", "-qO-", f"http://{ip}/")
            seen.add(out.stdout.strip())
        assert seen == {"web-1", "web-2"}
    saved = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True,
                           check=True).stdout
    assert "--probability 0.50000000000" in saved  # how iptables prints kube's 0.5000000000


async def test_nodeport_answers_on_localhost(cluster: Cluster, web: Obj) -> None:
    node_port = web["service"]["spec"]["ports"][0]["nodePort"]
    assert Path("/proc/sys/net/ipv4/conf/all/route_localnet").read_text().strip() == "1"
    async with running_proxy(cluster) as p:
        await p.until(lambda rs: f"--dport {node_port} " in rs.text())
        assert set(await pages(f"http://127.0.0.1:{node_port}/", 20)) == {"web-1", "web-2"}


async def test_pod_failing_readiness_leaves_the_rotation(cluster: Cluster, web: Obj) -> None:
    ip = web["service"]["spec"]["clusterIP"]
    gone = web["ips"]["web-2"]
    async with running_proxy(cluster) as p:
        await p.until(lambda rs: gone in rs.text())
        changed: list[float] = []

        def watch_slice(old: Obj, new: Obj) -> None:
            for e in new.get("endpoints") or []:
                if e["addresses"][0] == gone and e["conditions"].get("ready") is False \
                        and not changed:
                    changed.append(time.monotonic())

        p.proxy.tracker.slices.on(update=watch_slice)
        await asyncio.to_thread(cluster.kubectl, "-n", NS, "exec", "web-2", "--",
                                "rm", "/tmp/ready")
        at, _ = await p.until(lambda rs: gone not in rs.text(), timeout=60)
        assert changed, "the EndpointSlice never showed web-2 not ready"
        latency = at - changed[0]
        log.info("endpoint change -> rules in place: %.3fs", latency)
        assert latency < 2.0  # what users are promised: out of the rotation within 2 s
        assert set(await pages(f"http://{ip}/", 10)) == {"web-1"}
        await asyncio.to_thread(cluster.kubectl, "-n", NS, "exec", "web-2", "--",
                                "touch", "/tmp/ready")
        await p.until(lambda rs: gone in rs.text(), timeout=60)


async def test_deleted_chains_are_noticed_and_rewritten(cluster: Cluster, web: Obj) -> None:
    node_port = web["service"]["spec"]["ports"][0]["nodePort"]
    async with running_proxy(cluster, canary_interval=0.2) as p:
        await p.until(lambda rs: f"--dport {node_port} " in rs.text())
        while not p.synced.empty():
            p.synced.get_nowait()
        before = iptables_state()
        await component.cleanup()  # as a firewall reload would: our chains are gone
        assert "KUBE-SERVICES" not in subprocess.run(
            ["iptables-save", "-t", "nat"], capture_output=True, text=True, check=True).stdout
        await asyncio.wait_for(p.synced.get(), 30)  # the canary's absence forced a sync
        saved = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True,
                               check=True).stdout
        assert f"--dport {node_port} " in saved and "KUBE-PROXY-CANARY" in saved
        assert "-j KUBE-SERVICES" in saved  # the jumps from the built-in chains, too
        assert iptables_state() == before  # exactly as they were
        assert set(await pages(f"http://127.0.0.1:{node_port}/", 4)) <= {"web-1", "web-2"}


async def test_deleting_the_service_removes_its_rules(cluster: Cluster, web: Obj) -> None:
    chain = "KUBE-SVC-" + port_proto_hash(f"{NS}/web:http", "tcp")
    async with running_proxy(cluster) as p:
        await p.until(lambda rs: chain in rs.active_nat_chains)
        assert chain in subprocess.run(["iptables-save", "-t", "nat"], capture_output=True,
                                       text=True, check=True).stdout
        await asyncio.to_thread(cluster.kubectl, "-n", NS, "delete", "svc", "web")
        _, rs = await p.until(lambda rs: chain not in rs.active_nat_chains)
        assert f"-X {chain}" in rs.nat_rules  # deleted in the same transaction
        saved = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True,
                               check=True).stdout
        assert chain not in saved and web["ips"]["web-1"] not in saved


async def test_cleanup_restores_iptables(cluster: Cluster, baseline: list[str]) -> None:
    async with running_proxy(cluster):
        pass
    assert any("KUBE-SERVICES" in line for line in iptables_state())
    await component.cleanup()
    assert iptables_state() == baseline
    await component.cleanup()  # nothing left to remove: still fine
    assert iptables_state() == baseline
