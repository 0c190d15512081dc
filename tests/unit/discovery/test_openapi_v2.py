"""The /openapi/v2 document: its JSON form, its gnostic protobuf form (decoded here with the
generic wire reader), the constraints kubectl's v2 parser puts on it, and content negotiation."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import yaml
from aiohttp.test_utils import make_mocked_request

from pocketkube.api import schema
from pocketkube.api.protobuf.wire import BYTES, FIXED64, iter_fields
from pocketkube.api.resources import TABLE
from pocketkube.apiserver import openapi_v2
from pocketkube.apiserver.openapi_v2_proto import encode_document

KUBECTL_ACCEPT = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
CORE = "io.k8s.api.core.v1."
META = "io.k8s.apimachinery.pkg.apis.meta.v1."


def _fields(data: bytes | memoryview) -> list[tuple[int, int, Any]]:
    return list(iter_fields(memoryview(data), "test"))


def _text(value: Any) -> str:
    return bytes(value).decode()


def _named(data: memoryview) -> tuple[str, memoryview]:
    """A Named* message: (1 name, 2 value bytes)."""
    name, value = "", memoryview(b"")
    for number, _, v in _fields(data):
        if number == 1:
            name = _text(v)
        elif number == 2:
            value = v
    return name, value


def _any(data: memoryview) -> Any:
    """Any: 2 yaml (parsed, as kubectl does)."""
    return yaml.safe_load(next(_text(v) for n, _, v in _fields(data) if n == 2))


def decode_schema(data: memoryview) -> dict[str, Any]:
    """gnostic Schema bytes back to the JSON form, for the fields the document uses."""
    out: dict[str, Any] = {}
    strings = {1: "$ref", 2: "format", 4: "description", 13: "pattern"}
    for number, wire, value in _fields(data):
        if number in strings:
            out[strings[number]] = _text(value)
        elif number in (16, 8, 10, 27):
            out[{16: "uniqueItems", 8: "exclusiveMaximum", 10: "exclusiveMinimum",
                 27: "readOnly"}[number]] = bool(value)
        elif number in (7, 9) and wire == FIXED64:
            raise AssertionError("the source schemas have no bounds")
        elif number == 19:
            out.setdefault("required", []).append(_text(value))
        elif number == 20:
            out.setdefault("enum", []).append(_any(value))
        elif number == 21:
            (inner_number, _, inner), = _fields(value)
            out["additionalProperties"] = (decode_schema(inner) if inner_number == 1
                                           else bool(inner))
        elif number == 22:
            types = [_text(v) for _, _, v in _fields(value)]
            out["type"] = types[0] if len(types) == 1 else types
        elif number == 23:
            items = [decode_schema(v) for _, _, v in _fields(value)]
            out["items"] = items[0] if len(items) == 1 else items
        elif number == 25:
            out["properties"] = {name: decode_schema(v)
                                 for name, v in (_named(p) for _, _, p in _fields(value))}
        elif number == 31:
            name, v = _named(value)
            out[name] = _any(v)
        else:
            raise AssertionError(f"unexpected Schema field {number}")
    return out


@pytest.fixture(scope="module")
def spec() -> openapi_v2.OpenAPIv2:
    return openapi_v2.OpenAPIv2(TABLE)


@pytest.fixture(scope="module")
def doc(spec: openapi_v2.OpenAPIv2) -> dict[str, Any]:
    return orjson.loads(spec.json_bytes())


@pytest.fixture(scope="module")
def top(spec: openapi_v2.OpenAPIv2) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = {}
    for number, wire, value in _fields(spec.protobuf_bytes()):
        assert wire == BYTES
        out.setdefault(number, []).append(value)
    return out


@pytest.fixture(scope="module")
def pb_definitions(top: dict[int, list[Any]]) -> dict[str, dict[str, Any]]:
    (defs,) = top[9]  # Document.definitions: Definitions{1 repeated NamedSchema}
    return {name: decode_schema(v) for name, v in (_named(ns) for _, _, ns in _fields(defs))}


def test_document_header(doc, top):
    assert doc["swagger"] == "2.0"
    assert doc["info"] == {"title": "Kubernetes", "version": "v1.32.4"}
    assert [_text(v) for v in top[1]] == ["2.0"]
    info = {n: _text(v) for n, _, v in _fields(top[2][0])}
    assert info == {1: "Kubernetes", 2: "v1.32.4"}


def test_definitions_cover_every_kind(doc, pb_definitions):
    defs = doc["definitions"]
    assert len(pb_definitions) == len(defs) > 300
    tagged = {(g["group"], g["version"], g["kind"])
              for d in pb_definitions.values() for g in d.get("x-kubernetes-group-version-kind", ())}
    for r in (r for gv in TABLE.group_versions() for r in TABLE.in_group_version(*gv)):
        if schema.definition_name(r.group, r.version, r.kind):
            assert (r.group, r.version, r.kind) in tagged, r.kind
        if schema.definition_name(r.group, r.version, r.kind + "List"):
            assert (r.group, r.version, r.kind + "List") in tagged, r.kind


def test_protobuf_definitions_match_json(doc, pb_definitions):
    assert pb_definitions == doc["definitions"]


def test_configmap_definition(pb_definitions):
    cm = pb_definitions[CORE + "ConfigMap"]
    assert cm["type"] == "object"
    assert set(cm["properties"]) == {"apiVersion", "binaryData", "data", "immutable", "kind",
                                     "metadata"}
    assert cm["properties"]["data"] == {
        "additionalProperties": {"type": "string"}, "type": "object",
        "description": cm["properties"]["data"]["description"]}
    assert cm["properties"]["metadata"]["$ref"] == "#/definitions/" + META + "ObjectMeta"
    assert cm["properties"]["kind"]["type"] == "string"
    assert "enum" not in cm["properties"]["kind"]
    assert cm["x-kubernetes-group-version-kind"] == [
        {"group": "", "kind": "ConfigMap", "version": "v1"}]


def test_patch_and_list_extensions(pb_definitions):
    containers = pb_definitions[CORE + "PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-list-type"] == "map"
    assert containers["x-kubernetes-list-map-keys"] == ["name"]
    assert containers["type"] == "array"
    assert containers["items"] == {"$ref": "#/definitions/" + CORE + "Container"}
    ports = pb_definitions[CORE + "Container"]["properties"]["ports"]
    assert ports["x-kubernetes-patch-merge-key"] == "containerPort"
    assert pb_definitions["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] == {
        "format": "int-or-string", "type": "string"}
    assert pb_definitions[CORE + "Container"]["required"] == ["name"]


def _schemas(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    def walk(where: str, s: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        yield where, s
        for name, sub in s.get("properties", {}).items():
            yield from walk(f"{where}.{name}", sub)
        for key in ("items", "additionalProperties"):
            if isinstance(s.get(key), dict):
                yield from walk(f"{where}[{key}]", s[key])

    for name, d in doc["definitions"].items():
        yield from walk(name, d)
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            for p in op.get("parameters", ()):
                if "schema" in p:
                    yield from walk(f"{path} {method} body", p["schema"])
            for code, resp in op["responses"].items():
                if "schema" in resp:
                    yield from walk(f"{path} {method} {code}", resp["schema"])


def test_schemas_parse_with_kubectl_rules(doc):
    # kube-openapi pkg/util/proto ParseSchema: a reference may carry a description and
    # extensions but no type or properties and must name a definition; one type per schema;
    # an array has exactly one item schema.
    defs = doc["definitions"]
    for where, s in _schemas(doc):
        assert not {"oneOf", "anyOf", "allOf", "nullable"} & set(s), where
        if "$ref" in s:
            assert "type" not in s and "properties" not in s, where
            assert s["$ref"].removeprefix("#/definitions/") in defs, where
            continue
        t = s.get("type")
        assert t is None or t in ("object", "array", "string", "integer", "number",
                                  "boolean"), where
        if t == "array":
            assert isinstance(s.get("items"), dict), where


def _gvk(ext: list[tuple[str, memoryview]]) -> dict[str, str] | None:
    for name, value in ext:
        if name == "x-kubernetes-group-version-kind":
            return _any(value)
    return None


def test_every_patch_operation_declares_field_validation(top):
    # What cli-runtime's v2 query-param verifier reads: each Paths.path PathItem.patch with a
    # GVK extension and a fieldValidation query parameter.
    (paths,) = top[8]
    found: dict[tuple[str, str, str], bool] = {}
    for number, _, named in _fields(paths):
        assert number == 2
        _, item = _named(named)
        for op_number, _, op in _fields(item):
            if op_number != 8:
                continue
            params, ext = [], []
            for n, _, v in _fields(op):
                if n == 8:  # ParametersItem{1 Parameter{2 NonBodyParameter{3 query}}}
                    (pn, _, param), = _fields(v)
                    (kind, _, sub), = _fields(param)
                    if kind == 2:
                        (loc, _, sub_schema), = _fields(sub)
                        if loc == 3:
                            params.append(next(_text(x) for m, _, x in _fields(sub_schema)
                                               if m == 4))
                elif n == 13:
                    ext.append(_named(v))
            gvk = _gvk(ext)
            assert gvk is not None
            found[(gvk["group"], gvk["version"], gvk["kind"])] = "fieldValidation" in params
    for gv in TABLE.group_versions():
        for r in TABLE.in_group_version(*gv):
            if "patch" in r.verbs:
                assert found.get((r.group, r.version, r.kind)) is True, r.plural


def test_operations_are_swagger2(doc):
    item = doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]
    assert [p["name"] for p in item["parameters"]] == ["name", "namespace", "pretty"]
    assert item["parameters"][0] == {"description": "name of the ConfigMap", "in": "path",
                                     "name": "name", "required": True, "type": "string",
                                     "uniqueItems": True}
    patch = item["patch"]
    assert set(patch["consumes"]) == {"application/apply-patch+yaml",
                                      "application/json-patch+json",
                                      "application/merge-patch+json",
                                      "application/strategic-merge-patch+json"}
    assert patch["parameters"][0] == {"in": "body", "name": "body", "required": True,
                                      "schema": {"$ref": "#/definitions/" + META + "Patch"}}
    assert [p["name"] for p in patch["parameters"][1:]] == [
        "dryRun", "fieldManager", "fieldValidation", "force"]
    assert patch["responses"]["200"] == {
        "description": "OK", "schema": {"$ref": "#/definitions/" + CORE + "ConfigMap"}}
    assert patch["responses"]["401"] == {"description": "Unauthorized"}
    assert "application/json" in patch["produces"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "", "kind": "ConfigMap",
                                                        "version": "v1"}
    assert patch["x-kubernetes-action"] == "patch"
    delete = item["delete"]["parameters"][0]
    assert delete == {"in": "body", "name": "body",
                      "schema": {"$ref": "#/definitions/" + META + "DeleteOptions"}}


def test_encoder_rejects_unknown_fields():
    with pytest.raises(ValueError, match="Schema has no field 'oneOf'"):
        encode_document({"definitions": {"X": {"oneOf": []}}})
    # A oneof boolean is written even when false; proto3 scalars at zero are not.
    data = encode_document({"definitions": {"X": {"additionalProperties": False,
                                                  "uniqueItems": False}}})
    (_, _, defs), = _fields(data)
    (_, _, named), = _fields(defs)
    assert decode_schema(_named(named)[1]) == {"additionalProperties": False}
    # enum values and vendor extensions are YAML texts that parse back to the value.
    odd = {"enum": ["Always", "", "true", "1", 'q"uote\n\u00e9'],
           "x-kubernetes-unions": [{"discriminator": "type", "fields-to-discriminateBy": {}}]}
    (_, _, defs), = _fields(encode_document({"definitions": {"X": odd}}))
    (_, _, named), = _fields(defs)
    assert decode_schema(_named(named)[1]) == odd


@pytest.mark.parametrize(("accept", "expected"), [
    (KUBECTL_ACCEPT, (openapi_v2.PROTOBUF, "protobuf")),
    ("application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
     (openapi_v2.PROTOBUF, "protobuf")),
    ("application/json", ("application/json", "json")),
    ("application/json, */*", ("application/json", "json")),
    (None, ("application/json", "json")),
    ("*/*", ("application/json", "json")),
    ("application/json;q=0.5, " + KUBECTL_ACCEPT, (openapi_v2.PROTOBUF, "protobuf")),
    ("*/*;q=0.8, " + KUBECTL_ACCEPT, (openapi_v2.PROTOBUF, "protobuf")),
    ("text/plain", None),
    ("application/yaml", None),
])
def test_negotiate(accept, expected):
    assert openapi_v2.negotiate(accept) == expected


def _request(headers: dict[str, str]) -> Any:
    return make_mocked_request("GET", "/openapi/v2", headers=headers)


def test_serve_forms_etag_and_errors():
    spec = openapi_v2.default()
    proto = openapi_v2.serve(_request({"Accept": KUBECTL_ACCEPT}))
    assert proto.status == 200
    assert proto.headers["Content-Type"] == openapi_v2.PROTOBUF
    assert proto.body == spec.protobuf_bytes()
    etag = proto.headers["Etag"]
    assert etag == f'"{hashlib.sha512(spec.json_bytes()).hexdigest().upper()}"'
    assert proto.headers["Vary"] == "Accept"
    js = openapi_v2.serve(_request({"Accept": "application/json"}))
    assert js.headers["Content-Type"] == "application/json"
    assert orjson.loads(js.body)["swagger"] == "2.0"
    assert js.headers["Etag"] == etag
    cached = openapi_v2.serve(_request({"Accept": KUBECTL_ACCEPT, "If-None-Match": etag}))
    assert cached.status == 304 and not cached.body
    assert openapi_v2.serve(_request({"Accept": "text/html"})).status == 406
    assert openapi_v2.default() is openapi_v2.default()
