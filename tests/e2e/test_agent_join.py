"""A node joining a cluster with `pocketkube agent --server URL --token TOKEN`, as from another
machine: the cluster's API server runs no node of its own, so the joined node is the only one,
and it runs its service proxy and cluster DNS beside its agent on the ranges the cluster
publishes (kube-system/pocketkube-config). Its pods find a Service by name and reach it, the
kube-dns Endpoints name the joined node's DNS server, and `pocketkube delete` of the node's
data dir leaves none of its rules behind. Traffic: 127.0.0.1 and this cluster's pod addresses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pocketkube.proxy.chains import Chains, tag_for
from tests.e2e.conftest import Kubectl
from tests.e2e.test_services_dns import client_pod, fetch_in_pod, service, wait_endpoints, web_pod
from tests.support.cluster import Cluster, _pocketkube_command, unique_cluster_cidr
from tests.support.node import ready_node
from tests.support.waiting import eventually

pytestmark = pytest.mark.usefixtures("require_root")
SERVICE_RANGE = "10.127.0.0/16"  # not the default: the node must learn it from the cluster


def nat_chains() -> set[str]:
    out = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True,
                         check=True).stdout
    return {line[1:].split()[0] for line in out.splitlines() if line.startswith(":")}


@pytest.fixture(scope="module")
def joined(require_root: None, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[Cluster, Path, subprocess.Popen[bytes]]]:
    base = tmp_path_factory.mktemp("join")
    cluster = Cluster(base / "cluster", extra_args=[
        "--cluster-cidr", unique_cluster_cidr(), "--service-cidr", SERVICE_RANGE])
    cluster.start()
    node_dir = base / "node"
    agent: subprocess.Popen[bytes] | None = None
    try:
        cluster.kubectl("create", "serviceaccount", "joiner", "-n", "kube-system")
        token = cluster.kubectl("create", "token", "joiner", "-n", "kube-system").stdout.strip()
        log = open(base / "agent.log", "wb")  # noqa: SIM115 - closed below
        agent = subprocess.Popen(
            [*_pocketkube_command(), "agent", "--server", cluster.url, "--token", token,
             "--ca-file", str(cluster.pki / "ca.crt"), "--data-dir", str(node_dir),
             "--node-name", "joined", "--port", "0", "--dns-upstream", "none"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HOME": str(base)})
        eventually(lambda: ready_node(cluster), timeout=60)
        yield cluster, node_dir, agent
    finally:
        if agent is not None:
            leave(agent, node_dir)
            log.close()
        cluster.close()


def leave(agent: subprocess.Popen[bytes], node_dir: Path) -> None:
    """Stop the node's agent and delete its data dir (containers, network, rules)."""
    if agent.poll() is None:
        agent.send_signal(signal.SIGTERM)
        agent.wait(30)
    subprocess.run([*_pocketkube_command(), "delete", "--data-dir", str(node_dir)],
                   capture_output=True, timeout=120, check=False)


def test_joined_node_serves_services_by_name(
        joined: tuple[Cluster, Path, subprocess.Popen[bytes]]) -> None:
    cluster, node_dir, agent = joined
    k = Kubectl(cluster, "default")
    k.create([web_pod("web", {"app": "echo"}), service("echo", {"app": "echo"}), client_pod()])
    k("wait", "--for=condition=Ready", "pod/web", "pod/client", "--timeout=60s")
    wait_endpoints(k, "echo", 1)
    resolv = k("exec", "client", "--", "cat", "/etc/resolv.conf").stdout
    assert "nameserver 10.127.0.10" in resolv  # the tenth address of the cluster's range
    assert eventually(lambda: (lambda got: got if got == ["web"] * 3 else None)(
        fetch_in_pod(k, "client", "http://echo/", 3)), timeout=30)
    eps = json.loads(cluster.kubectl("get", "endpoints", "kube-dns", "-n", "kube-system",
                                     "-o", "json").stdout)
    (subset,) = eps["subsets"]
    assert [a["nodeName"] for a in subset["addresses"]] == ["joined"]
    assert cluster.kubectl("get", "endpointslice", "kube-dns-joined", "-n", "kube-system",
                           "-o", "jsonpath={.metadata.ownerReferences[0].name}").stdout == "joined"
    assert Chains(tag_for(SERVICE_RANGE)).services in nat_chains()
    assert (node_dir / "agent" / "service-cidr").read_text().strip() == SERVICE_RANGE
    gateway = eps["subsets"][0]["addresses"][0]["ip"]  # the node's bridge address
    leave(agent, node_dir)
    assert not {c for c in nat_chains() if c.endswith("-" + tag_for(SERVICE_RANGE))}
    addresses = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True,
                               check=True).stdout
    assert f" {gateway}/" not in addresses
