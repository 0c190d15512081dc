"""The API server's proxy subresources on a real node, as users reach them: `kubectl get --raw`
and `kubectl proxy` to pods/{name[:port]}/proxy, services/{[scheme:]name:port}/proxy and
nodes/{name}/proxy. The backend is busybox httpd in a pod with a CGI script that echoes the
method, query and body; traffic goes only to this cluster's pod addresses and to 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Kubectl
from tests.support.node import node_cluster
from tests.support.terminal import read_until

pytestmark = pytest.mark.usefixtures("require_root")

ECHO_CGI = ('#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n"\n'
            'echo "$REQUEST_METHOD $QUERY_STRING"\ncat\n')
SERVE = ("mkdir -p /www/cgi-bin && hostname > /www/index.html && "
         "cat > /www/cgi-bin/echo <<'EOF'\n" + ECHO_CGI + "EOF\n"
         "chmod +x /www/cgi-bin/echo && exec httpd -f -p 8080 -h /www")
Obj = dict[str, Any]


def manifests() -> list[Obj]:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "web", "labels": {"app": "web"}},
           "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
               "name": "web", "image": "busybox", "command": ["sh", "-c", SERVE],
               "ports": [{"name": "http", "containerPort": 8080}]}]}}
    echo = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo"},
            "spec": {"selector": {"app": "web"},
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}
    empty = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "empty"},
             "spec": {"selector": {"app": "nothing"},
                      "ports": [{"name": "http", "port": 80}]}}
    return [pod, echo, empty]


@pytest.fixture(scope="module")
def k(require_root: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    with node_cluster(tmp_path_factory.mktemp("proxy")) as cluster:
        k = Kubectl(cluster, "default")
        k.create(manifests())
        k("wait", "--for=condition=Ready", "pod/web", "--timeout=60s")
        k("wait", "--for=jsonpath={.subsets[0].addresses[0].ip}", "endpoints/echo",
          "--timeout=30s")
        yield k


def raw(k: Kubectl, path: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return k.cluster.kubectl("get", "--raw", path, check=check)


PODS = "/api/v1/namespaces/default/pods"
SERVICES = "/api/v1/namespaces/default/services"


def test_pod_proxy_by_name_and_port(k: Kubectl) -> None:
    assert raw(k, f"{PODS}/web/proxy/").stdout == "web\n"  # the first container port
    assert raw(k, f"{PODS}/web:8080/proxy/index.html").stdout == "web\n"
    assert raw(k, f"{PODS}/http:web:8080/proxy/cgi-bin/echo?a=1&b=2").stdout == "GET a=1&b=2\n"
    assert 'invalid pod request "a:b:c:d"' in raw(k, f"{PODS}/a:b:c:d/proxy/", False).stderr
    assert 'pods "nope" not found' in raw(k, f"{PODS}/nope/proxy/", False).stderr


def test_service_proxy_by_port_name_and_number(k: Kubectl, tmp_path: Path) -> None:
    assert raw(k, f"{SERVICES}/echo:http/proxy/").stdout == "web\n"
    assert raw(k, f"{SERVICES}/http:echo:80/proxy/index.html").stdout == "web\n"
    body = tmp_path / "body"
    body.write_text("hello\n")
    out = k.cluster.kubectl("create", "--raw", f"{SERVICES}/echo:80/proxy/cgi-bin/echo?x=1",
                            "-f", str(body)).stdout
    # kubectl streams a file chunked, as kube-apiserver passes it on; busybox's CGI shows
    # the chunk framing, so only the method, query and payload are compared.
    assert out.startswith("POST x=1\n") and "hello" in out
    err = raw(k, f"{SERVICES}/echo:81/proxy/", False).stderr
    assert 'ServiceUnavailable' in err and 'no service port 81 found for service "echo"' in err
    err = raw(k, f"{SERVICES}/empty:http/proxy/", False).stderr
    assert 'no endpoints available for service "empty"' in err
    # A named Service port must be named: kube matches endpoint ports by name.
    assert 'no endpoints available for service "echo"' in raw(
        k, f"{SERVICES}/echo/proxy/", False).stderr


def test_node_proxy_reaches_the_node_agent(k: Kubectl) -> None:
    nodes = json.loads(k.cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    node = nodes[0]["metadata"]["name"]
    assert raw(k, f"/api/v1/nodes/{node}/proxy/healthz").stdout == "ok"
    listing = raw(k, f"/api/v1/nodes/{node}/proxy/logs/").stdout  # the node's /var/log
    assert listing.startswith("<pre>\n") and listing.endswith("</pre>\n")
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in Path("/var/log").iterdir())
    assert [line.split(">")[1].split("<")[0] for line in listing.splitlines()[1:-1]] == names


def test_every_method_through_kubectl_proxy(k: Kubectl) -> None:
    proc = subprocess.Popen(k.cluster.kubectl_args("proxy", "--port=0"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=k.cluster.kubectl_env())
    try:
        assert proc.stdout is not None
        banner = read_until(proc.stdout.fileno(), lambda d: b"\n" in d, timeout=30).decode()
        port = re.search(r"127\.0\.0\.1:(\d+)", banner)
        assert port, banner
        base = f"http://127.0.0.1:{port.group(1)}{SERVICES}/echo:http/proxy/cgi-bin/echo"
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
            req = urllib.request.Request(f"{base}?m={method}", method=method,
                                         data=f"body of {method}".encode())
            with urllib.request.urlopen(req, timeout=10) as resp:
                assert resp.status == 200
                assert resp.read().decode() == f"{method} m={method}\nbody of {method}"
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://127.0.0.1:{port.group(1)}{SERVICES}/nope/proxy/",
                                   timeout=10)
        assert e.value.code == 404
    finally:
        proc.terminate()
        proc.wait(10)

