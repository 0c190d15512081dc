"""/openapi/v2 against the real kubectl: client-side validation of `kind: List` manifests (which
kubectl checks against the v2 definitions), `explain` over v3 and v2, and single objects still
validated by the server."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import Cluster

KUBECTL_ACCEPT = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
STOP = "; if you choose to ignore these errors, turn validation off with --validate=false\n"
_names = itertools.count()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(Path(tmp_path_factory.mktemp("openapi-v2")))
    c.start()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def ns(cluster: Cluster) -> str:
    name = f"v2-{next(_names)}"
    cluster.kubectl("create", "namespace", name)
    return name


def _cm(name: str, **fields: object) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, **fields}


def _list(*items: dict) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": list(items)})


def _requests(stderr: str) -> list[str]:
    """`METHOD URL STATUS` of each request in kubectl's -v=6 log."""
    out = []
    for line in stderr.splitlines():
        if "round_trippers.go" in line and "https://" in line:
            method, url, code = line.split("] ", 1)[1].split()[:3]
            out.append(f"{method} {url.split('//', 1)[1].split('/', 1)[1]} {code}")
    return out


def test_apply_list_is_validated_client_side_and_creates_every_item(cluster: Cluster, ns: str):
    proc = cluster.kubectl("-n", ns, "apply", "-f", "-", "-v=6",
                           input=_list(_cm("l1", data={"a": "1"}), _cm("l2", data={"b": "2"})))
    assert proc.stdout == "configmap/l1 created\nconfigmap/l2 created\n"
    requests = _requests(proc.stderr)
    assert "GET openapi/v2?timeout=32s 200" in requests
    assert f"POST api/v1/namespaces/{ns}/configmaps?fieldManager=kubectl-client-side-apply" \
           "&fieldValidation=Strict 201" in requests
    got = cluster.kubectl("-n", ns, "get", "configmaps", "l1", "l2", "-o", "json").stdout
    assert [(i["metadata"]["name"], i["data"]) for i in json.loads(got)["items"]] == [
        ("l1", {"a": "1"}), ("l2", {"b": "2"})]


def test_list_item_with_unknown_field_is_rejected_by_kubectl(cluster: Cluster, ns: str):
    proc = cluster.kubectl("-n", ns, "apply", "-f", "-", check=False,
                           input=_list(_cm("ok"), _cm("typo", dataa={"a": "1"})))
    assert proc.returncode == 1
    assert proc.stderr == (
        'error: error validating "STDIN": error validating data: ValidationError(ConfigMap): '
        'unknown field "dataa" in io.k8s.api.core.v1.ConfigMap' + STOP)
    # Validation runs before any write: neither item was created (kube-root-ca.crt is the
    # controller manager's, and may or may not be there yet).
    names = set(cluster.kubectl("-n", ns, "get", "configmaps", "-o", "name").stdout.split())
    assert names - {"configmap/kube-root-ca.crt"} == set()


def test_list_validation_reports_every_error(cluster: Cluster, ns: str):
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                  "spec": {"replicas": "two",
                           "template": {"spec": {"containers": [{"image": "nginx"}]}}}}
    proc = cluster.kubectl("-n", ns, "apply", "-f", "-", check=False, input=_list(
        _cm("c", metadata={"name": "c", "nam": "x"}, immutable="yes"), deployment))
    assert proc.returncode == 1
    assert proc.stderr == (
        'error: error validating "STDIN": error validating data: ['
        'ValidationError(ConfigMap.immutable): invalid type for '
        'io.k8s.api.core.v1.ConfigMap.immutable: got "string", expected "boolean", '
        'ValidationError(ConfigMap.metadata): unknown field "nam" in '
        'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta, '
        'ValidationError(Deployment.spec.replicas): invalid type for '
        'io.k8s.api.apps.v1.DeploymentSpec.replicas: got "string", expected "integer", '
        'ValidationError(Deployment.spec.template.spec.containers[0]): missing required field '
        '"name" in io.k8s.api.core.v1.Container, '
        'ValidationError(Deployment.spec): missing required field "selector" in '
        'io.k8s.api.apps.v1.DeploymentSpec]' + STOP)


def test_explain_reads_v3_and_v2(cluster: Cluster):
    v3 = cluster.kubectl("explain", "configmap.data", "-v=6")
    assert "FIELD: data <map[string]string>" in v3.stdout
    assert not any("openapi/v2" in r for r in _requests(v3.stderr))
    v2 = cluster.kubectl("explain", "deployment.spec.strategy", "--output=plaintext-openapiv2")
    assert v2.stdout.startswith("KIND:     Deployment\nVERSION:  apps/v1\n\n"
                                "RESOURCE: strategy <Object>\n")
    assert "   rollingUpdate\t<Object>\n" in v2.stdout
    ports = cluster.kubectl("explain", "pods.spec.containers.ports",
                            "--output=plaintext-openapiv2").stdout
    assert "   containerPort\t<integer> -required-\n" in ports


def test_single_object_is_still_validated_by_the_server(cluster: Cluster, ns: str):
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                  "spec": {"selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}},
                                        "spec": {"containers": [{"name": "web",
                                                                 "image": "nginx"}]}}}}
    proc = cluster.kubectl("-n", ns, "apply", "-f", "-", "-v=6", input=json.dumps(deployment))
    assert proc.stdout == "deployment.apps/web created\n"
    requests = _requests(proc.stderr)
    assert not any("openapi/v2" in r for r in requests)
    assert f"POST apis/apps/v1/namespaces/{ns}/deployments?fieldManager=" \
           "kubectl-client-side-apply&fieldValidation=Strict 201" in requests


def test_v2_content_negotiation(cluster: Cluster):
    status, headers, proto = cluster.request("GET", "/openapi/v2",
                                             headers={"Accept": KUBECTL_ACCEPT})
    assert status == 200
    assert headers["content-type"] == PROTOBUF
    assert headers["vary"] == "Accept"
    assert proto[:5] == b"\x0a\x032.0"  # Document.swagger, field 1
    status, json_headers, body = cluster.request("GET", "/openapi/v2",
                                                 headers={"Accept": "application/json"})
    assert status == 200 and json_headers["content-type"] == "application/json"
    doc = json.loads(body)
    assert doc["swagger"] == "2.0"
    assert doc["definitions"]["io.k8s.api.core.v1.ConfigMap"][
        "x-kubernetes-group-version-kind"] == [{"group": "", "kind": "ConfigMap",
                                                 "version": "v1"}]
    etag = f'"{hashlib.sha512(body).hexdigest().upper()}"'
    assert headers["etag"] == json_headers["etag"] == etag
    status, _, body = cluster.request("GET", "/openapi/v2", headers={
        "Accept": KUBECTL_ACCEPT, "If-None-Match": etag})
    assert (status, body) == (304, b"")
    status, _, body = cluster.request("GET", "/openapi/v2", headers={"Accept": "text/html"})
    assert (status, body) == (406, b"")
