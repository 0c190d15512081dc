"""Errors as kubectl prints them: the server's Status objects rendered by kubectl's own error
handling, plus the raw HTTP answers for what kubectl cannot send."""

from __future__ import annotations

import json

import yaml

from tests.e2e.conftest import Kubectl, unique_name
from tests.e2e.manifests import configmap, deployment
from tests.support.cluster import Cluster

JSON = {"Content-Type": "application/json"}


def status_of(body: bytes) -> dict:
    status = json.loads(body)
    assert status["kind"] == "Status"
    assert status["status"] == "Failure"
    return status


def test_not_found(k: Kubectl) -> None:
    proc = k.fails("get", "deployment", "nope")
    assert proc.returncode == 1
    assert proc.stderr == 'Error from server (NotFound): deployments.apps "nope" not found\n'
    proc = k.fails("get", "pod", "nope")
    assert proc.stderr == 'Error from server (NotFound): pods "nope" not found\n'


def test_already_exists(k: Kubectl, manifest_file) -> None:
    path = manifest_file("deploy.json", deployment("web"))
    assert k("create", "-f", str(path)).stdout == "deployment.apps/web created\n"
    proc = k.fails("create", "-f", str(path))
    assert proc.stderr == (f'Error from server (AlreadyExists): error when creating "{path}": '
                           'deployments.apps "web" already exists\n')


def test_invalid_object_lists_each_cause(k: Kubectl) -> None:
    d = deployment("bad", replicas=-1)
    del d["spec"]["template"]["spec"]["containers"][0]["image"]
    proc = k.fails("create", "-f", "-", input=json.dumps(d))
    assert [line.rstrip() for line in proc.stderr.splitlines()] == [
        'The Deployment "bad" is invalid:',
        "* spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        "* spec.template.spec.containers[0].image: Required value",
    ]
    # One cause is printed on one line.
    proc = k.fails("apply", "-f", "-", input=json.dumps(deployment("bad", replicas=-1)))
    assert proc.stderr == ('The Deployment "bad" is invalid: spec.replicas: Invalid value: -1: '
                           'must be greater than or equal to 0\n')
    proc = k.fails("get", "deployment", "bad")
    assert "NotFound" in proc.stderr


def test_bad_yaml_and_malformed_body(cluster: Cluster, k: Kubectl) -> None:
    proc = k.fails("apply", "-f", "-",
                   input="apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [x\n")
    assert proc.stderr.startswith(
        "error: error parsing STDIN: error converting YAML to JSON: yaml: line ")
    status, _, body = cluster.request("POST", f"/api/v1/namespaces/{k.ns}/configmaps",
                                      body='{"apiVersion":"v1","kind":"ConfigMap",',
                                      headers=JSON)
    s = status_of(body)
    assert (status, s["reason"], s["code"]) == (400, "BadRequest", 400)
    assert s["message"].startswith("the object provided is unrecognized")


def test_body_not_matching_the_url(cluster: Cluster, k: Kubectl) -> None:
    url = f"/api/v1/namespaces/{k.ns}/configmaps"
    other_ns = configmap("a")
    other_ns["metadata"]["namespace"] = "elsewhere"
    status, _, body = cluster.request("POST", url, json.dumps(other_ns), JSON)
    s = status_of(body)
    assert (status, s["reason"]) == (400, "BadRequest")
    assert s["message"] == ("the namespace of the provided object does not match the namespace "
                            "sent on the request")

    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a"}}
    status, _, body = cluster.request("POST", url, json.dumps(secret), JSON)
    s = status_of(body)
    assert (status, s["reason"]) == (400, "BadRequest")
    assert "Secret" in s["message"] and "ConfigMap" in s["message"]

    k.apply(configmap("a"))
    status, _, body = cluster.request("PUT", f"{url}/a", json.dumps(configmap("b")), JSON)
    s = status_of(body)
    assert (status, s["reason"]) == (400, "BadRequest")
    assert s["message"] == "the name of the object (b) does not match the name on the URL (a)"

    # kubectl itself refuses a manifest whose namespace differs from -n.
    proc = k.fails("apply", "-f", "-", input=json.dumps(other_ns))
    assert proc.stderr == (
        f'error: the namespace from the provided object "elsewhere" does not match the '
        f'namespace "{k.ns}". You must pass \'--namespace=elsewhere\' to perform this '
        f"operation.\n")


def test_unknown_resource_type(k: Kubectl) -> None:
    proc = k.fails("get", "foos")
    assert proc.stderr == 'error: the server doesn\'t have a resource type "foos"\n'


def test_unauthenticated(cluster: Cluster, tmp_path) -> None:
    # A token the server cannot verify (with no credentials at all kubectl prompts for a password).
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    for user in config["users"]:
        user["user"] = {"token": "not-a-valid-token"}
    anonymous = tmp_path / "anonymous-kubeconfig"
    anonymous.write_text(yaml.safe_dump(config))
    # With discovery cached, the 401 comes from the list itself: kubectl shows its message.
    cluster.kubectl("get", "pods", "-n", "default")
    proc = cluster.kubectl(f"--kubeconfig={anonymous}", "get", "pods", check=False)
    assert proc.returncode == 1
    assert proc.stderr == "error: You must be logged in to the server (Unauthorized)\n"
    # With a cold cache the 401 is on discovery, where client-go words the error itself.
    proc = cluster.kubectl(f"--kubeconfig={anonymous}", f"--cache-dir={tmp_path / 'cold'}",
                           "get", "pods", check=False)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1] == ("error: You must be logged in to the server (the "
                                            "server has asked for the client to provide "
                                            "credentials)")
    status, _, body = cluster.request("GET", "/api/v1/namespaces", auth=False)
    s = status_of(body)
    assert (status, s["reason"], s["message"]) == (401, "Unauthorized", "Unauthorized")


def test_request_body_too_large(cluster: Cluster, k: Kubectl, manifest_file) -> None:
    big = configmap("big", {"blob": "x" * (3 * 1024 * 1024 + 100)})
    status, _, body = cluster.request("POST", f"/api/v1/namespaces/{k.ns}/configmaps",
                                      json.dumps(big), JSON)
    s = status_of(body)
    assert (status, s["reason"]) == (413, "RequestEntityTooLarge")
    assert s["message"] == "Request entity too large: limit is 3145728"
    path = manifest_file("big.json", big)
    proc = k.fails("create", "-f", str(path))
    assert proc.stderr == (f'Error from server (RequestEntityTooLarge): error when creating '
                           f'"{path}": Request entity too large: limit is 3145728\n')
    assert "NotFound" in k.fails("get", "configmap", "big").stderr


def test_unsupported_patch_content_type(cluster: Cluster, k: Kubectl) -> None:
    k.apply(configmap("p"))
    status, _, body = cluster.request("PATCH", f"/api/v1/namespaces/{k.ns}/configmaps/p",
                                      '{"data":{"k":"x"}}', {"Content-Type": "text/plain"})
    s = status_of(body)
    assert (status, s["reason"]) == (415, "UnsupportedMediaType")
    assert s["message"] == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, "
        "application/strategic-merge-patch+json")
    assert k.json("configmap", "p")["data"] == {"k": "v"}


def test_strict_field_validation(k: Kubectl) -> None:
    d = deployment("strict")
    d["spec"]["replica"] = 2
    proc = k.fails("apply", "-f", "-", input=json.dumps(d))
    assert proc.stderr == (
        'Error from server (BadRequest): error when creating "STDIN": Deployment in version '
        '"v1" cannot be handled as a Deployment: strict decoding error: unknown field '
        '"spec.replica"\n')
    assert "NotFound" in k.fails("get", "deployment", "strict").stderr
    # --validate=false sends fieldValidation=Ignore: the unknown field is dropped.
    k.apply(d, "--validate=false")
    assert "replica" not in k.json("deployment", "strict")["spec"]


def test_terminating_namespace_refuses_new_objects(cluster: Cluster) -> None:
    ns = unique_name("doomed")
    cluster.kubectl("create", "namespace", ns)
    held = configmap("held")
    held["metadata"]["finalizers"] = ["example.com/hold"]
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(held))
    assert cluster.kubectl("delete", "namespace", ns, "--wait=false").stdout == \
        f'namespace "{ns}" deleted\n'
    assert cluster.kubectl("get", "ns", ns, "-o", "jsonpath={.status.phase}").stdout == \
        "Terminating"
    proc = cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(configmap("new")),
                           check=False)
    assert proc.returncode == 1
    assert proc.stderr == (
        f'Error from server (Forbidden): error when creating "STDIN": configmaps "new" is '
        f"forbidden: unable to create new content in namespace {ns} because it is being "
        f"terminated\n")
    # Once the finalizer goes, the namespace controller finishes the deletion.
    cluster.kubectl("patch", "-n", ns, "configmap", "held", "--type=merge", "-p",
                    '{"metadata":{"finalizers":null}}')
    cluster.kubectl("wait", "--for=delete", f"namespace/{ns}", "--timeout=60s")


def test_warn_field_validation_warns_per_field(cluster: Cluster, k: Kubectl) -> None:
    d = deployment("warned")
    d["spec"]["replica"] = 2
    d["spec"]["template"]["spec"]["bogus"] = 1
    status, headers, body = cluster.request(
        "POST", f"/apis/apps/v1/namespaces/{k.ns}/deployments?fieldValidation=Warn",
        json.dumps(d), JSON)
    assert status == 201
    # One warning per field, in the order the decoder meets them in the body.
    assert headers["warning"].split("\n") == [
        '299 - "unknown field \\"spec.template.spec.bogus\\""',
        '299 - "unknown field \\"spec.replica\\""']
    created = json.loads(body)
    assert "replica" not in created["spec"]
    assert "bogus" not in created["spec"]["template"]["spec"]
