"""StatefulSets and DaemonSets end to end: a `pocketkube server --simulated-nodes 3` driven by the
real kubectl. The order in which pods come and go is read from a `kubectl get pods --watch`
stream started before each step; every wait is kubectl's own (`rollout status`, `wait`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Kubectl, unique_name
from tests.support.cluster import Cluster

NODES = ("sim-0", "sim-1", "sim-2")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("workloads"), extra_args=["--simulated-nodes", "3"])
    c.start()
    try:
        for node in NODES:
            c.kubectl("wait", "--for=create", f"node/{node}", "--timeout=60s")
        c.kubectl("wait", "--for=condition=Ready", *(f"node/{n}" for n in NODES),
                  "--timeout=60s")
        yield c
    finally:
        c.close()


@pytest.fixture
def k(cluster: Cluster) -> Kubectl:
    ns = unique_name("wl")
    cluster.kubectl("create", "namespace", ns)
    return Kubectl(cluster, ns)


class PodWatch:
    """`kubectl get pods --watch --output-watch-events -o json` in the background; `stop()`
    returns the (event type, pod) pairs in the order the server sent them. Creating it waits
    until kubectl has listed the `existing` pods, so nothing that happens next is missed."""

    def __init__(self, k: Kubectl, selector: str, existing: int = 0) -> None:
        self.proc = k.cluster.kubectl_popen("-n", k.ns, "get", "pods", "-l", selector,
                                            "--watch", "--output-watch-events", "-o", "json")
        self.out: list[str] = []
        self.seen = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        with self.seen:
            assert self.seen.wait_for(lambda: len(self._events()) >= existing, 60), \
                f"kubectl did not list the {existing} existing pods"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.seen:
                self.out.append(line)
                self.seen.notify_all()

    def _events(self) -> list[tuple[str, dict[str, Any]]]:
        text, events, dec, i = "".join(self.out), [], json.JSONDecoder(), 0
        while True:
            while i < len(text) and text[i].isspace():
                i += 1
            if i >= len(text):
                return events
            try:
                ev, i = dec.raw_decode(text, i)
            except json.JSONDecodeError:
                return events  # an object still being written
            events.append((ev["type"], ev["object"]))

    def stop(self) -> list[tuple[str, dict[str, Any]]]:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.reader.join(10)
        with self.seen:
            return self._events()


def first(events: list[tuple[str, dict]], name: str, pred: Any) -> int:
    """Index of the first event about pod `name` that satisfies `pred(type, pod)`."""
    for i, (t, pod) in enumerate(events):
        if pod["metadata"]["name"] == name and pred(t, pod):
            return i
    seen = [(t, p["metadata"]["name"]) for t, p in events]
    raise AssertionError(f"no matching event for {name}: {seen}")


def ready(t: str, pod: dict) -> bool:
    return t != "DELETED" and pod.get("status", {}).get("phase") == "Running" and any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod["status"].get("conditions") or [])


def added(t: str, pod: dict) -> bool:
    return t == "ADDED"


def terminating(t: str, pod: dict) -> bool:
    return t == "DELETED" or bool(pod["metadata"].get("deletionTimestamp"))


def statefulset(name: str, image: str = "nginx:1.27", replicas: int = 3) -> list[dict]:
    return [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": name},
         "spec": {"clusterIP": "None", "selector": {"app": name},
                  "ports": [{"port": 80}]}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet",
         "metadata": {"name": name},
         "spec": {"serviceName": name, "replicas": replicas,
                  "selector": {"matchLabels": {"app": name}},
                  "template": {"metadata": {"labels": {"app": name}},
                               "spec": {"terminationGracePeriodSeconds": 0,
                                        "containers": [{"name": "app", "image": image}]}}}},
    ]


def pods(k: Kubectl, selector: str) -> dict[str, dict]:
    return {p["metadata"]["name"]: p for p in k.json("pods", "-l", selector)["items"]}


def test_statefulset_order_scale_down_and_partitioned_update(k: Kubectl) -> None:
    watch = PodWatch(k, "app=web")
    k.apply(statefulset("web"))
    out = k("rollout", "status", "statefulset/web", "--timeout=120s").stdout
    assert "partitioned roll out complete: 3 new pods have been updated" in out
    events = watch.stop()
    # OrderedReady: each pod is created only once its predecessor is Running and Ready.
    assert first(events, "web-1", added) > first(events, "web-0", ready)
    assert first(events, "web-2", added) > first(events, "web-1", ready)

    sts = k.json("statefulset", "web")
    st = sts["status"]
    assert st["replicas"] == st["readyReplicas"] == st["availableReplicas"] == 3
    assert st["currentRevision"] == st["updateRevision"]
    assert st["observedGeneration"] == sts["metadata"]["generation"]
    current = st["currentRevision"]
    got = pods(k, "app=web")
    assert sorted(got) == ["web-0", "web-1", "web-2"]
    for i in range(3):
        pod = got[f"web-{i}"]
        assert pod["status"]["phase"] == "Running"
        assert pod["spec"]["hostname"] == f"web-{i}" and pod["spec"]["subdomain"] == "web"
        labels = pod["metadata"]["labels"]
        assert labels["statefulset.kubernetes.io/pod-name"] == f"web-{i}"
        assert labels["apps.kubernetes.io/pod-index"] == str(i)
        assert labels["controller-revision-hash"] == current
        ref = pod["metadata"]["ownerReferences"][0]
        assert (ref["kind"], ref["name"], ref["controller"]) == ("StatefulSet", "web", True)
    msgs = k("get", "events", "--field-selector", "involvedObject.name=web",
             "-o", "jsonpath={range .items[*]}{.reason}: {.message}{'\\n'}{end}").stdout
    assert "SuccessfulCreate: create Pod web-0 in StatefulSet web successful" in msgs

    # Scale down: the highest ordinal goes first, and web-1 only once web-2 is gone.
    watch = PodWatch(k, "app=web", existing=3)
    k("scale", "statefulset/web", "--replicas=1")
    k("wait", "--for=delete", "pod/web-1", "--timeout=60s")
    events = watch.stop()
    assert first(events, "web-1", terminating) > first(events, "web-2",
                                                       lambda t, p: t == "DELETED")
    assert sorted(pods(k, "app=web")) == ["web-0"]
    msgs = k("get", "events", "--field-selector", "involvedObject.name=web",
             "-o", "jsonpath={range .items[*]}{.reason}: {.message}{'\\n'}{end}").stdout
    assert "SuccessfulDelete: delete Pod web-2 in StatefulSet web successful" in msgs
    k("scale", "statefulset/web", "--replicas=3")
    k("rollout", "status", "statefulset/web", "--timeout=120s")

    # A new template with partition 1: web-2 then web-1 are replaced; web-0 stays.
    watch = PodWatch(k, "app=web", existing=3)
    k("patch", "statefulset/web", "-p", json.dumps({"spec": {
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}},
        "template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.28"}]}}}}))
    out = k("rollout", "status", "statefulset/web", "--timeout=120s").stdout
    assert "partitioned roll out complete: 2 new pods have been updated" in out
    k("wait", "--for=condition=Ready", "pod/web-1", "pod/web-2", "--timeout=60s")
    events = watch.stop()
    new_web2 = first(events, "web-2", lambda t, p: ready(t, p) and p["spec"]["containers"][0][
        "image"] == "nginx:1.28")
    assert first(events, "web-1", terminating) > new_web2
    st = k.json("statefulset", "web")["status"]
    assert st["currentRevision"] == current != st["updateRevision"]
    assert st["updatedReplicas"] == 2 and st["currentReplicas"] == 1
    got = pods(k, "app=web")
    images = {n: p["spec"]["containers"][0]["image"] for n, p in got.items()}
    assert images == {"web-0": "nginx:1.27", "web-1": "nginx:1.28", "web-2": "nginx:1.28"}
    assert got["web-0"]["metadata"]["labels"]["controller-revision-hash"] == current
    assert got["web-2"]["metadata"]["labels"]["controller-revision-hash"] == \
        st["updateRevision"]

    out = k("get", "controllerrevisions", "--no-headers").stdout.split("\n")
    rows = sorted(line.split()[:3] for line in out if line.strip())
    assert rows == sorted([[current, "statefulset.apps/web", "1"],
                           [st["updateRevision"], "statefulset.apps/web", "2"]])


def daemonset(name: str, image: str = "fluentd:v1") -> dict:
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"terminationGracePeriodSeconds": 0,
                                           "containers": [{"name": "app", "image": image}]}}}}


def test_daemonset_one_pod_per_node_and_rolling_update(k: Kubectl) -> None:
    k.apply(daemonset("fluentd"))
    out = k("rollout", "status", "daemonset/fluentd", "--timeout=120s").stdout
    assert 'daemon set "fluentd" successfully rolled out' in out
    got = pods(k, "app=fluentd")
    assert sorted(p["spec"]["nodeName"] for p in got.values()) == list(NODES)
    for pod in got.values():
        assert pod["metadata"]["name"].startswith("fluentd-")
        terms = pod["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert terms == [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                           "values": [pod["spec"]["nodeName"]]}]}]
        keys = {t["key"] for t in pod["spec"]["tolerations"]}
        assert {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable",
                "node.kubernetes.io/unschedulable"} <= keys
    st = k.json("daemonset", "fluentd")["status"]
    assert (st["desiredNumberScheduled"], st["currentNumberScheduled"], st["numberReady"],
            st["updatedNumberScheduled"], st["numberAvailable"]) == (3, 3, 3, 3, 3)
    msgs = k("get", "events", "--field-selector", "involvedObject.name=fluentd",
             "-o", "jsonpath={range .items[*]}{.reason}: {.message}{'\\n'}{end}").stdout
    for name in got:
        assert f"SuccessfulCreate: Created pod: {name}" in msgs

    k("set", "image", "daemonset/fluentd", "app=fluentd:v2")
    k("rollout", "status", "daemonset/fluentd", "--timeout=120s")
    k("wait", "--for=delete", *(f"pod/{n}" for n in got), "--timeout=60s")
    new = pods(k, "app=fluentd")
    assert {p["spec"]["containers"][0]["image"] for p in new.values()} == {"fluentd:v2"}
    assert sorted(p["spec"]["nodeName"] for p in new.values()) == list(NODES)
    out = k("get", "controllerrevisions", "--no-headers").stdout
    assert sorted(line.split()[2] for line in out.splitlines() if line.strip()) == ["1", "2"]


def test_daemonset_and_a_tainted_node(k: Kubectl, cluster: Cluster) -> None:
    k.apply(daemonset("agent"))
    k("rollout", "status", "daemonset/agent", "--timeout=120s")
    cluster.kubectl("taint", "nodes", "sim-0", "dedicated=x:NoSchedule")
    try:
        # NoSchedule keeps the pod already there; a new DaemonSet skips the node.
        k.apply(daemonset("late"))
        k("rollout", "status", "daemonset/late", "--timeout=120s")
        late = pods(k, "app=late")
        assert sorted(p["spec"]["nodeName"] for p in late.values()) == ["sim-1", "sim-2"]
        assert sorted(p["spec"]["nodeName"] for p in pods(k, "app=agent").values()) == \
            list(NODES)
        st = k.json("daemonset", "late")["status"]
        assert (st["desiredNumberScheduled"], st["currentNumberScheduled"]) == (2, 2)
    finally:
        cluster.kubectl("taint", "nodes", "sim-0", "dedicated-")
