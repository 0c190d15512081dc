"""Shapes of the /openapi/v3 index and group-version documents."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from pocketkube.api.resources import TABLE
from pocketkube.apiserver import openapi
from pocketkube.apiserver.openapi_schemas import convert

PATCH_TYPES = {"application/apply-patch+yaml", "application/json-patch+json",
               "application/merge-patch+json", "application/strategic-merge-patch+json"}
META = "io.k8s.apimachinery.pkg.apis.meta.v1."


def _doc(group: str, version: str) -> dict[str, Any]:
    return orjson.loads(openapi.v3_document(group, version))


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield k, v
            yield from _walk(v)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def test_index():
    index = openapi.v3_index()
    keys = list(index["paths"])
    assert keys[0] == "api/v1"
    assert "apis/apps/v1" in keys and "apis/rbac.authorization.k8s.io/v1" in keys
    assert len(keys) == len(TABLE.group_versions())
    url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
    expected = hashlib.sha512(openapi.v3_document("apps", "v1")).hexdigest().upper()
    assert url == f"/openapi/v3/apis/apps/v1?hash={expected}"
    assert orjson.loads(openapi.v3_index_bytes()) == index


def test_lookup_and_unknown():
    assert openapi.v3_lookup("api/v1") == ("", "v1")
    assert openapi.v3_lookup("apis/apps/v1") == ("apps", "v1")
    assert openapi.v3_lookup("/apis/apps/v1/") == ("apps", "v1")
    assert openapi.v3_lookup("apis/metrics.k8s.io/v1beta1") is None
    assert openapi.v3_lookup("apis/apps") is None
    assert openapi.v3_document("metrics.k8s.io", "v1beta1") is None
    assert openapi.v3_document("apps", "v1") is openapi.v3_document("apps", "v1")


@pytest.mark.parametrize(("group", "version"), TABLE.group_versions())
def test_document_is_self_contained_openapi3(group, version):
    doc = _doc(group, version)
    assert doc["openapi"] == "3.0.0"
    schemas = doc["components"]["schemas"]
    for name in ("Status", "DeleteOptions", "Patch", "ObjectMeta", "WatchEvent"):
        assert META + name in schemas
    for key, value in _walk(doc):
        if key == "$ref":
            assert value.startswith("#/components/schemas/"), value
            assert value.rsplit("/", 1)[-1] in schemas, value
        if key == "type" and isinstance(value, (str, list)):
            assert isinstance(value, str), value  # no JSON-Schema ["T", "null"] left
    op_ids = [op["operationId"] for item in doc["paths"].values()
              for m, op in item.items() if m != "parameters"]
    assert len(op_ids) == len(set(op_ids))
    # Every patchable kind has the PATCH operation kubectl's validation looks for.
    for r in TABLE.in_group_version(group, version):
        if "patch" not in r.verbs:
            continue
        base = "/api/v1" if not group else f"/apis/{group}/{version}"
        scope = "/namespaces/{namespace}" if r.namespaced else ""
        patch = doc["paths"][f"{base}{scope}/{r.plural}/{{name}}"]["patch"]
        assert patch["x-kubernetes-action"] == "patch"
        assert patch["x-kubernetes-group-version-kind"] == {
            "group": group, "kind": r.kind, "version": version}
        names = {p["name"] for p in patch["parameters"] if p["in"] == "query"}
        assert names == {"dryRun", "fieldManager", "fieldValidation", "force"}
        content = patch["requestBody"]["content"]
        assert set(content) == PATCH_TYPES
        assert all(c["schema"] == {"$ref": f"#/components/schemas/{META}Patch"}
                   for c in content.values())
        # explain and client-side apply find the kind's schema by its gvk.
        tagged = [n for n, s in schemas.items()
                  if patch["x-kubernetes-group-version-kind"]
                  in s.get("x-kubernetes-group-version-kind", ())]
        assert tagged, r.kind


def test_deployment_schema_keeps_extensions():
    schemas = _doc("apps", "v1")["components"]["schemas"]
    deployment = schemas["io.k8s.api.apps.v1.Deployment"]
    assert deployment["type"] == "object"
    assert deployment["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "kind": "Deployment", "version": "v1"}]
    assert deployment["properties"]["kind"] == {
        "description": deployment["properties"]["kind"]["description"], "type": "string"}
    spec = schemas["io.k8s.api.apps.v1.DeploymentSpec"]
    assert spec["required"] == ["selector", "template"]
    assert spec["properties"]["strategy"] == {
        "allOf": [{"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentStrategy"}],
        "description": "The deployment strategy to use to replace existing pods with new ones.",
        "x-kubernetes-patch-strategy": "retainKeys",
    }
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["items"] == {"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert containers["x-kubernetes-list-type"] == "map"
    assert containers["x-kubernetes-list-map-keys"] == ["name"]
    assert schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] == {
        "format": "int-or-string", "oneOf": [{"type": "integer"}, {"type": "string"}]}
    assert schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Time"]["format"] == "date-time"
    # The scale subresource's kind comes from autoscaling/v1.
    assert "io.k8s.api.autoscaling.v1.Scale" in schemas


def test_operations_core():
    paths = _doc("", "v1")["paths"]
    pods = paths["/api/v1/namespaces/{namespace}/pods"]
    assert pods["get"]["operationId"] == "listCoreV1NamespacedPod"
    assert pods["get"]["x-kubernetes-action"] == "list"
    assert pods["get"]["x-kubernetes-group-version-kind"] == {
        "group": "", "kind": "Pod", "version": "v1"}
    list_params = {p["name"] for p in pods["get"]["parameters"]}
    assert {"labelSelector", "fieldSelector", "limit", "continue", "resourceVersion",
            "watch", "timeoutSeconds"} <= list_params
    assert pods["post"]["x-kubernetes-action"] == "post"
    assert pods["delete"]["x-kubernetes-action"] == "deletecollection"
    assert [p["name"] for p in pods["parameters"]] == ["namespace", "pretty"]
    item = paths["/api/v1/namespaces/{namespace}/pods/{name}"]
    assert {m: op["x-kubernetes-action"] for m, op in item.items() if m != "parameters"} == {
        "get": "get", "put": "put", "patch": "patch", "delete": "delete"}
    assert paths["/api/v1/pods"]["get"]["operationId"] == "listCoreV1PodForAllNamespaces"
    assert paths["/api/v1/watch/namespaces/{namespace}/pods/{name}"]["get"][
        "x-kubernetes-action"] == "watch"
    exec_ = paths["/api/v1/namespaces/{namespace}/pods/{name}/exec"]
    assert set(exec_) == {"get", "post", "parameters"}
    assert exec_["post"]["x-kubernetes-action"] == "connect"
    assert exec_["post"]["x-kubernetes-group-version-kind"]["kind"] == "PodExecOptions"
    assert exec_["get"]["operationId"] == "connectCoreV1GetNamespacedPodExec"
    assert paths["/api/v1/namespaces/{namespace}/pods/{name}/log"]["get"][
        "operationId"] == "readCoreV1NamespacedPodLog"
    eviction = paths["/api/v1/namespaces/{namespace}/pods/{name}/eviction"]["post"]
    assert eviction["x-kubernetes-group-version-kind"] == {
        "group": "policy", "kind": "Eviction", "version": "v1"}
    assert "/api/v1/namespaces/{namespace}/pods/{name}/proxy/{path}" in paths
    # Cluster scope: no namespace parameter; namespaces have no deletecollection.
    nodes = paths["/api/v1/nodes/{name}"]
    assert [p["name"] for p in nodes["parameters"]] == ["name", "pretty"]
    assert "delete" not in paths["/api/v1/namespaces"]
    assert set(paths["/api/v1/namespaces/{name}/finalize"]) == {"put", "parameters"}
    assert paths["/api/v1/"]["get"]["operationId"] == "getCoreV1APIResources"


def test_operations_groups():
    paths = _doc("rbac.authorization.k8s.io", "v1")["paths"]
    op = paths["/apis/rbac.authorization.k8s.io/v1/clusterroles"]["get"]
    assert op["operationId"] == "listRbacAuthorizationV1ClusterRole"
    assert op["tags"] == ["rbacAuthorization_v1"]
    scale = _doc("apps", "v1")["paths"][
        "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    assert scale["patch"]["x-kubernetes-group-version-kind"] == {
        "group": "autoscaling", "kind": "Scale", "version": "v1"}
    assert scale["put"]["requestBody"]["content"]["*/*"]["schema"] == {
        "$ref": "#/components/schemas/io.k8s.api.autoscaling.v1.Scale"}
    reviews = _doc("authentication.k8s.io", "v1")["paths"][
        "/apis/authentication.k8s.io/v1/tokenreviews"]
    assert set(reviews) == {"post", "parameters"}
    assert reviews["post"]["operationId"] == "createAuthenticationV1TokenReview"


def test_convert():
    assert convert({"$ref": "#/$defs/a.B"}) == {"$ref": "#/components/schemas/a.B"}
    assert convert({"$ref": "#/$defs/a.B", "description": "d"}) == {
        "allOf": [{"$ref": "#/components/schemas/a.B"}], "description": "d"}
    assert convert({"type": ["string", "null"], "format": "byte"}) == {
        "type": "string", "format": "byte"}
    # Property names are not keywords: a property called "$ref" stays a property.
    assert convert({"type": "object", "properties": {"$ref": {"type": ["string", "null"]}}}) == {
        "type": "object", "properties": {"$ref": {"type": "string"}}}
    assert convert({"properties": {"kind": {"type": "string", "enum": ["Pod"]},
                                   "phase": {"type": "string", "enum": ["A"]}}}) == {
        "properties": {"kind": {"type": "string"},
                       "phase": {"type": "string", "enum": ["A"]}}}
