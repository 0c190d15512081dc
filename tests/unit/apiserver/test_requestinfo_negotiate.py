import pytest

from pocketkube.api.errors import StatusError
from pocketkube.apiserver import negotiate
from pocketkube.apiserver.requestinfo import parse


@pytest.mark.parametrize("method,path,query,want", [
    ("GET", "/api/v1/namespaces/default/pods", {}, ("", "v1", "default", "pods", "", "", "list")),
    ("GET", "/api/v1/namespaces/default/pods/p/log", {},
     ("", "v1", "default", "pods", "p", "log", "get")),
    ("GET", "/api/v1/pods", {"watch": "true"}, ("", "v1", "", "pods", "", "", "watch")),
    ("GET", "/api/v1/namespaces/kube-system", {},
     ("", "v1", "", "namespaces", "kube-system", "", "get")),
    ("PUT", "/api/v1/namespaces/x/finalize", {},
     ("", "v1", "", "namespaces", "x", "finalize", "update")),
    ("PATCH", "/apis/apps/v1/namespaces/d/deployments/web/scale", {},
     ("apps", "v1", "d", "deployments", "web", "scale", "patch")),
    ("DELETE", "/apis/batch/v1/namespaces/d/jobs", {},
     ("batch", "v1", "d", "jobs", "", "", "deletecollection")),
    ("POST", "/api/v1/nodes", {}, ("", "v1", "", "nodes", "", "", "create")),
])
def test_parse(method, path, query, want):
    i = parse(method, path, query)
    assert i.is_resource
    assert (i.group, i.version, i.namespace, i.resource, i.name, i.subresource, i.verb) == want


def test_non_resource_paths():
    assert not parse("GET", "/apis/apps/v1", {}).is_resource
    assert not parse("GET", "/version", {}).is_resource


@pytest.mark.parametrize("accept,form", [
    (None, "json"),
    ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;"
     "g=meta.k8s.io,application/json", "table"),
    ("application/vnd.kubernetes.protobuf,application/json", "json"),
    ("application/yaml", "yaml"),
    ("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io", "partial"),
    ("*/*", "json"),
])
def test_negotiate_output(accept, form):
    assert negotiate.negotiate_output(accept).form == form


def test_protobuf_only_is_not_acceptable():
    with pytest.raises(StatusError) as e:
        negotiate.negotiate_output("application/vnd.kubernetes.protobuf")
    assert e.value.code == 406


@pytest.mark.parametrize("body,ctype,code", [
    (b"{not json", "application/json", 400),
    (b"[1,2]", "application/json", 400),
    (b"a: [b", "application/yaml", 400),
    (b"<x/>", "application/xml", 415),
])
def test_decode_body_errors(body, ctype, code):
    with pytest.raises(StatusError) as e:
        negotiate.decode_body(body, ctype, "Pod")
    assert e.value.code == code


def test_decode_yaml_body():
    assert negotiate.decode_body(b"kind: Pod\nmetadata: {name: p}\n", "application/yaml",
                                 "Pod") == {"kind": "Pod", "metadata": {"name": "p"}}
