"""kubectl's create generators (protobuf request bodies), create token, and expose."""

from __future__ import annotations

import base64
import ipaddress
import json

from kubernetes import client

from tests.e2e.conftest import Kubectl, unique_name
from tests.e2e.manifests import deployment
from tests.support.cluster import Cluster

SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")


def test_create_deployment(k: Kubectl) -> None:
    out = k("create", "deployment", "gen", "--image=nginx:1.25", "--replicas=2", "--port=80")
    assert out.stdout == "deployment.apps/gen created\n"
    d = k.json("deployment", "gen")
    assert d["spec"]["replicas"] == 2
    assert d["spec"]["selector"] == {"matchLabels": {"app": "gen"}}
    c = d["spec"]["template"]["spec"]["containers"][0]
    assert (c["name"], c["image"]) == ("nginx", "nginx:1.25")
    assert c["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert d["spec"]["strategy"]["type"] == "RollingUpdate"
    managers = [m["manager"] for m in d["metadata"]["managedFields"]]
    assert "kubectl-create" in managers


def test_create_configmap_and_secret(k: Kubectl) -> None:
    assert k("create", "configmap", "cm1", "--from-literal=a=1",
             "--from-literal=b=two words").stdout == "configmap/cm1 created\n"
    assert k.json("configmap", "cm1")["data"] == {"a": "1", "b": "two words"}
    assert k("create", "secret", "generic", "s1", "--from-literal=pw=s3cret").stdout == \
        "secret/s1 created\n"
    s = k.json("secret", "s1")
    assert s["type"] == "Opaque"
    assert base64.b64decode(s["data"]["pw"]) == b"s3cret"
    assert k("create", "secret", "generic", "s2", "--type=kubernetes.io/basic-auth",
             "--from-literal=username=u", "--from-literal=password=p").stdout == \
        "secret/s2 created\n"
    assert k.json("secret", "s2")["type"] == "kubernetes.io/basic-auth"


def test_create_namespace_job_serviceaccount_service(cluster: Cluster, k: Kubectl) -> None:
    name = unique_name("made")
    assert cluster.kubectl("create", "namespace", name).stdout == f"namespace/{name} created\n"
    assert cluster.kubectl("get", "ns", name, "-o", "jsonpath={.status.phase}").stdout == "Active"

    assert k("create", "job", "j1", "--image=busybox", "--", "echo", "hi").stdout == \
        "job.batch/j1 created\n"
    job = k.json("job", "j1")
    pod_spec = job["spec"]["template"]["spec"]
    assert pod_spec["containers"][0]["command"] == ["echo", "hi"]
    assert pod_spec["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] == 6
    assert job["spec"]["completions"] == 1

    assert k("create", "serviceaccount", "sa1").stdout == "serviceaccount/sa1 created\n"
    assert k.json("serviceaccount", "sa1")["metadata"]["name"] == "sa1"

    assert k("create", "service", "clusterip", "svc1", "--tcp=80:8080").stdout == \
        "service/svc1 created\n"
    svc = k.json("service", "svc1")
    assert svc["spec"]["type"] == "ClusterIP"
    assert ipaddress.ip_address(svc["spec"]["clusterIP"]) in SERVICE_CIDR
    assert svc["spec"]["ports"] == [{"name": "80-8080", "port": 80, "protocol": "TCP",
                                     "targetPort": 8080}]
    assert svc["spec"]["selector"] == {"app": "svc1"}
    headless = k("create", "service", "clusterip", "svc2", "--clusterip=None", "--tcp=80:80")
    assert headless.stdout == "service/svc2 created\n"
    assert k.json("service", "svc2")["spec"]["clusterIP"] == "None"


def test_create_token_authenticates_the_python_client(cluster: Cluster, k: Kubectl) -> None:
    # The default ServiceAccount is created by a controller shortly after the namespace.
    k("wait", "--for=create", "serviceaccount/default", "--timeout=30s")
    token = k("create", "token", "default").stdout.strip()
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["sub"] == f"system:serviceaccount:{k.ns}:default"
    assert claims["kubernetes.io"]["namespace"] == k.ns
    assert claims["exp"] - claims["iat"] == 3600

    k("run", "tp", "--image=busybox", "--restart=Never")
    with cluster.token_client(token) as api:
        pods = client.CoreV1Api(api).list_namespaced_pod(k.ns)
    assert [p.metadata.name for p in pods.items] == ["tp"]

    with cluster.token_client(token + "x") as api:
        try:
            client.CoreV1Api(api).list_namespaced_pod(k.ns)
        except client.ApiException as e:
            assert e.status == 401
        else:
            raise AssertionError("a token with a bad signature was accepted")


def test_expose_deployment(k: Kubectl) -> None:
    d = deployment("web")
    d["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 8080}]
    k.apply(d)
    assert k("expose", "deployment", "web", "--port=80", "--target-port=8080").stdout == \
        "service/web exposed\n"
    svc = k.json("service", "web")
    assert ipaddress.ip_address(svc["spec"]["clusterIP"]) in SERVICE_CIDR
    assert svc["spec"]["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 8080}]
    assert svc["spec"]["selector"] == {"app": "web"}
    assert svc["metadata"]["labels"] == {"app": "web"}
    row = k("get", "service", "web").stdout.splitlines()[1].split()
    assert row[:5] == ["web", "ClusterIP", svc["spec"]["clusterIP"], "<none>", "80/TCP"]
