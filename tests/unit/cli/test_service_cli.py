"""`pocketkube service`: the URLs of NodePort and LoadBalancer services of a real cluster (two
simulated nodes, so ServiceLB gives LoadBalancers addresses), minikube's table and errors,
kubectl's NotFound, and the command-line wiring."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pocketkube.cli import service
from tests.support.cluster import Cluster
from tests.support.waiting import eventually
from tests.unit.cli.conftest import Result


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("service-cli"), extra_args=["--simulated-nodes", "2"])
    c.start()
    try:
        yield c
    finally:
        c.close()


def run(cluster: Cluster, capsys: pytest.CaptureFixture[str], name: str, namespace: str =
        "default", url: bool = True, data_dir: Path | None = None) -> tuple[int, str, str]:
    args = argparse.Namespace(name=name, namespace=namespace, url=url,
                              data_dir=data_dir or cluster.data_dir)
    code = service.run(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def node_ports(cluster: Cluster, name: str, namespace: str = "default") -> list[int]:
    svc = json.loads(cluster.kubectl("get", "svc", name, "-n", namespace, "-o", "json").stdout)
    return [p["nodePort"] for p in svc["spec"]["ports"]]


def test_node_port_service_urls(cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    cluster.kubectl("create", "service", "nodeport", "np", "--tcp=80:8080", "--tcp=443:8443")
    p80, p443 = node_ports(cluster, "np")
    code, out, err = run(cluster, capsys, "np")
    assert (code, err) == (0, "")
    assert out.splitlines() == [f"http://127.0.0.1:{p80}", f"http://127.0.0.1:{p443}"]


def test_table_without_url(cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    cluster.kubectl("create", "namespace", "shop")
    cluster.kubectl("create", "service", "nodeport", "cart", "-n", "shop", "--tcp=8080:80")
    (port,) = node_ports(cluster, "cart", "shop")
    code, out, _ = run(cluster, capsys, "cart", "shop", url=False)
    assert code == 0
    lines = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line] for line in lines if not set("".join(line)) <= {"-"}]
    assert cells == [["NAMESPACE", "NAME", "TARGET PORT", "URL"],
                     ["shop", "cart", "8080-80/8080", f"http://127.0.0.1:{port}"]]


def test_load_balancer_adds_the_ingress_addresses(cluster: Cluster,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    cluster.kubectl("create", "service", "loadbalancer", "lb", "--tcp=80:8080")
    (port,) = node_ports(cluster, "lb")
    eventually(lambda: json.loads(cluster.kubectl("get", "svc", "lb", "-o", "json").stdout)
               ["status"]["loadBalancer"].get("ingress"))
    code, out, _ = run(cluster, capsys, "lb")
    assert code == 0
    assert out.splitlines() == [f"http://127.0.0.1:{port}", "http://10.250.0.1:80",
                                "http://10.250.0.2:80"]


def test_cluster_ip_service_has_no_node_port(cluster: Cluster,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    cluster.kubectl("create", "service", "clusterip", "inner", "--tcp=80:8080")
    code, out, err = run(cluster, capsys, "inner")
    assert (code, out, err) == (1, "", "service default/inner has no node port\n")
    code, out, err = run(cluster, capsys, "inner", url=False)
    assert code == 1 and "No node port" in out
    assert err == "service default/inner has no node port\n"


def test_missing_service_is_kubes_not_found(cluster: Cluster,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(cluster, capsys, "nope", "default")
    assert (code, out) == (1, "")
    assert err == 'Error from server (NotFound): services "nope" not found\n'


def test_no_cluster_in_the_data_dir(cluster: Cluster, capsys: pytest.CaptureFixture[str],
                                    tmp_path: Path) -> None:
    code, out, err = run(cluster, capsys, "np", data_dir=tmp_path)
    assert (code, out) == (1, "")
    assert err.startswith(f"error: no cluster in {tmp_path}")


def test_wired_into_the_pocketkube_command(cluster: Cluster, cli: Callable[..., Result]) -> None:
    cluster.kubectl("create", "service", "nodeport", "wired", "--tcp=80:8080")
    (port,) = node_ports(cluster, "wired")
    r = cli("service", "wired", "--url", "--data-dir", str(cluster.data_dir))
    assert (r.code, r.out, r.err) == (0, f"http://127.0.0.1:{port}\n", "")
    r = cli("service", "wired", "-n", "elsewhere", "--data-dir", str(cluster.data_dir))
    assert (r.code, r.err) == (1, 'Error from server (NotFound): services "wired" not found\n')
