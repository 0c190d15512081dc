"""Priority admission: a pod's PriorityClass becomes its spec.priority, as kube resolves it."""

from __future__ import annotations

import json

from tests.support.cluster import Cluster


def _pod(name: str, **spec: object) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}})


def test_priority_class_resolved_on_create(cluster: Cluster) -> None:
    classes = cluster.kubectl("get", "priorityclasses", "-o", "name").stdout.split()
    assert "priorityclass.scheduling.k8s.io/system-cluster-critical" in classes
    assert "priorityclass.scheduling.k8s.io/system-node-critical" in classes
    cluster.kubectl("create", "priorityclass", "high-e2e", "--value=1000",
                    "--preemption-policy=Never")
    ns = "priority-e2e"
    cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("-n", ns, "create", "-f", "-",
                    input=_pod("p-high", priorityClassName="high-e2e"))
    spec = json.loads(cluster.kubectl("-n", ns, "get", "pod", "p-high", "-o", "json").stdout)[
        "spec"]
    assert spec["priority"] == 1000
    assert spec["preemptionPolicy"] == "Never"
    cluster.kubectl("-n", ns, "create", "-f", "-", input=_pod("p-plain"))
    plain = json.loads(cluster.kubectl("-n", ns, "get", "pod", "p-plain", "-o", "json").stdout)
    assert plain["spec"]["priority"] == 0
    missing = cluster.kubectl("-n", ns, "create", "-f", "-",
                              input=_pod("p-x", priorityClassName="nope"), check=False)
    assert missing.returncode == 1
    assert 'pods "p-x" is forbidden: no PriorityClass with name nope was found' in \
        missing.stderr
    cluster.kubectl("delete", "namespace", ns, "--wait=false")
    cluster.kubectl("delete", "priorityclass", "high-e2e")
