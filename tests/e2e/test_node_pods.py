"""Pods on a real node as a Kubernetes user meets them: `pocketkube server --node-agent` runs
them as runc containers and the real kubectl talks to them through the API server.

Covered: the two-container pod of the hands-on notes (an httpd server and a second container
fetching from it over 127.0.0.1, READY 2/2, the pod IP in the node's range, `exec`, `logs -c`,
`logs -f`, `exec -it` on a terminal, `delete` leaving no container behind); `run -i --rm`;
`cp` both ways; `port-forward`; CrashLoopBackOff with its growing back-off; OOMKilled; env
from a ConfigMap and the downward API; a configMap volume following an applied change; and a
Deployment rolling out (then out again with a changed template) with its Service's Endpoints
listing the pods that serve.

The node agent acts on its own time, so state changes are awaited by polling the API.
"""

from __future__ import annotations

import ipaddress
import json
import os
import pty
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Kubectl
from tests.support.cluster import Cluster
from tests.support.node import node_cluster, ready_node
from tests.support.terminal import read_until
from tests.support.waiting import eventually

Obj = dict[str, Any]




pytestmark = pytest.mark.usefixtures("require_root")


@pytest.fixture(scope="module")
def cluster(require_root: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with node_cluster(tmp_path_factory.mktemp("node")) as c:
        yield c


# --- helpers ----------------------------------------------------------------------------------




def pod(name: str, *containers: Obj, **spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 2, **spec,
                     "containers": list(containers)}}


def busybox(name: str, script: str, **fields: Any) -> Obj:
    return {"name": name, "image": "busybox", "command": ["sh", "-c", script], **fields}


HTTPD = "mkdir -p /www && echo \"$PAGE\" > /www/index.html && exec httpd -f -p 8080 -h /www"


def httpd(name: str, page: str) -> Obj:
    return busybox(name, HTTPD, env=[{"name": "PAGE", "value": page}],
                   ports=[{"containerPort": 8080}])


def get_pod(k: Kubectl, name: str) -> Obj | None:
    proc = k("get", "pod", name, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def wait_pod(k: Kubectl, name: str, check: Callable[[Obj], Any], timeout: float = 30) -> Obj:
    return eventually(lambda: (lambda p: p if p is not None and check(p) else None)(
        get_pod(k, name)), timeout=timeout)


def wait_ready(k: Kubectl, *names: str) -> None:
    k("wait", "--for=condition=Ready", *(f"pod/{n}" for n in names), "--timeout=30s")


def status_of(p: Obj, container: str) -> Obj:
    for s in p.get("status", {}).get("containerStatuses") or []:
        if s["name"] == container:
            return s
    return {}


def columns(k: Kubectl, name: str) -> list[str]:
    """`kubectl get pod NAME` as its columns: NAME READY STATUS RESTARTS AGE."""
    return k("get", "pod", name, "--no-headers").stdout.split()


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def node_processes(needle: str) -> list[str]:
    """Command lines of this machine's processes that mention `needle`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmdline:
            found.append(cmdline)
    return found


def runc_ids(cluster: Cluster) -> str:
    """`runc list` of the node's containers."""
    root = cluster.data_dir / "agent" / "runc" / "runc"
    return subprocess.run(["runc", "--root", str(root), "list", "-q"], capture_output=True,
                          text=True, check=True).stdout


# --- the two-container pod --------------------------------------------------------------------


PROXY = ("i=0; while :; do i=$((i+1)); echo \"tick $i $(wget -qO- http://127.0.0.1:8080/)\"; "
         "sleep 0.3; done")


def test_two_container_pod(cluster: Cluster, k: Kubectl) -> None:
    k.create(pod("simple-echo", httpd("echo", "hello from echo"), busybox("proxy", PROXY)))
    wait_ready(k, "simple-echo")
    assert columns(k, "simple-echo")[1:4] == ["2/2", "Running", "0"]
    p = get_pod(k, "simple-echo")
    assert p is not None
    node = ready_node(cluster)
    assert node is not None and p["spec"]["nodeName"] == node["metadata"]["name"]
    ip = p["status"]["podIP"]
    assert p["status"]["podIPs"] == [{"ip": ip}]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(node["spec"]["podCIDR"])

    # Both containers share the pod's address: the proxy reaches the server on 127.0.0.1.
    page = k("exec", "simple-echo", "-c", "proxy", "--", "wget", "-qO-", "http://127.0.0.1:8080/")
    assert page.stdout == "hello from echo\n"
    addrs = k("exec", "simple-echo", "-c", "echo", "--", "ip", "-4", "-o", "addr").stdout
    assert f"inet {ip}/" in addrs

    # Without -c kubectl picks the first container and says so.
    first = k("logs", "simple-echo")
    assert 'Defaulted container "echo" out of: echo, proxy' in first.stderr
    logs = eventually(lambda: k("logs", "simple-echo", "-c", "proxy").stdout, timeout=10)
    assert logs.startswith("tick 1 hello from echo\n")
    last = max(int(m) for m in re.findall(r"^tick (\d+) ", logs, re.M))

    # logs -f streams lines written after it started; stop it after a few.
    follow = subprocess.Popen(cluster.kubectl_args("-n", k.ns, "logs", "-f", "simple-echo",
                                                   "-c", "proxy"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=cluster.kubectl_env())
    try:
        assert follow.stdout is not None
        fresh = re.compile(rb"^tick (\d+) hello from echo$", re.M)
        out = read_until(follow.stdout.fileno(), lambda d: sum(
            int(n) > last for n in fresh.findall(d)) >= 3)
        counts = [int(n) for n in fresh.findall(out)]
        assert counts == list(range(1, counts[-1] + 1))
    finally:
        stop(follow)

    # exec without a terminal: stdin in, stdout and stderr apart, the exit code out.
    proc = k("exec", "-i", "simple-echo", "-c", "proxy", "--", "sh", "-c",
             "tr a-z A-Z; echo oops >&2; exit 3", input="piped in\n", check=False)
    assert (proc.returncode, proc.stdout) == (3, "PIPED IN\n")
    assert proc.stderr == "oops\ncommand terminated with exit code 3\n"

    # exec -it on a terminal: the remote shell's output and its exit code.
    code, out = exec_tty(cluster, k.ns, "simple-echo", "proxy", b"echo hi; exit 4\n")
    assert code == 4, out
    assert b"hi\r\n" in out

    ids = [status_of(p, c)["containerID"].split("://", 1)[1] for c in ("echo", "proxy")]
    assert all(i in runc_ids(cluster) for i in ids)
    assert all(node_processes(i) for i in ids)
    k("delete", "pod", "simple-echo", "--timeout=30s")
    assert k("get", "pod", "simple-echo", check=False).returncode != 0
    # Deleted means stopped: no process of either container (nor its conmon) is left, and the
    # stopped containers are then removed from runc too.
    assert not [cmd for i in ids for cmd in node_processes(i)]
    eventually(lambda: not [i for i in ids if i in runc_ids(cluster)], timeout=10)


def exec_tty(cluster: Cluster, ns: str, name: str, container: str,
             typed: bytes) -> tuple[int, bytes]:
    """`kubectl exec -it NAME -c CONTAINER -- sh` on a pseudo-terminal."""
    return on_tty(cluster.kubectl_args("-n", ns, "exec", "-it", name, "-c", container, "--",
                                       "sh"), cluster.kubectl_env(), typed)


def on_tty(argv: list[str], env: dict[str, str], typed: bytes) -> tuple[int, bytes]:
    """Run `argv` on a pseudo-terminal: wait for a shell prompt, type `typed`, return the exit
    code and everything printed."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                            start_new_session=True)
    os.close(slave)
    try:
        out = read_until(master, lambda d: b"# " in d)
        os.write(master, typed)
        out += read_until(master, lambda d: proc.poll() is not None, timeout=20)
        return proc.wait(10), out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        os.close(master)


# --- kubectl run / cp / port-forward ----------------------------------------------------------


def test_run_interactive_and_removed(cluster: Cluster, k: Kubectl) -> None:
    proc = k("run", "once", "-i", "--rm", "--restart=Never", "--image=busybox", "--",
             "sh", "-c", "echo hello from $(hostname)", input="")
    assert "hello from once\n" in proc.stdout
    assert 'pod "once" deleted' in proc.stdout
    assert k("get", "pod", "once", check=False).returncode != 0

    # With a terminal (-it): a shell prompt, typed commands, the exit code, then the pod goes.
    code, out = on_tty(cluster.kubectl_args(
        "-n", k.ns, "run", "shell", "-i", "--rm", "--tty", "--restart=Never", "--image=busybox",
        "--", "sh"), cluster.kubectl_env(), b"echo hi $((6*7)); exit 5\n")
    assert code == 5, out
    assert b"hi 42\r\n" in out and b'pod "shell" deleted' in out
    assert k("get", "pod", "shell", check=False).returncode != 0


def test_copy_both_ways(k: Kubectl, tmp_path: Path) -> None:
    k.create(pod("files", busybox("box", "exec sleep 3600")))
    wait_ready(k, "files")
    local = tmp_path / "notes.txt"
    local.write_text("line one\nline two\n")
    k("cp", str(local), "files:/tmp/notes.txt", "-c", "box")
    assert k("exec", "files", "--", "cat", "/tmp/notes.txt").stdout == "line one\nline two\n"
    blob = tmp_path / "blob.bin"
    blob.write_bytes(os.urandom(3 << 20))
    k("cp", str(blob), "files:/tmp/blob.bin")
    k("cp", "files:/tmp/blob.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == blob.read_bytes()

    k("exec", "files", "--", "sh", "-c", "mkdir -p /data/sub && echo made inside > "
      "/data/sub/out.txt && echo top > /data/top.txt")
    k("cp", "files:/data", str(tmp_path / "data"))
    assert (tmp_path / "data" / "sub" / "out.txt").read_text() == "made inside\n"
    assert (tmp_path / "data" / "top.txt").read_text() == "top\n"


def test_port_forward(cluster: Cluster, k: Kubectl) -> None:
    k.create(pod("web", httpd("web", "forwarded page")))
    wait_ready(k, "web")
    proc = subprocess.Popen(cluster.kubectl_args("-n", k.ns, "port-forward", "pod/web", ":8080"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=cluster.kubectl_env())
    try:
        assert proc.stdout is not None
        out = read_until(proc.stdout.fileno(),
                         lambda d: re.search(rb"Forwarding from 127\.0\.0\.1:(\d+) -> 8080", d))
        match = re.search(rb"Forwarding from 127\.0\.0\.1:(\d+) -> 8080", out)
        assert match
        port = int(match.group(1))
        for _ in range(2):  # one connection after another over the same tunnel
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
                assert resp.status == 200
                assert resp.read() == b"forwarded page\n"
    finally:
        stop(proc)


# --- restarts and kills -----------------------------------------------------------------------


def test_crash_loop_backs_off(k: Kubectl) -> None:
    k.create(pod("crash", busybox("crash", "echo crashing; exit 3")))
    seen: dict[int, float] = {}
    messages: set[str] = set()

    def third_restart() -> Obj | None:
        p = get_pod(k, "crash")
        if p is None:
            return None
        s = status_of(p, "crash")
        seen.setdefault(s.get("restartCount", 0), time.monotonic())
        waiting = s.get("state", {}).get("waiting", {})
        if waiting.get("reason") == "CrashLoopBackOff":
            messages.add(waiting.get("message", ""))
        return p if s.get("restartCount", 0) >= 3 else None

    p = eventually(third_restart, timeout=45, interval=0.3)
    uid = p["metadata"]["uid"]
    # The kubelet's back-off: the first restart at once, then 10 s, then 20 s.
    assert 1 in seen and 2 in seen and 3 in seen, seen
    assert 7 <= seen[2] - seen[1] <= 14, seen
    assert 16 <= seen[3] - seen[2] <= 25, seen
    prefix = f"restarting failed container=crash pod=crash_{k.ns}({uid})"
    assert f"back-off 10s {prefix}" in messages and f"back-off 20s {prefix}" in messages, messages

    last = status_of(p, "crash")["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (3, "Error")
    assert k("logs", "crash", "--previous").stdout == "crashing\n"
    wait_pod(k, "crash", lambda p: status_of(p, "crash").get("state", {}).get("waiting", {})
             .get("reason") == "CrashLoopBackOff")
    assert columns(k, "crash")[1:3] == ["0/1", "CrashLoopBackOff"]
    described = k("describe", "pod", "crash").stdout
    assert re.search(r"Warning\s+BackOff\s+.*Back-off restarting failed container crash in pod "
                     rf"crash_{k.ns}\({uid}\)", described), described
    assert re.search(r"Restart Count:\s+3\b", described), described


def test_memory_limit_kills_with_oom(k: Kubectl) -> None:
    hog = busybox("hog", "head -c 256m /dev/zero | tail",
                  resources={"limits": {"memory": "16Mi"}})
    k.create(pod("hog", hog, restartPolicy="Never"))
    p = wait_pod(k, "hog", lambda p: p["status"].get("phase") == "Failed")
    term = status_of(p, "hog")["state"]["terminated"]
    assert (term["reason"], term["exitCode"]) == ("OOMKilled", 137), term
    assert columns(k, "hog")[1:3] == ["0/1", "OOMKilled"]


# --- configuration ----------------------------------------------------------------------------


def configmap(name: str, data: dict[str, str]) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def test_env_from_configmap_and_downward_api(k: Kubectl) -> None:
    k.create(configmap("settings", {"GREETING": "hello", "MODE": "fast"}))
    app = busybox("app", "exec sleep 3600", env=[
        {"name": "FROM_KEY", "valueFrom": {"configMapKeyRef": {"name": "settings",
                                                               "key": "GREETING"}}},
        {"name": "MY_POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "MY_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "MY_NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "COMBINED", "value": "$(FROM_KEY)-$(MY_POD)"},
    ], envFrom=[{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}])
    k.create(pod("envs", app))
    wait_ready(k, "envs")
    p = get_pod(k, "envs")
    assert p is not None
    env = dict(line.split("=", 1) for line in k("exec", "envs", "--", "env").stdout.splitlines())
    assert env["FROM_KEY"] == "hello"
    assert (env["CFG_GREETING"], env["CFG_MODE"]) == ("hello", "fast")
    assert (env["MY_POD"], env["MY_NS"]) == ("envs", k.ns)
    assert env["MY_IP"] == p["status"]["podIP"]
    assert env["MY_NODE"] == p["spec"]["nodeName"]
    assert env["COMBINED"] == "hello-envs"


def test_configmap_volume_follows_changes(k: Kubectl) -> None:
    k.apply(configmap("web-config", {"message": "version one"}))
    reader = busybox("reader", "exec sleep 3600",
                     volumeMounts=[{"name": "cfg", "mountPath": "/etc/web"}])
    k.create(pod("reader", reader, volumes=[{"name": "cfg",
                                              "configMap": {"name": "web-config"}}]))
    wait_ready(k, "reader")

    def message() -> str:
        return k("exec", "reader", "--", "cat", "/etc/web/message").stdout

    assert message() == "version one"
    k.apply(configmap("web-config", {"message": "version two", "extra": "added"}))
    eventually(lambda: message() == "version two", timeout=30, interval=0.5)
    assert k("exec", "reader", "--", "cat", "/etc/web/extra").stdout == "added"


# --- workloads --------------------------------------------------------------------------------


def test_deployment_rolls_out_with_endpoints(k: Kubectl) -> None:
    labels = {"app": "web"}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"terminationGracePeriodSeconds": 2,
                                       "containers": [httpd("web", "replica")]}}}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}}
    k.apply([deployment, service])
    k("rollout", "status", "deployment/web", "--timeout=60s")

    rs = json.loads(k("get", "rs", "-l", "app=web", "-o", "json").stdout)["items"]
    assert len(rs) == 1 and rs[0]["status"].get("readyReplicas") == 2
    pods = json.loads(k("get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
    ips = sorted(p["status"]["podIP"] for p in pods)
    assert len(set(ips)) == 2

    def addresses(expected: list[str]) -> list[str] | None:
        subsets = k.json("endpoints", "web").get("subsets") or []
        found = sorted(a["ip"] for s in subsets for a in s.get("addresses") or [])
        return found if found == expected else None

    assert eventually(lambda: addresses(ips), timeout=20)
    # Pods reach each other's addresses on the pod network.
    first = pods[0]["metadata"]["name"]
    page = k("exec", first, "--", "wget", "-qO-", f"http://{pods[1]['status']['podIP']}:8080/")
    assert page.stdout == "replica\n"

    # A changed template rolls out new pods; the old ones go and the Endpoints follow.
    k("set", "env", "deployment/web", "-c", "web", "PAGE=second")
    k("rollout", "status", "deployment/web", "--timeout=60s")
    names = {p["metadata"]["name"] for p in pods}
    fresh = eventually(lambda: (lambda items: items if len(items) == 2 and not names & {
        p["metadata"]["name"] for p in items} else None)(json.loads(k(
            "get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]), timeout=20)
    new_ips = sorted(p["status"]["podIP"] for p in fresh)
    assert eventually(lambda: addresses(new_ips), timeout=20)
    page = k("exec", fresh[0]["metadata"]["name"], "--", "wget", "-qO-",
             f"http://{fresh[1]['status']['podIP']}:8080/")
    assert page.stdout == "second\n"
