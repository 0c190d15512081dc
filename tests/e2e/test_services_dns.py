"""Services and cluster DNS on a real node, as a Kubernetes user meets them: `pocketkube server
--node-agent` runs the pods (runc), its own kube-proxy (iptables mode) and its own cluster DNS,
and the real kubectl drives it. Traffic goes only to 127.0.0.1 and to this cluster's ClusterIPs,
pod IPs and bridge address.

Covered: two ReplicaSets (release=spring/summer) of httpd pods serving their hostname and a
Service `echo` selecting summer, fetched from `kubectl run -i --rm --tty debug` on a terminal as
a user types it (only and both summer pods answer) and resolved by its short, namespaced and full
names; a NodePort answering on 127.0.0.1 and `pocketkube service --url` printing it; a pod
failing readiness leaving the rotation (measured from its Ready condition) and coming back; a
deleted Service losing its rules and its name; a StatefulSet's headless Service (A records, the
pod's stable name, SRV); an ExternalName answered as a CNAME; a LoadBalancer reached on the
node address kubectl shows as EXTERNAL-IP; a Local load balancer's health check node port
(200 with a local endpoint, 503 without); sessionAffinity ClientIP.

Controllers, the proxy and DNS act on their own time, so state changes are awaited by polling.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Kubectl
from tests.support.cluster import Cluster
from tests.support.node import node_cluster
from tests.support.terminal import read_until
from tests.support.waiting import eventually

Obj = dict[str, Any]
SERVE_HOSTNAME = ("mkdir -p /www && hostname > /www/index.html && "
                  "exec httpd -f -p 8080 -h /www")
READY_FILE_SERVER = "touch /tmp/ready && " + SERVE_HOSTNAME


pytestmark = pytest.mark.usefixtures("require_root")


@pytest.fixture(scope="module")
def cluster(require_root: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with node_cluster(tmp_path_factory.mktemp("svc")) as c:
        eventually(lambda: node_ip(c), timeout=60)
        yield c


# --- helpers ----------------------------------------------------------------------------------


def node_ip(cluster: Cluster) -> str | None:
    """The InternalIP of the node once it is Ready (the pod bridge's address)."""
    proc = cluster.kubectl("get", "nodes", "-o", "json", check=False)
    for node in json.loads(proc.stdout or "{}").get("items", []):
        status = node.get("status", {})
        ready = any(c["type"] == "Ready" and c["status"] == "True"
                    for c in status.get("conditions") or [])
        for addr in status.get("addresses") or []:
            if ready and addr["type"] == "InternalIP":
                return addr["address"]
    return None


def container(name: str, script: str, **fields: Any) -> Obj:
    return {"name": name, "image": "busybox", "command": ["sh", "-c", script], **fields}


def pod_spec(*containers: Obj) -> Obj:
    return {"terminationGracePeriodSeconds": 1, "containers": list(containers)}


def web_pod(name: str, labels: dict[str, str], probe: bool = False) -> Obj:
    fields: Obj = {"ports": [{"name": "http", "containerPort": 8080}]}
    if probe:
        fields["readinessProbe"] = {"exec": {"command": ["cat", "/tmp/ready"]},
                                    "periodSeconds": 1, "failureThreshold": 1}
    script = READY_FILE_SERVER if probe else SERVE_HOSTNAME
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": pod_spec(container("web", script, **fields))}


def client_pod(name: str = "client") -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": pod_spec(container("c", "exec sleep 3600"))}


def service(name: str, selector: dict[str, str] | None, port: int = 80,
            **spec: Any) -> Obj:
    ports = [{"name": "http", "port": port, "targetPort": 8080}]
    body: Obj = {"ports": ports, **spec}
    if selector is not None:
        body["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": body}


def replicaset(name: str, replicas: int, labels: dict[str, str]) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": pod_spec(container("web", SERVE_HOSTNAME, ports=[
                                      {"name": "http", "containerPort": 8080}]))}}}


def wait_ready(k: Kubectl, *targets: str) -> None:
    k("wait", "--for=condition=Ready", *targets, "--timeout=60s")


def pod_names(k: Kubectl, selector: str) -> list[str]:
    items = json.loads(k("get", "pods", "-l", selector, "-o", "json").stdout)["items"]
    return sorted(p["metadata"]["name"] for p in items)


def pod_ip(k: Kubectl, name: str) -> str:
    return k("get", "pod", name, "-o", "jsonpath={.status.podIP}").stdout


def cluster_ip(k: Kubectl, name: str) -> str:
    return k("get", "svc", name, "-o", "jsonpath={.spec.clusterIP}").stdout


def endpoint_ips(k: Kubectl, name: str) -> list[str]:
    proc = k("get", "endpoints", name, "-o", "json", check=False)
    if proc.returncode != 0:
        return []
    subsets = json.loads(proc.stdout).get("subsets") or []
    return sorted(a["ip"] for s in subsets for a in s.get("addresses") or [])


def wait_endpoints(k: Kubectl, name: str, count: int) -> list[str]:
    return eventually(lambda: (lambda ips: ips if len(ips) == count else None)(
        endpoint_ips(k, name)), timeout=30)


def fetch_in_pod(k: Kubectl, pod: str, url: str, times: int) -> list[str]:
    """`times` answers of `wget -qO- url` from inside `pod` (one line each; "-" for a failed
    request). No `wget -T`: this busybox (1.35) crashes with it."""
    script = f"for i in $(seq {times}); do wget -qO- {url} || echo -; done"
    return k("exec", pod, "--", "sh", "-c", script).stdout.split()


def fetch(url: str, timeout: float = 2) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode().strip()


def fetch_many(url: str, times: int) -> list[str]:
    out = []
    for _ in range(times):
        try:
            out.append(fetch(url))
        except (OSError, urllib.error.URLError):
            out.append("-")
    return out


def nslookup(k: Kubectl, pod: str, *args: str) -> tuple[int, str]:
    proc = k("exec", pod, "--", "nslookup", *args, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def answers(output: str) -> list[str]:
    """The addresses of busybox nslookup's answer section (not the server it asked)."""
    section = output.split("Name:", 1)[1] if "Name:" in output else ""
    return sorted(set(re.findall(r"Address(?: \d+)?:\s*(\d+\.\d+\.\d+\.\d+)", section)))


def resolves_to(k: Kubectl, pod: str, name: str, expected: list[str]) -> str:
    """Wait until `nslookup name` in `pod` answers exactly `expected`; returns its output.
    The exit code says nothing: busybox nslookup asks every search domain (A and AAAA) and
    exits 1 when any of them is NXDOMAIN, as it does against CoreDNS."""
    def check() -> str | None:
        _, out = nslookup(k, pod, name)
        return out if answers(out) == sorted(expected) else None
    return eventually(check, timeout=20, interval=0.5)


def nat_rules_naming(namespaced_name: str) -> list[str]:
    out = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True,
                         check=True).stdout
    return [line for line in out.splitlines()
            if re.search(rf'--comment "?{re.escape(namespaced_name)}[": ]', line)]


# --- the seeds' flow --------------------------------------------------------------------------


def debug_shell(cluster: Cluster, ns: str, typed: bytes) -> tuple[int, str]:
    """`kubectl run -i --rm --tty debug --image=busybox -- sh` on a terminal: wait for the
    prompt, type `typed`, return the exit code and everything the terminal showed."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(cluster.kubectl_args("-n", ns, "run", "-i", "--rm", "--tty", "debug",
                                                 "--image=busybox", "--", "sh"),
                            stdin=slave, stdout=slave, stderr=slave, env=cluster.kubectl_env(),
                            start_new_session=True)
    os.close(slave)
    try:
        out = read_until(master, lambda d: b"# " in d, timeout=60)
        os.write(master, typed)
        out += read_until(master, lambda d: proc.poll() is not None, timeout=60)
        return proc.wait(10), out.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        os.close(master)


def test_seeds_flow_only_summer_answers(cluster: Cluster, k: Kubectl) -> None:
    k.create([replicaset("spring", 2, {"release": "spring"}),
              replicaset("summer", 2, {"release": "summer"}),
              service("echo", {"release": "summer"}), client_pod()])
    wait_endpoints(k, "echo", 2)
    summer, spring = pod_names(k, "release=summer"), pod_names(k, "release=spring")
    assert len(summer) == 2 and len(spring) == 2
    wait_ready(k, *(f"pod/{n}" for n in spring), "pod/client")

    loop = b"for i in $(seq 20); do wget -qO- http://echo/; done; exit\n"
    code, out = debug_shell(cluster, k.ns, loop)
    assert code == 0, out
    served = [line.strip() for line in out.splitlines()
              if line.strip() in summer + spring or line.strip().startswith(("summer", "spring"))]
    assert len(served) == 20, out
    assert set(served) == set(summer), out
    assert 'pod "debug" deleted' in out
    eventually(lambda: k("get", "pod", "debug", check=False).returncode != 0, timeout=15)

    # Each name through the pod's resolver (search path, ndots:5), answered by summer.
    names = ("echo", f"echo.{k.ns}", f"echo.{k.ns}.svc.cluster.local")
    for name in names:
        assert set(fetch_in_pod(k, "client", f"http://{name}/", 4)) <= set(summer), name
    # And by nslookup, which applies the search path only to names without a dot: it asks
    # `echo.<ns>` as it is (outside cluster.local, so not answered here nor by CoreDNS).
    ip = cluster_ip(k, "echo")
    for name in ("echo", f"echo.{k.ns}.svc.cluster.local"):
        out = resolves_to(k, "client", name, [ip])
        assert f"Name:\techo.{k.ns}.svc.cluster.local" in out, out


# --- NodePort ---------------------------------------------------------------------------------


def test_node_port_on_localhost(cluster: Cluster, k: Kubectl) -> None:
    k.create([web_pod("np-web", {"app": "np"}), service("np", {"app": "np"}, type="NodePort")])
    wait_endpoints(k, "np", 1)
    node_port = int(k("get", "svc", "np", "-o",
                      "jsonpath={.spec.ports[0].nodePort}").stdout)
    url = f"http://127.0.0.1:{node_port}"
    assert eventually(lambda: fetch_many(url + "/", 1) == ["np-web"], timeout=10)

    script = Path(sys.executable).parent / "pocketkube"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "pocketkube.cli.main"]
    proc = subprocess.run([*cmd, "service", "np", "-n", k.ns, "--url", "--data-dir",
                           str(cluster.data_dir)], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (0, url + "\n"), proc.stderr
    assert fetch(proc.stdout.strip() + "/") == "np-web"


# --- readiness --------------------------------------------------------------------------------


def ready_condition(cluster: Cluster, ns: str, name: str) -> Obj:
    from kubernetes import client

    p = client.CoreV1Api(cluster.api_client()).read_namespaced_pod_status(name, ns)
    for c in p.status.conditions or []:
        if c.type == "Ready":
            return {"status": c.status, "lastTransitionTime": c.last_transition_time}
    return {}


def test_unready_pod_leaves_rotation(cluster: Cluster, k: Kubectl) -> None:
    labels = {"app": "rd"}
    k.create([web_pod("rd-a", labels, probe=True), web_pod("rd-b", labels, probe=True),
              service("rd", labels)])
    wait_endpoints(k, "rd", 2)
    url = f"http://{cluster_ip(k, 'rd')}/"
    eventually(lambda: set(fetch_many(url, 20)) == {"rd-a", "rd-b"}, timeout=10)

    k("exec", "rd-a", "--", "rm", "/tmp/ready")
    unready_at = gone_at = None
    deadline = time.monotonic() + 20
    while gone_at is None or unready_at is None:
        assert time.monotonic() < deadline, (unready_at, gone_at)
        answered = fetch_many(url, 20)
        now = time.monotonic()
        if gone_at is None and "rd-a" not in answered:
            assert answered == ["rd-b"] * 20, answered
            gone_at, gone_wall = now, time.time()
        condition = ready_condition(cluster, k.ns, "rd-a")
        if unready_at is None and condition.get("status") == "False":
            unready_at, turned = time.monotonic(), condition["lastTransitionTime"]
    assert gone_at - unready_at <= 2.0, f"left the rotation {gone_at - unready_at:.2f}s after " \
        "its Ready condition was seen False"
    # lastTransitionTime has whole seconds: allow the one it drops.
    assert gone_wall - turned.timestamp() <= 3.0, (gone_wall, turned)
    # Gone for good while unready.
    assert fetch_many(url, 20) == ["rd-b"] * 20

    k("exec", "rd-a", "--", "touch", "/tmp/ready")
    eventually(lambda: "rd-a" in fetch_many(url, 20), timeout=15)
    assert ready_condition(cluster, k.ns, "rd-a")["status"] == "True"


# --- deletion ---------------------------------------------------------------------------------


def test_deleted_service_loses_rules_and_name(cluster: Cluster, k: Kubectl) -> None:
    k.create([web_pod("gone-web", {"app": "gone"}), service("gone", {"app": "gone"}),
              client_pod()])
    wait_endpoints(k, "gone", 1)
    wait_ready(k, "pod/client")
    fqdn = f"gone.{k.ns}.svc.cluster.local"
    resolves_to(k, "client", fqdn, [cluster_ip(k, "gone")])
    key = f"{k.ns}/gone"
    assert eventually(lambda: nat_rules_naming(key), timeout=10)

    k("delete", "svc", "gone")
    eventually(lambda: not nat_rules_naming(key), timeout=10)

    def nxdomain() -> str | None:
        code, out = nslookup(k, "client", fqdn)
        return out if code != 0 and "NXDOMAIN" in out else None
    eventually(nxdomain, timeout=10, interval=0.5)


# --- headless StatefulSet ---------------------------------------------------------------------


def test_headless_statefulset(cluster: Cluster, k: Kubectl) -> None:
    labels = {"app": "sts"}
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
           "spec": {"serviceName": "sts", "replicas": 2, "podManagementPolicy": "Parallel",
                    "selector": {"matchLabels": labels},
                    "template": {"metadata": {"labels": labels},
                                 "spec": pod_spec(container("web", SERVE_HOSTNAME, ports=[
                                     {"name": "http", "containerPort": 8080}]))}}}
    k.create([service("sts", labels, clusterIP="None"), sts, client_pod()])
    ips = wait_endpoints(k, "sts", 2)
    wait_ready(k, "pod/client")
    zone = f"sts.{k.ns}.svc.cluster.local"
    resolves_to(k, "client", "sts", ips)
    resolves_to(k, "client", f"web-0.{zone}", [pod_ip(k, "web-0")])
    code, out = nslookup(k, "client", "-type=srv", f"_http._tcp.{zone}")
    assert code == 0, out
    # A headless Service's SRV records carry the endpoints' port, as CoreDNS answers them.
    targets = sorted(re.findall(r"\b\d+ \d+ 8080 (\S+?)\.?$", out, re.M))
    assert targets == [f"web-0.{zone}", f"web-1.{zone}"], out


# --- ExternalName -----------------------------------------------------------------------------


def test_external_name_is_a_cname(cluster: Cluster, k: Kubectl) -> None:
    target = f"target.{k.ns}.svc.cluster.local"
    k.create([service("target", None),
              {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "alias"},
               "spec": {"type": "ExternalName", "externalName": target}}, client_pod()])
    wait_ready(k, "pod/client")
    out = resolves_to(k, "client", f"alias.{k.ns}.svc.cluster.local", [cluster_ip(k, "target")])
    assert re.search(rf"alias\.{k.ns}\.svc\.cluster\.local\s+canonical name = "
                     rf"{re.escape(target)}", out), out


# --- LoadBalancer -----------------------------------------------------------------------------


def test_load_balancer_on_the_node_address(cluster: Cluster, k: Kubectl) -> None:
    k.create([web_pod("lb-web", {"app": "lb"}),
              service("lb", {"app": "lb"}, port=8081, type="LoadBalancer")])
    wait_endpoints(k, "lb", 1)
    address = node_ip(cluster)
    assert address

    def external_ip() -> str | None:
        cols = k("get", "svc", "lb", "--no-headers").stdout.split()
        # NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE
        return cols[3] if cols[3] == address else None
    eventually(external_ip, timeout=15)
    assert eventually(lambda: fetch_many(f"http://{address}:8081/", 1) == ["lb-web"],
                      timeout=10)


def health_check(port: str) -> tuple[int, Obj] | None:
    """(status, body) of the proxy's health check for a Local load balancer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
    except (OSError, urllib.error.URLError):
        return None


def test_local_load_balancer_health_check(k: Kubectl) -> None:
    k.create([web_pod("hc-web", {"app": "hc"}),
              service("hc", {"app": "hc"}, port=8082, type="LoadBalancer",
                      externalTrafficPolicy="Local")])
    wait_endpoints(k, "hc", 1)
    port = k("get", "svc", "hc", "-o", "jsonpath={.spec.healthCheckNodePort}").stdout
    status, body = eventually(lambda: (lambda r: r if r and r[0] == 200 else None)(
        health_check(port)), timeout=15)
    assert body == {"service": {"namespace": k.ns, "name": "hc"}, "localEndpoints": 1,
                    "serviceProxyHealthy": True}
    k("delete", "pod", "hc-web", "--wait=true")
    status, body = eventually(lambda: (lambda r: r if r and r[0] == 503 else None)(
        health_check(port)), timeout=15)
    assert body["localEndpoints"] == 0


# --- session affinity -------------------------------------------------------------------------


def test_session_affinity_client_ip(cluster: Cluster, k: Kubectl) -> None:
    labels = {"app": "sticky"}
    k.create([web_pod("sticky-a", labels), web_pod("sticky-b", labels), client_pod(),
              service("sticky", labels, sessionAffinity="ClientIP")])
    wait_endpoints(k, "sticky", 2)
    wait_ready(k, "pod/client")
    url = f"http://{cluster_ip(k, 'sticky')}/"
    seen: list[list[str]] = []

    def all_answered() -> list[str] | None:
        seen.append(fetch_in_pod(k, "client", url, 20))
        return seen[-1] if "-" not in seen[-1] else None
    try:
        answered = eventually(all_answered, timeout=15)
    except AssertionError:
        raise AssertionError(f"requests failed; the last answers: {seen[-2:]}") from None
    assert len(answered) == 20 and len(set(answered)) == 1, answered
    assert answered[0] in ("sticky-a", "sticky-b")
