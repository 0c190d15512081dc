"""What a user sees first: version, cluster-info, the resource list, explain, component health,
and the objects every cluster starts with."""

from __future__ import annotations

import json
import re

from tests.support.cluster import Cluster

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def columns(line: str) -> list[str]:
    return line.split()


def test_version_reports_minor_32(cluster: Cluster) -> None:
    out = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert out["serverVersion"]["major"] == "1"
    assert out["serverVersion"]["minor"] == "32"
    assert out["serverVersion"]["gitVersion"].startswith("v1.32.")
    # The dispatcher ran its built-in 1.32 for a server reporting minor 32.
    assert out["clientVersion"]["gitVersion"].startswith("v1.32.")


def test_cluster_info(cluster: Cluster) -> None:
    out = ANSI.sub("", cluster.kubectl("cluster-info").stdout)
    assert out.splitlines()[0] == f"Kubernetes control plane is running at {cluster.url}"


def test_api_resources_with_short_names(cluster: Cluster) -> None:
    out = cluster.kubectl("api-resources").stdout.splitlines()
    assert columns(out[0]) == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    rows = {columns(line)[0]: columns(line) for line in out[1:]}
    assert rows["pods"] == ["pods", "po", "v1", "true", "Pod"]
    assert rows["deployments"] == ["deployments", "deploy", "apps/v1", "true", "Deployment"]
    assert rows["services"] == ["services", "svc", "v1", "true", "Service"]
    assert rows["namespaces"] == ["namespaces", "ns", "v1", "false", "Namespace"]
    assert rows["configmaps"] == ["configmaps", "cm", "v1", "true", "ConfigMap"]
    assert rows["jobs"] == ["jobs", "batch/v1", "true", "Job"]
    # Short names work in get.
    assert cluster.kubectl("get", "deploy", "-A").returncode == 0


def test_api_versions(cluster: Cluster) -> None:
    versions = cluster.kubectl("api-versions").stdout.split()
    for gv in ("v1", "apps/v1", "batch/v1", "rbac.authorization.k8s.io/v1",
               "networking.k8s.io/v1", "coordination.k8s.io/v1"):
        assert gv in versions
    assert versions == sorted(versions)


def test_explain_pod_containers(cluster: Cluster) -> None:
    out = cluster.kubectl("explain", "pod.spec.containers").stdout
    assert re.search(r"^KIND:\s+Pod$", out, re.M)
    assert re.search(r"^VERSION:\s+v1$", out, re.M)
    assert re.search(r"^FIELD: containers <\[\]Container>$", out, re.M)
    assert "DESCRIPTION:" in out
    assert re.search(r"^\s+image\s+<string>$", out, re.M)
    assert re.search(r"^\s+name\s+<string> -required-$", out, re.M)


def test_get_componentstatus(cluster: Cluster) -> None:
    proc = cluster.kubectl("get", "componentstatus")
    lines = proc.stdout.splitlines()
    assert columns(lines[0]) == ["NAME", "STATUS", "MESSAGE", "ERROR"]
    rows = {columns(line)[0]: columns(line) for line in lines[1:]}
    assert rows["etcd-0"][:3] == ["etcd-0", "Healthy", "ok"]
    assert "Warning: v1 ComponentStatus is deprecated in v1.19+" in proc.stderr


def test_bootstrap_namespaces(cluster: Cluster) -> None:
    lines = cluster.kubectl("get", "ns").stdout.splitlines()
    assert columns(lines[0]) == ["NAME", "STATUS", "AGE"]
    rows = {columns(line)[0]: columns(line)[1] for line in lines[1:]}
    for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert rows[name] == "Active"
    label = cluster.kubectl("get", "ns", "kube-system", "-o",
                            "jsonpath={.metadata.labels.kubernetes\\.io/metadata\\.name}")
    assert label.stdout == "kube-system"


def test_kubernetes_service(cluster: Cluster) -> None:
    svc = json.loads(cluster.kubectl("get", "svc", "kubernetes", "-n", "default",
                                     "-o", "json").stdout)
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["clusterIP"] == "10.96.0.1"
    assert svc["spec"]["clusterIPs"] == ["10.96.0.1"]
    assert svc["spec"]["ports"][0]["port"] == 443
    lines = cluster.kubectl("get", "svc", "kubernetes", "-n", "default").stdout.splitlines()
    assert columns(lines[0]) == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert columns(lines[1])[:5] == ["kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP"]


def test_health_endpoints(cluster: Cluster) -> None:
    for path in ("/healthz", "/livez", "/readyz"):
        status, _, body = cluster.request("GET", path, auth=False)
        assert (status, body) == (200, b"ok")
    status, _, body = cluster.request("GET", "/readyz?verbose", auth=False)
    assert status == 200
    assert b"[+]etcd ok" in body
