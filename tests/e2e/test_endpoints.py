"""The Endpoints and EndpointSlice controllers in a real `pocketkube server` with two simulated
nodes, driven by the real kubectl: pods created with labels run on the simulated nodes and get
pod IPs; Services selecting them get Endpoints and EndpointSlices listing those IPs.

Readiness is driven two ways, both robust against the simulated kubelet: a pod with a readiness
gate nobody satisfies is reported not Ready by the simulated kubelet itself (as the kubelet
does), and a Running pod's Ready condition patched to False through pods/status stays False,
since a simulated node rewrites a running pod's status only when its containers change state.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Kubectl, unique_name
from tests.support.cluster import Cluster
from tests.support.waiting import eventually


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("endpoints"), extra_args=["--simulated-nodes", "2"])
    c.start()
    try:
        for node in ("sim-0", "sim-1"):
            c.kubectl("wait", "--for=create", f"node/{node}", "--timeout=60s")
        c.kubectl("wait", "--for=condition=Ready", "node/sim-0", "node/sim-1", "--timeout=60s")
        yield c
    finally:
        c.close()


@pytest.fixture
def k(cluster: Cluster) -> Kubectl:
    ns = unique_name("ep")
    cluster.kubectl("create", "namespace", ns)
    return Kubectl(cluster, ns)




def pod(name: str, labels: dict[str, str], ports: list[dict] | None = None,
        **spec: Any) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels},
            "spec": {"terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "app", "image": "nginx:1.27",
                                     "ports": ports or []}], **spec}}


def service(name: str, selector: dict[str, str] | None, ports: list[dict],
            **spec: Any) -> dict:
    body: dict[str, Any] = {"ports": ports, **spec}
    if selector is not None:
        body["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": body}


def run_pods(k: Kubectl, *pods: dict) -> dict[str, str]:
    """Create the pods, wait until they run; their IPs by name."""
    for p in pods:
        k.create(p)
    names = [f"pod/{p['metadata']['name']}" for p in pods]
    k("wait", "--for=jsonpath={.status.phase}=Running", *names, "--timeout=60s")
    return {p["metadata"]["name"]: k.json("pod", p["metadata"]["name"])["status"]["podIP"]
            for p in pods}


def endpoints(k: Kubectl, name: str) -> dict:
    proc = k("get", "endpoints", name, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else {}


def addresses(ep: dict, field: str = "addresses") -> dict[str, set[int]]:
    """ip -> ports, over all subsets."""
    out: dict[str, set[int]] = {}
    for s in ep.get("subsets") or []:
        for a in s.get(field) or []:
            out.setdefault(a["ip"], set()).update(p["port"] for p in s.get("ports") or [])
    return out


def slices(k: Kubectl, svc: str) -> list[dict]:
    out = k("get", "endpointslices", "-l", f"kubernetes.io/service-name={svc}", "-o", "json")
    return json.loads(out.stdout)["items"]


def slice_endpoints(k: Kubectl, svc: str) -> dict[str, dict]:
    """pod name -> its endpoint, over the service's slices."""
    return {e["targetRef"]["name"]: e for s in slices(k, svc) for e in s.get("endpoints") or []}


def test_endpoints_and_slices_list_the_selected_pods(k: Kubectl) -> None:
    ips = run_pods(k, pod("web-0", {"app": "web"}), pod("web-1", {"app": "web"}),
                   pod("other", {"app": "other"}))
    k("create", "service", "clusterip", "web", "--tcp=80:8080")  # selector app=web
    want = {ips["web-0"]: {8080}, ips["web-1"]: {8080}}
    ep = eventually(lambda: (e := endpoints(k, "web")) and addresses(e) == want and e)
    addrs = {a["targetRef"]["name"]: a for s in ep["subsets"] for a in s["addresses"]}
    assert set(addrs) == {"web-0", "web-1"}
    uid = k.json("pod", "web-0")["metadata"]["uid"]
    node = k.json("pod", "web-0")["spec"]["nodeName"]
    assert addrs["web-0"]["nodeName"] == node
    assert addrs["web-0"]["targetRef"] == {"kind": "Pod", "name": "web-0", "namespace": k.ns,
                                           "uid": uid}
    assert ep["subsets"][0]["ports"] == [{"name": "80-8080", "port": 8080, "protocol": "TCP"}]
    assert ep["metadata"]["labels"] == {"app": "web"}
    assert "endpoints.kubernetes.io/last-change-trigger-time" in ep["metadata"]["annotations"]

    table = k("get", "endpoints", "web").stdout
    for ip in want:
        assert f"{ip}:8080" in table
    described = k("describe", "service", "web").stdout
    endpoints_line = next(line for line in described.splitlines()
                          if line.startswith("Endpoints:"))
    for ip in want:
        assert f"{ip}:8080" in endpoints_line

    (sl,) = eventually(lambda: [s for s in slices(k, "web")
                                if len(s.get("endpoints") or []) == 2])
    assert sl["metadata"]["name"].startswith("web-")
    assert sl["metadata"]["generateName"] == "web-"
    assert sl["addressType"] == "IPv4"
    assert sl["metadata"]["labels"] == {
        "app": "web", "kubernetes.io/service-name": "web",
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
    svc_uid = k.json("service", "web")["metadata"]["uid"]
    assert sl["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Service", "name": "web", "uid": svc_uid,
         "controller": True, "blockOwnerDeletion": True}]
    assert sl["ports"] == [{"name": "80-8080", "port": 8080, "protocol": "TCP"}]
    by_pod = {e["targetRef"]["name"]: e for e in sl["endpoints"]}
    assert by_pod["web-0"]["addresses"] == [ips["web-0"]]
    assert by_pod["web-0"]["conditions"] == {"ready": True, "serving": True,
                                             "terminating": False}
    assert by_pod["web-0"]["nodeName"] == node
    listed = k("get", "endpointslices", "-l", "kubernetes.io/service-name=web").stdout
    assert sl["metadata"]["name"] in listed and "IPv4" in listed and "8080" in listed


def test_deleting_a_pod_removes_its_address(k: Kubectl) -> None:
    ips = run_pods(k, pod("a", {"app": "db"}), pod("b", {"app": "db"}))
    k.create(service("db", {"app": "db"}, [{"port": 5432}]))
    eventually(lambda: set(addresses(endpoints(k, "db"))) == set(ips.values()))
    k("delete", "pod", "a", "--wait=false")
    # Terminating at once: out of Endpoints, and in the slice as terminating (not ready).
    eventually(lambda: set(addresses(endpoints(k, "db"))) == {ips["b"]})
    k("wait", "--for=delete", "pod/a", "--timeout=60s")
    eventually(lambda: set(slice_endpoints(k, "db")) == {"b"})
    assert addresses(endpoints(k, "db"), "notReadyAddresses") == {}


def test_terminating_pod_stays_in_slices_as_terminating(k: Kubectl) -> None:
    p = pod("slow", {"app": "slow"})
    p["spec"]["terminationGracePeriodSeconds"] = 120
    ips = run_pods(k, p)
    k.create(service("slow", {"app": "slow"}, [{"port": 80}]))
    eventually(lambda: set(addresses(endpoints(k, "slow"))) == {ips["slow"]})
    k("delete", "pod", "slow", "--wait=false")
    ep = eventually(lambda: slice_endpoints(k, "slow").get("slow", {}).get(
        "conditions", {}).get("terminating") and slice_endpoints(k, "slow")["slow"])
    assert ep["conditions"] == {"ready": False, "serving": True, "terminating": True}
    assert eventually(lambda: not (endpoints(k, "slow").get("subsets")))
    k("delete", "pod", "slow", "--grace-period=0", "--force")


def test_named_target_port_resolves_per_pod(k: Kubectl) -> None:
    ips = run_pods(
        k, pod("v1", {"app": "api"}, [{"name": "http", "containerPort": 8080}]),
        pod("v2", {"app": "api"}, [{"name": "http", "containerPort": 9090}]),
        pod("bare", {"app": "api"}))
    k("expose", "pod", "v1", "--name=api", "--port=80", "--target-port=http",
      "--selector=app=api")
    assert k.json("service", "api")["spec"]["ports"][0]["targetPort"] == "http"
    want = {ips["v1"]: {8080}, ips["v2"]: {9090}}
    ep = eventually(lambda: (e := endpoints(k, "api")) and addresses(e) == want and e)
    # The pod without an `http` port serves nothing: it is in no subset.
    assert len(ep["subsets"]) == 2
    assert all(s["ports"] == [{"port": s["ports"][0]["port"], "protocol": "TCP"}]
               for s in ep["subsets"])
    # Slices group endpoints by resolved ports: 8080, 9090 and none.
    got = eventually(lambda: len(slices(k, "api")) == 3 and slices(k, "api"))
    ports = sorted(tuple(p["port"] for p in s.get("ports") or []) for s in got)
    assert ports == [(), (8080,), (9090,)]


def test_headless_service_gets_endpoints(k: Kubectl) -> None:
    ips = run_pods(k, pod("h-0", {"app": "h"}), pod("h-1", {"app": "h"}))
    k.create(service("h", {"app": "h"}, [{"port": 80}], clusterIP="None"))
    ep = eventually(lambda: (e := endpoints(k, "h")) and
                    set(addresses(e)) == set(ips.values()) and e)
    assert ep["metadata"]["labels"] == {"service.kubernetes.io/headless": ""}
    sl = eventually(lambda: [s for s in slices(k, "h") if s.get("endpoints")])
    assert sl[0]["metadata"]["labels"]["service.kubernetes.io/headless"] == ""


def test_not_ready_pods_are_not_ready_addresses(k: Kubectl) -> None:
    gated = pod("gated", {"app": "r"}, readinessGates=[{"conditionType": "example.com/ok"}])
    ips = run_pods(k, pod("ready", {"app": "r"}), gated)
    k.create(service("r", {"app": "r"}, [{"port": 80}]))
    ep = eventually(lambda: (e := endpoints(k, "r")) and
                    set(addresses(e)) == {ips["ready"]} and e)
    assert set(addresses(ep, "notReadyAddresses")) == {ips["gated"]}
    eps = eventually(lambda: len(s := slice_endpoints(k, "r")) == 2 and s)
    assert eps["gated"]["conditions"] == {"ready": False, "serving": False,
                                          "terminating": False}

    # The ready pod stops passing its readiness check: it moves to notReadyAddresses.
    k("patch", "pod", "ready", "--subresource=status", "--type=strategic", "-p",
      json.dumps({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}))
    ep = eventually(lambda: (e := endpoints(k, "r")) and not addresses(e) and e)
    assert set(addresses(ep, "notReadyAddresses")) == set(ips.values())
    eventually(lambda: slice_endpoints(k, "r")["ready"]["conditions"]["ready"] is False)

    # Unless the service publishes not-ready addresses.
    k("patch", "service", "r", "-p", '{"spec":{"publishNotReadyAddresses":true}}')
    eventually(lambda: set(addresses(endpoints(k, "r"))) == set(ips.values()))


def test_services_without_selector_are_left_alone(k: Kubectl) -> None:
    run_pods(k, pod("x", {"app": "x"}))
    k.create(service("manual", None, [{"port": 80}]))
    k.create({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "manual"},
              "subsets": [{"addresses": [{"ip": "192.0.2.10"}], "ports": [{"port": 80}]}]})
    # A selector service created after it has been handled, so the controller has had its turn.
    k.create(service("sel", {"app": "x"}, [{"port": 80}]))
    eventually(lambda: addresses(endpoints(k, "sel")))
    assert addresses(endpoints(k, "manual")) == {"192.0.2.10": {80}}
    assert slices(k, "manual") == []


def test_deleting_the_service_deletes_its_endpoints(k: Kubectl) -> None:
    run_pods(k, pod("g", {"app": "g"}))
    k.create(service("gone", {"app": "g"}, [{"port": 80}]))
    eventually(lambda: addresses(endpoints(k, "gone")) and slices(k, "gone"))
    k("delete", "service", "gone")
    eventually(lambda: not endpoints(k, "gone") and not slices(k, "gone"))


def test_service_selecting_nothing_gets_an_empty_placeholder_slice(k: Kubectl) -> None:
    k.create(service("empty", {"app": "nothing"}, [{"port": 80}]))
    ep = eventually(lambda: endpoints(k, "empty"))
    assert "subsets" not in ep
    (sl,) = eventually(lambda: slices(k, "empty"))
    assert not sl.get("endpoints") and "ports" not in sl
