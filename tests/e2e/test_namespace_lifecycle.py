"""Namespaces as users meet them: each has a `default` ServiceAccount and the
`kube-root-ca.crt` ConfigMap, and `kubectl delete ns` empties it and removes it."""

from __future__ import annotations

import json

from tests.support.cluster import Cluster


def _wait_for(cluster: Cluster, *args: str) -> str:
    """kubectl wait until the object exists (kubectl's own watch, with a timeout)."""
    return cluster.kubectl("wait", "--for=create", "--timeout=30s", *args).stdout


def test_new_namespace_gets_default_serviceaccount_and_root_ca(cluster: Cluster) -> None:
    cluster.kubectl("create", "namespace", "lifecycle-a")
    _wait_for(cluster, "-n", "lifecycle-a", "serviceaccount/default")
    _wait_for(cluster, "-n", "lifecycle-a", "configmap/kube-root-ca.crt")
    ca = json.loads(cluster.kubectl("-n", "lifecycle-a", "get", "cm", "kube-root-ca.crt",
                                    "-o", "json").stdout)["data"]["ca.crt"]
    assert ca == (cluster.pki / "ca.crt").read_text()
    token = cluster.kubectl("-n", "lifecycle-a", "create", "token", "default").stdout.strip()
    assert token.count(".") == 2
    # Deleted defaults come back.
    cluster.kubectl("-n", "lifecycle-a", "delete", "serviceaccount", "default")
    _wait_for(cluster, "-n", "lifecycle-a", "serviceaccount/default")
    cluster.kubectl("delete", "namespace", "lifecycle-a", "--timeout=60s")


def test_delete_namespace_removes_its_content_then_itself(cluster: Cluster) -> None:
    cluster.kubectl("create", "namespace", "lifecycle-b")
    cluster.kubectl("-n", "lifecycle-b", "create", "configmap", "c1", "--from-literal=a=b")
    cluster.kubectl("-n", "lifecycle-b", "create", "deployment", "web", "--image=nginx")
    cluster.kubectl("-n", "lifecycle-b", "run", "p1", "--image=busybox")
    out = cluster.kubectl("delete", "namespace", "lifecycle-b", "--timeout=60s").stdout
    assert out.strip() == 'namespace "lifecycle-b" deleted'
    gone = cluster.kubectl("get", "namespace", "lifecycle-b", check=False)
    assert gone.returncode == 1
    assert 'namespaces "lifecycle-b" not found' in gone.stderr
    # Creating content in a namespace that no longer exists is refused.
    refused = cluster.kubectl("-n", "lifecycle-b", "create", "configmap", "c2", check=False)
    assert refused.returncode == 1
    assert 'namespaces "lifecycle-b" not found' in refused.stderr


def test_system_namespaces_cannot_be_deleted(cluster: Cluster) -> None:
    proc = cluster.kubectl("delete", "namespace", "kube-system", check=False)
    assert proc.returncode == 1
    assert 'namespaces "kube-system" is forbidden: this namespace may not be deleted' \
        in proc.stderr
