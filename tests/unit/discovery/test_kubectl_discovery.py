"""The real kubectl (1.32) against pocketkube's discovery and OpenAPI documents, served by a stub."""

from __future__ import annotations

import re

import orjson
import yaml

DEPLOYMENT = b"""
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - containerPort: 80
"""


def _rows(text: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in text.strip().splitlines()]


async def test_api_resources_legacy(stub):
    code, out, err = await stub.kubectl("api-resources")
    assert code == 0, err
    rows = _rows(out)
    assert rows[0] == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    assert ["deployments", "deploy", "apps/v1", "true", "Deployment"] in rows
    assert ["pods", "po", "v1", "true", "Pod"] in rows
    assert ["namespaces", "ns", "v1", "false", "Namespace"] in rows
    assert ["clusterroles", "rbac.authorization.k8s.io/v1", "false", "ClusterRole"] in rows
    # Subresources are not listed as resources.
    assert not any("/" in r[0] for r in rows[1:])
    # Legacy discovery: one request per group-version after /api and /apis.
    seen = stub.paths()
    assert "/api" in seen and "/apis" in seen
    assert "/api/v1" in seen and "/apis/apps/v1" in seen and "/apis/batch/v1" in seen


async def test_api_resources_aggregated(aggregated_stub):
    code, out, err = await aggregated_stub.kubectl("api-resources")
    assert code == 0, err
    rows = _rows(out)
    assert ["deployments", "deploy", "apps/v1", "true", "Deployment"] in rows
    assert ["horizontalpodautoscalers", "hpa", "autoscaling/v2", "true",
            "HorizontalPodAutoscaler"] in rows
    # Aggregated discovery answers everything from /api and /apis.
    seen = aggregated_stub.paths()
    assert "/api" in seen and "/apis" in seen
    assert "/api/v1" not in seen and "/apis/apps/v1" not in seen


async def test_api_versions(stub):
    code, out, err = await stub.kubectl("api-versions")
    assert code == 0, err
    versions = out.split()
    assert "v1" in versions and "apps/v1" in versions
    assert "rbac.authorization.k8s.io/v1" in versions
    assert "metrics.k8s.io/v1beta1" not in versions
    assert versions == sorted(versions)


async def test_explain_pod_spec_containers(stub):
    code, out, err = await stub.kubectl("explain", "pod.spec.containers")
    assert code == 0, err
    assert out.startswith("KIND:       Pod\nVERSION:    v1\n")
    assert "FIELD: containers <[]Container>" in out
    assert "DESCRIPTION:\n    List of containers belonging to the pod." in out
    assert "FIELDS:\n" in out
    assert re.search(r"^  name\t<string> -required-$", out, re.M)
    assert re.search(r"^  ports\t<\[\]ContainerPort>$", out, re.M)
    assert re.search(r"^  resources\t<ResourceRequirements>$", out, re.M)
    # kubectl explain reads only the OpenAPI v3 document of the resource's group-version.
    assert "/openapi/v3/api/v1" in stub.paths()
    assert "/openapi/v2" not in stub.paths()


async def test_explain_deployment_strategy(stub):
    code, out, err = await stub.kubectl("explain", "deployment.spec.strategy")
    assert code == 0, err
    assert out.startswith("GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n")
    assert "FIELD: strategy <DeploymentStrategy>" in out
    assert re.search(r"^  rollingUpdate\t<RollingUpdateDeployment>$", out, re.M)
    assert re.search(r"^  type\t<string>$", out, re.M)

    code, out, err = await stub.kubectl("explain", "deployment.spec.strategy.rollingUpdate")
    assert code == 0, err
    assert re.search(r"^  maxSurge\t<IntOrString>$", out, re.M)


async def test_explain_recursive(stub):
    code, out, err = await stub.kubectl("explain", "deployment", "--recursive")
    assert code == 0, err
    assert re.search(r"^  spec\t<DeploymentSpec>$", out, re.M)
    assert re.search(r"^    template\t<PodTemplateSpec> -required-$", out, re.M)
    assert re.search(r"^          image\t<string>$", out, re.M)


async def test_apply_leaves_validation_to_the_server(stub):
    code, out, err = await stub.kubectl("apply", "-f", "-", stdin=DEPLOYMENT)
    assert code == 0, err
    assert out.strip() == "deployment.apps/web created"
    posts = [r for r in stub.requests if r.method == "POST"]
    assert [p.path for p in posts] == ["/apis/apps/v1/namespaces/default/deployments"]
    # kubectl found the PATCH operation with fieldValidation, so it asked the server to
    # validate strictly instead of validating against the schema itself.
    assert posts[0].query.get("fieldValidation") == "Strict"
    assert posts[0].query.get("fieldManager") == "kubectl-client-side-apply"
    body = orjson.loads(posts[0].body)
    assert body["spec"]["replicas"] == 2
    assert "kubectl.kubernetes.io/last-applied-configuration" in body["metadata"]["annotations"]
    seen = stub.paths()
    assert "/openapi/v3/apis/apps/v1" in seen and "/openapi/v2" not in seen


async def test_get_all_follows_the_all_category(stub):
    code, out, err = await stub.kubectl("get", "all")
    assert code == 0, err
    lists = [p.rsplit("/", 1)[-1] for p in stub.paths() if p.startswith(
        ("/api/v1/namespaces/default/", "/apis/"))
        and "/namespaces/default/" in p]
    assert lists == [
        "pods", "replicationcontrollers", "services", "daemonsets", "deployments",
        "replicasets", "statefulsets", "horizontalpodautoscalers", "cronjobs", "jobs",
    ]


async def test_apply_update_uses_patch_keys_from_openapi(stub):
    # An existing Deployment last applied with one container; applying a new image must give a
    # strategic merge patch keyed by container name (merge key from the OpenAPI document).
    old = yaml.safe_load(DEPLOYMENT)
    old["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    old["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": orjson.dumps(old).decode()}
    old["metadata"]["resourceVersion"] = "5"
    path = "/apis/apps/v1/namespaces/default/deployments/web"
    stub.objects[path] = old
    code, out, err = await stub.kubectl("apply", "-f", "-", stdin=DEPLOYMENT)
    assert code == 0, err
    assert out.strip() == "deployment.apps/web configured"
    patches = [r for r in stub.requests if r.method == "PATCH"]
    assert [p.path for p in patches] == [path]
    assert patches[0].content_type == "application/strategic-merge-patch+json"
    assert patches[0].query.get("fieldValidation") == "Strict"
    spec = orjson.loads(patches[0].body)["spec"]["template"]["spec"]
    assert spec["$setElementOrder/containers"] == [{"name": "web"}]
    assert spec["containers"] == [{"image": "nginx:1.27", "name": "web"}]
