"""Protocol Buffers encoding of a Swagger 2.0 document as gnostic's `openapi.v2.Document`.

kubectl 1.32 downloads `/openapi/v2` as protobuf and decodes it with `proto.Unmarshal` into the
gnostic-models `openapi_v2.Document` (client-go `discovery.OpenAPISchema`). kube-apiserver
produces those bytes by parsing its JSON Swagger document into gnostic messages and marshalling
them; this module does the same walk for the JSON-shaped dict that `openapi_v2` builds.

The encoder is hand-written rather than generated from the upstream `.proto` because only a
fraction of that schema is needed, the wire format of the subset is small (strings, bools,
varints, doubles and nested messages), and a table-driven walk of the dict is faster than
building message objects. The tables below are our transcription of the field numbers of the
messages the document uses; JSON keys starting with `x-` become the message's repeated
`NamedAny` vendor extensions, whose `Any.yaml` holds the value as YAML text (JSON flow syntax,
a subset of YAML, which kubectl reads with yaml.v2). A key the tables do not know is a bug in
the document and raises ValueError rather than being dropped silently.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any

Encoder = Callable[[int, Any], bytes]
Table = dict[str, tuple[int, Encoder]]

_VARINT, _FIXED64, _BYTES = 0, 1, 2
_MASK64 = (1 << 64) - 1


def _varint(n: int) -> bytes:
    n &= _MASK64  # negative int64 values are ten-byte two's complement varints
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _key(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _len(number: int, data: bytes) -> bytes:
    return _key(number, _BYTES) + _varint(len(data)) + data


# Scalar fields. proto3 omits a field holding its zero value, as Go's Marshal does.

def _string(number: int, value: str) -> bytes:
    return _len(number, value.encode()) if value else b""


def _strings(number: int, values: list[str]) -> bytes:
    return b"".join(_len(number, v.encode()) for v in values)


def _bool(number: int, value: bool) -> bytes:
    return _key(number, _VARINT) + b"\x01" if value else b""


def _int64(number: int, value: int) -> bytes:
    return _key(number, _VARINT) + _varint(int(value)) if value else b""


def _double(number: int, value: float) -> bytes:
    return _key(number, _FIXED64) + struct.pack("<d", float(value)) if value else b""


def yaml_text(value: Any) -> str:
    """The YAML text gnostic keeps in `Any.yaml`. JSON with spaced separators is valid YAML
    that yaml.v2 parses to the same value (maps, lists, quoted strings, numbers, booleans)."""
    return json.dumps(value, ensure_ascii=False) + "\n"


def _any(number: int, value: Any) -> bytes:
    return _len(number, _string(2, yaml_text(value)))  # Any: 2 yaml


def _anys(number: int, values: list[Any]) -> bytes:
    return b"".join(_any(number, v) for v in values)


# Messages.

def _encode(table: Table, ext: int, obj: dict[str, Any], what: str) -> bytes:
    """One message from a JSON object: known keys by `table`, `x-` keys as NamedAny at `ext`."""
    parts: list[tuple[int, bytes]] = []
    for key, value in obj.items():
        entry = table.get(key)
        if entry is not None:
            parts.append((entry[0], entry[1](entry[0], value)))
        elif key.startswith("x-") and ext:
            # NamedAny: 1 name, 2 value
            parts.append((ext, _len(ext, _string(1, key) + _any(2, value))))
        else:
            raise ValueError(f"openapi v2: {what} has no field {key!r}")
    parts.sort(key=lambda p: p[0])  # stable: repeated fields keep their order
    return b"".join(p[1] for p in parts)


def _message(table: Table, ext: int, what: str) -> Encoder:
    def encode(number: int, obj: dict[str, Any]) -> bytes:
        return _len(number, _encode(table, ext, obj, what))

    return encode


def _named(value_encoder: Encoder) -> Encoder:
    """A JSON map as gnostic's wrapper message: field 1 repeats Named{1 name, 2 value}."""

    def encode(number: int, obj: dict[str, Any]) -> bytes:
        body = b"".join(_len(1, _string(1, name) + value_encoder(2, value))
                        for name, value in obj.items())
        return _len(number, body)

    return encode


def _schema(number: int, obj: dict[str, Any]) -> bytes:
    return _len(number, _encode(SCHEMA, 31, obj, "Schema"))


def _schemas(number: int, values: list[dict[str, Any]]) -> bytes:
    return b"".join(_schema(number, v) for v in values)


def _additional_properties(number: int, value: bool | dict[str, Any]) -> bytes:
    # AdditionalPropertiesItem oneof: 1 schema, 2 boolean (a oneof member is always written)
    if isinstance(value, bool):
        return _len(number, _key(2, _VARINT) + (b"\x01" if value else b"\x00"))
    return _len(number, _schema(1, value))


def _type(number: int, value: str | list[str]) -> bytes:
    return _len(number, _strings(1, [value] if isinstance(value, str) else value))  # TypeItem


def _items(number: int, value: dict[str, Any] | list[dict[str, Any]]) -> bytes:
    return _len(number, _schemas(1, [value] if isinstance(value, dict) else value))  # ItemsItem


SCHEMA: Table = {
    "$ref": (1, _string), "format": (2, _string), "title": (3, _string),
    "description": (4, _string), "default": (5, _any), "multipleOf": (6, _double),
    "maximum": (7, _double), "exclusiveMaximum": (8, _bool), "minimum": (9, _double),
    "exclusiveMinimum": (10, _bool), "maxLength": (11, _int64), "minLength": (12, _int64),
    "pattern": (13, _string), "maxItems": (14, _int64), "minItems": (15, _int64),
    "uniqueItems": (16, _bool), "maxProperties": (17, _int64), "minProperties": (18, _int64),
    "required": (19, _strings), "enum": (20, _anys),
    "additionalProperties": (21, _additional_properties), "type": (22, _type),
    "items": (23, _items), "allOf": (24, _schemas), "properties": (25, _named(_schema)),
    "discriminator": (26, _string), "readOnly": (27, _bool), "example": (30, _any),
}

# Query and path parameter sub-schemas share their fields up to `allowEmptyValue`, which only
# the query form has (it shifts every later field number by one).
_PATH_PARAM: Table = {
    "required": (1, _bool), "in": (2, _string), "description": (3, _string),
    "name": (4, _string), "type": (5, _string), "format": (6, _string),
    "collectionFormat": (8, _string), "default": (9, _any), "maximum": (10, _double),
    "minimum": (12, _double), "pattern": (16, _string), "uniqueItems": (19, _bool),
    "enum": (20, _anys),
}
_QUERY_PARAM: Table = {
    k: (n if n < 5 else n + 1, enc) for k, (n, enc) in _PATH_PARAM.items()
} | {"allowEmptyValue": (5, _bool)}
_BODY_PARAM: Table = {
    "description": (1, _string), "name": (2, _string), "in": (3, _string),
    "required": (4, _bool), "schema": (5, _schema),
}


def _parameters(number: int, values: list[dict[str, Any]]) -> bytes:
    """Repeated ParametersItem: 1 Parameter{1 body | 2 NonBodyParameter{3 query | 4 path}} or
    2 JsonReference{1 $ref}."""
    out = []
    for p in values:
        if "$ref" in p:
            item = _len(2, _string(1, p["$ref"]))
        elif p.get("in") == "body":
            item = _len(1, _len(1, _encode(_BODY_PARAM, 6, p, "BodyParameter")))
        elif p.get("in") in ("query", "path"):
            table, ext, field = ((_QUERY_PARAM, 23, 3) if p["in"] == "query"
                                 else (_PATH_PARAM, 22, 4))
            item = _len(1, _len(2, _len(field, _encode(table, ext, p, "Parameter"))))
        else:
            raise ValueError(f"openapi v2: unsupported parameter location {p.get('in')!r}")
        out.append(_len(number, item))
    return b"".join(out)


_RESPONSE: Table = {
    "description": (1, _string),
    "schema": (2, lambda n, v: _len(n, _schema(1, v))),  # SchemaItem oneof: 1 schema
}


def _responses(number: int, obj: dict[str, Any]) -> bytes:
    """Responses: 1 repeated NamedResponseValue{1 code, 2 ResponseValue{1 Response}}."""
    body = b"".join(
        _len(1, _string(1, code) + _len(2, _len(1, _encode(_RESPONSE, 5, r, "Response"))))
        for code, r in obj.items())
    return _len(number, body)


_OPERATION: Table = {
    "tags": (1, _strings), "summary": (2, _string), "description": (3, _string),
    "operationId": (5, _string), "produces": (6, _strings), "consumes": (7, _strings),
    "parameters": (8, _parameters), "responses": (9, _responses), "schemes": (10, _strings),
    "deprecated": (11, _bool),
}
_operation = _message(_OPERATION, 13, "Operation")
_PATH_ITEM: Table = {
    "$ref": (1, _string), "get": (2, _operation), "put": (3, _operation),
    "post": (4, _operation), "delete": (5, _operation), "options": (6, _operation),
    "head": (7, _operation), "patch": (8, _operation), "parameters": (9, _parameters),
}


def _paths(number: int, obj: dict[str, Any]) -> bytes:
    """Paths: 2 repeated NamedPathItem{1 path, 2 PathItem}."""
    body = b"".join(_len(2, _string(1, path) + _len(2, _encode(_PATH_ITEM, 10, item, "PathItem")))
                    for path, item in obj.items())
    return _len(number, body)


def _security(number: int, values: list[dict[str, list[str]]]) -> bytes:
    """Repeated SecurityRequirement: 1 repeated NamedStringArray{1 name, 2 StringArray}."""
    return b"".join(
        _len(number, b"".join(_len(1, _string(1, name) + _len(2, _strings(1, scopes)))
                              for name, scopes in req.items()))
        for req in values)


_API_KEY: Table = {"type": (1, _string), "name": (2, _string), "in": (3, _string),
                   "description": (4, _string)}


def _security_definition(number: int, obj: dict[str, Any]) -> bytes:
    if obj.get("type") != "apiKey":
        raise ValueError(f"openapi v2: unsupported security definition {obj.get('type')!r}")
    # SecurityDefinitionsItem oneof: 2 ApiKeySecurity
    return _len(number, _len(2, _encode(_API_KEY, 5, obj, "ApiKeySecurity")))


DOCUMENT: Table = {
    "swagger": (1, _string),
    "info": (2, _message({"title": (1, _string), "version": (2, _string),
                          "description": (3, _string)}, 7, "Info")),
    "host": (3, _string), "basePath": (4, _string), "schemes": (5, _strings),
    "consumes": (6, _strings), "produces": (7, _strings), "paths": (8, _paths),
    "definitions": (9, _named(_schema)), "security": (12, _security),
    "securityDefinitions": (13, _named(_security_definition)),
}


def encode_document(doc: dict[str, Any]) -> bytes:
    """The gnostic `openapi.v2.Document` wire bytes of a Swagger 2.0 document dict."""
    return _encode(DOCUMENT, 16, doc, "Document")
