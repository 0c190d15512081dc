"""Shapes of the discovery documents (legacy and aggregated) and Accept negotiation."""

from __future__ import annotations

import orjson
import pytest

from pocketkube.api.resources import TABLE
from pocketkube.apiserver import discovery

KUBECTL_ACCEPT = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
    "application/json"
)
V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"


def test_api_versions():
    assert discovery.api_versions("10.0.0.1:6443") == {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": "10.0.0.1:6443"}
        ],
    }


def test_api_group_list_order_and_preferred_version():
    doc = discovery.api_group_list()
    assert doc["kind"] == "APIGroupList" and doc["apiVersion"] == "v1"
    names = [g["name"] for g in doc["groups"]]
    # kube-apiserver's priority order, not alphabetical.
    assert names[:4] == ["apps", "events.k8s.io", "authentication.k8s.io",
                         "authorization.k8s.io"]
    assert names.index("coordination.k8s.io") > names.index("scheduling.k8s.io")
    assert sorted(names) == sorted({g for g, _ in TABLE.group_versions() if g})
    assert "metrics.k8s.io" not in names
    autoscaling = next(g for g in doc["groups"] if g["name"] == "autoscaling")
    assert autoscaling["versions"] == [{"groupVersion": "autoscaling/v2", "version": "v2"},
                                       {"groupVersion": "autoscaling/v1", "version": "v1"}]
    assert autoscaling["preferredVersion"] == {"groupVersion": "autoscaling/v2", "version": "v2"}


def test_api_group():
    assert discovery.api_group("apps") == {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": "apps",
        "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
        "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"},
    }
    assert discovery.api_group("metrics.k8s.io") is None
    assert discovery.api_group("") is None


def test_resource_list_apps():
    doc = discovery.resource_list("apps", "v1")
    assert doc["kind"] == "APIResourceList" and doc["groupVersion"] == "apps/v1"
    by_name = {r["name"]: r for r in doc["resources"]}
    assert by_name["deployments"] == {
        "name": "deployments", "singularName": "deployment", "namespaced": True,
        "kind": "Deployment",
        "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update",
                  "watch"],
        "shortNames": ["deploy"], "categories": ["all"], "storageVersionHash": "8aSe+NMegvE=",
    }
    assert by_name["deployments/scale"] == {
        "name": "deployments/scale", "singularName": "", "namespaced": True,
        "group": "autoscaling", "version": "v1", "kind": "Scale",
        "verbs": ["get", "patch", "update"],
    }
    assert by_name["deployments/status"]["kind"] == "Deployment"
    assert "group" not in by_name["deployments/status"]
    names = [r["name"] for r in doc["resources"]]
    # Subresources follow their parent, alphabetically, as kube lists them.
    assert names.index("deployments/scale") == names.index("deployments") + 1


def test_resource_list_core():
    doc = discovery.resource_list("", "v1")
    assert doc["groupVersion"] == "v1"
    by_name = {r["name"]: r for r in doc["resources"]}
    assert by_name["pods"]["storageVersionHash"] == "xPOwRZ+Yhw8="
    assert by_name["pods"]["shortNames"] == ["po"]
    assert by_name["pods/eviction"]["group"] == "policy"
    assert by_name["pods/eviction"]["kind"] == "Eviction"
    assert by_name["serviceaccounts/token"]["group"] == "authentication.k8s.io"
    assert by_name["namespaces"]["namespaced"] is False
    assert by_name["namespaces/finalize"]["verbs"] == ["update"]
    # Virtual resources have no storage version.
    assert "storageVersionHash" not in by_name["componentstatuses"]
    assert "categories" not in by_name["configmaps"]
    assert discovery.resource_list("apps", "v2") is None
    assert discovery.resource_list("metrics.k8s.io", "v1beta1") is None


def test_aggregated_core():
    doc = discovery.aggregated(True, "v2")
    assert doc["kind"] == "APIGroupDiscoveryList"
    assert doc["apiVersion"] == "apidiscovery.k8s.io/v2"
    assert len(doc["items"]) == 1
    core = doc["items"][0]
    assert core["metadata"] == {}
    (v1,) = core["versions"]
    assert v1["version"] == "v1" and v1["freshness"] == "Current"
    pods = next(r for r in v1["resources"] if r["resource"] == "pods")
    assert pods["responseKind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert pods["scope"] == "Namespaced" and pods["singularResource"] == "pod"
    assert pods["shortNames"] == ["po"] and pods["categories"] == ["all"]
    eviction = next(s for s in pods["subresources"] if s["subresource"] == "eviction")
    assert eviction == {"subresource": "eviction",
                        "responseKind": {"group": "policy", "version": "v1", "kind": "Eviction"},
                        "verbs": ["create"]}
    nodes = next(r for r in v1["resources"] if r["resource"] == "nodes")
    assert nodes["scope"] == "Cluster"


def test_aggregated_groups():
    doc = discovery.aggregated(False, "v2beta1")
    assert doc["apiVersion"] == "apidiscovery.k8s.io/v2beta1"
    names = [item["metadata"]["name"] for item in doc["items"]]
    assert names == [g["name"] for g in discovery.api_group_list()["groups"]]
    apps = doc["items"][0]
    deployments = next(r for r in apps["versions"][0]["resources"]
                       if r["resource"] == "deployments")
    assert deployments["responseKind"] == {"group": "apps", "version": "v1",
                                           "kind": "Deployment"}
    scale = next(s for s in deployments["subresources"] if s["subresource"] == "scale")
    assert scale["responseKind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    # Every resource and subresource has a responseKind (kubectl drops those without).
    for item in doc["items"]:
        for version in item["versions"]:
            assert version["freshness"] == "Current"
            for r in version["resources"]:
                assert r["responseKind"]["kind"]
                assert r["scope"] in ("Namespaced", "Cluster")
                for s in r.get("subresources", ()):
                    assert s["responseKind"]["kind"]
    with pytest.raises(ValueError):
        discovery.aggregated(False, "v1")


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (KUBECTL_ACCEPT, V2),
        (V2BETA1 + ",application/json", V2BETA1),
        ("application/json;as=APIGroupDiscoveryList;v=v2;g=apidiscovery.k8s.io", V2),
        ("application/json", None),
        ("application/json, */*", None),
        ("application/json," + V2, None),
        (V2 + ";q=0.5,application/json", None),
        ("application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList," + V2BETA1,
         V2BETA1),
        ("", None),
        (None, None),
    ],
)
def test_negotiate_aggregated(accept, expected):
    assert discovery.negotiate_aggregated(accept) == expected


def test_encoded_is_cached_bytes():
    first = discovery.encoded("resource_list", "apps", "v1")
    assert first is discovery.encoded("resource_list", "apps", "v1")
    assert orjson.loads(first) == discovery.resource_list("apps", "v1")
    assert orjson.loads(discovery.encoded("aggregated", True, "v2")) == discovery.aggregated(
        True, "v2")
    assert discovery.encoded("resource_list", "metrics.k8s.io", "v1beta1") is None
