"""The `/openapi/v2` document: Swagger 2.0, served as JSON or as gnostic protobuf.

kubectl 1.32 prefers `/openapi/v3`, but still needs v2 where v3 cannot answer: client-side
validation of a `kind: List` manifest (cli-runtime never reports `fieldValidation` support for
v1/List, so `apply --validate=strict` checks each item against the v2 definitions, found by their
`x-kubernetes-group-version-kind`), the v2 fallbacks of `explain` and of apply's patch
computation. kubectl asks for protobuf (`Accept: application/com.github.proto-openapi.spec.v2@
v1.0+protobuf`); other clients ask for JSON. kube-apiserver serves one document in both forms,
negotiated as kube-openapi's handler does (first acceptable clause wins, 406 otherwise), with the
uppercase hex SHA-512 of the JSON as the ETag of both and the protobuf answered with the dotted
content type `application/com.github.proto-openapi.spec.v2.v1.0+protobuf` whichever protobuf
spelling was asked for.

The document comes from the same sources as v3: definitions from `pocketkube.api.schema`
(the JSON-Schema form rewritten into the shape kube-openapi emits for v2: `#/definitions/` refs,
one type per schema, IntOrString as a `int-or-string` string) and paths from `openapi_paths`,
with each OpenAPI 3 operation rewritten as a Swagger 2.0 one (body parameter, consumes/produces).
It is built on first use and kept as encoded bytes (`build_seconds` records how long that took).
"""

from __future__ import annotations

import email.utils
import functools
import hashlib
import logging
import time
from typing import Any

import orjson
from aiohttp import web

from pocketkube.api import schema
from pocketkube.api.resources import TABLE, Resource, ResourceTable
from pocketkube.apiserver.openapi import META_ROOTS, SERVER_VERSION
from pocketkube.apiserver.openapi_paths import gv_paths
from pocketkube.apiserver.openapi_schemas import INT_OR_STRING, META, definition_for
from pocketkube.apiserver.openapi_v2_proto import encode_document

log = logging.getLogger("pocketkube.apiserver.openapi")

REF_PREFIX = "#/definitions/"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
# (type, subtype, content type answered, form), in kube-openapi's order of preference.
ACCEPTED = (
    ("application", "json", "application/json", "json"),
    ("application", "com.github.proto-openapi.spec.v2@v1.0+protobuf", PROTOBUF, "protobuf"),
    ("application", "com.github.proto-openapi.spec.v2.v1.0+protobuf", PROTOBUF, "protobuf"),
)
SECURITY_DEFINITIONS = {"BearerToken": {"description": "Bearer Token authentication",
                                        "in": "header", "name": "authorization",
                                        "type": "apiKey"}}
# kube-openapi writes these two as plain strings in v2 (v3 keeps IntOrString's oneOf).
_SCALARS = {INT_OR_STRING: {"format": "int-or-string", "type": "string"},
            QUANTITY: {"type": "string"}}

Schema = dict[str, Any]


def _schema(node: Schema, refs: set[str], drop_enum: bool = False) -> Schema:
    """One JSON-Schema node (and everything under it) in kube's Swagger 2.0 form; adds the
    definitions it references to `refs`."""
    out: Schema = {}
    for key, value in node.items():
        if key == "$ref":
            name = value.rsplit("/", 1)[-1]
            refs.add(name)
            out[key] = REF_PREFIX + name
        elif key == "type":
            # Nullable types are `[t, "null"]` in JSON Schema; Swagger has one type.
            rest = [t for t in value if t != "null"] if isinstance(value, list) else [value]
            if len(rest) == 1:
                out[key] = rest[0]
        elif key == "properties":
            out[key] = {name: _schema(sub, refs, name in ("apiVersion", "kind"))
                        for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _schema(value, refs)
        elif key in ("oneOf", "anyOf", "allOf") or (key == "enum" and drop_enum):
            # No composition in kube's v2 definitions; apiVersion/kind are free strings there.
            continue
        else:
            out[key] = value
    return out


def definition(name: str, refs: set[str]) -> Schema | None:
    """Definition `name` in Swagger 2.0 form, or None if there is no such definition."""
    source = schema.definitions().get(name)
    if source is None:
        return None
    out = _schema(source, refs)
    if name in _SCALARS:
        out = {k: v for k, v in out.items() if k == "description"} | _SCALARS[name]
    return out


def _ref_v2(node: Any, refs: set[str]) -> Any:
    """A schema used by an operation, with v3 `#/components/schemas/` refs made v2 ones."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref":
                name = value.rsplit("/", 1)[-1]
                refs.add(name)
                out[key] = REF_PREFIX + name
            else:
                out[key] = _ref_v2(value, refs)
        return out
    if isinstance(node, list):
        return [_ref_v2(v, refs) for v in node]
    return node


def _parameter(p: dict[str, Any]) -> dict[str, Any]:
    """A v3 query/path parameter as a v2 one: the schema's type moves up to the parameter."""
    out = {k: v for k, v in p.items() if k != "schema"}
    out.update(p.get("schema", {}))
    return out


def _operation(op: dict[str, Any], refs: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"description": op["description"]}
    produces: list[str] = []
    responses: dict[str, Any] = {}
    for code, resp in op["responses"].items():
        answer = {"description": resp["description"]}
        for ctype, media in resp.get("content", {}).items():
            if ctype not in produces:
                produces.append(ctype)
            answer["schema"] = _ref_v2(media["schema"], refs)
        responses[code] = answer
    body = op.get("requestBody")
    params = []
    if body is not None:
        out["consumes"] = list(body["content"])
        param: dict[str, Any] = {"in": "body", "name": "body"}
        if body.get("required"):
            param["required"] = True
        param["schema"] = _ref_v2(next(iter(body["content"].values()))["schema"], refs)
        params.append(param)
    params.extend(_parameter(p) for p in op.get("parameters", ()))
    out["operationId"] = op["operationId"]
    if params:
        out["parameters"] = params
    out["produces"] = produces
    out["responses"] = responses
    out["schemes"] = ["https"]
    out.update((k, v) for k, v in op.items() if k == "tags" or k.startswith("x-"))
    return out


def paths(table: ResourceTable, refs: set[str]) -> dict[str, Any]:
    """Every group-version's paths (as in `/openapi/v3`), rewritten as Swagger 2.0."""
    out: dict[str, Any] = {}
    for group, version in table.group_versions():
        for path, item in gv_paths(group, version, table.in_group_version(group, version)).items():
            v2: dict[str, Any] = {}
            for method, op in item.items():
                if method == "parameters":
                    v2[method] = [_parameter(p) for p in op]
                else:
                    v2[method] = _operation(op, refs)
            out[path] = v2
    return dict(sorted(out.items()))


def _roots(resources: list[Resource]) -> set[str]:
    names = {META + n for n in META_ROOTS}
    for r in resources:
        kinds = [(r.group, r.version, r.kind), (r.group, r.version, r.kind + "List")]
        kinds.extend((s.group if s.group is not None else r.group, s.version or r.version, s.kind)
                     for s in r.subresources)
        names.update(n for n in (definition_for(*gvk) for gvk in kinds) if n)
    return names


def definitions(roots: set[str]) -> dict[str, Schema]:
    """Every definition reachable from `roots`, converted, sorted by name."""
    out: dict[str, Schema] = {}
    stack = sorted(roots)
    while stack:
        name = stack.pop()
        if name in out:
            continue
        refs: set[str] = set()
        converted = definition(name, refs)
        if converted is not None:
            out[name] = converted
            stack.extend(r for r in refs if r not in out)
    return dict(sorted(out.items()))


class OpenAPIv2:
    """The OpenAPI v2 document of one resource table, built and encoded on first use."""

    def __init__(self, table: ResourceTable) -> None:
        self.table = table
        self._json: bytes | None = None
        self._protobuf: bytes | None = None
        self.etag = ""
        self.last_modified = ""
        self.build_seconds = 0.0

    def document(self) -> dict[str, Any]:
        refs: set[str] = set()
        doc_paths = paths(self.table, refs)
        resources = [r for gv in self.table.group_versions()
                     for r in self.table.in_group_version(*gv)]
        return {
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": SERVER_VERSION},
            "paths": doc_paths,
            "definitions": definitions(_roots(resources) | refs),
            "security": [{"BearerToken": []}],
            "securityDefinitions": SECURITY_DEFINITIONS,
        }

    def _build(self) -> None:
        start = time.perf_counter()
        doc = self.document()
        self._json = orjson.dumps(doc)
        self._protobuf = encode_document(doc)
        self.etag = hashlib.sha512(self._json).hexdigest().upper()
        self.last_modified = email.utils.formatdate(usegmt=True)
        self.build_seconds = time.perf_counter() - start
        log.info("built openapi v2 document: %d definitions, %d paths, %d bytes JSON, "
                 "%d bytes protobuf in %.3fs", len(doc["definitions"]), len(doc["paths"]),
                 len(self._json), len(self._protobuf), self.build_seconds)

    def json_bytes(self) -> bytes:
        if self._json is None:
            self._build()
        assert self._json is not None
        return self._json

    def protobuf_bytes(self) -> bytes:
        if self._protobuf is None:
            self._build()
        assert self._protobuf is not None
        return self._protobuf


@functools.cache
def default() -> OpenAPIv2:
    return OpenAPIv2(TABLE)


def negotiate(accept: str | None) -> tuple[str, str] | None:
    """(content type, "json" | "protobuf") for an Accept header, or None (406). As kube-openapi
    (goautoneg): clauses sorted by q, specific before wildcard; the first that matches wins."""
    clauses = []
    for part in (accept or "*/*").split(","):
        media, *params = part.split(";")
        kind, slash, sub = media.partition("/")
        kind, sub = kind.strip(), sub.strip()
        if not slash:
            if kind != "*":
                continue
            sub = "*"
        q = 1.0
        for param in params:
            name, eq, value = param.partition("=")
            if eq and name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        clauses.append((-q, kind == "*", sub == "*", kind, sub))
    clauses.sort(key=lambda c: c[:3])
    for *_, kind, sub in clauses:
        for a_kind, a_sub, ctype, form in ACCEPTED:
            if kind in (a_kind, "*") and sub in (a_sub, "*"):
                return ctype, form
    return None


def _etag_matches(header: str, etag: str) -> bool:
    for tag in header.split(","):
        tag = tag.strip().removeprefix("W/")
        if tag in ("*", etag):
            return True
    return False


def serve(request: web.Request) -> web.Response:
    """GET /openapi/v2: the document in the negotiated form (304 when the ETag matches)."""
    chosen = negotiate(request.headers.get("Accept"))
    if chosen is None:
        return web.Response(status=406, headers={"Vary": "Accept"})
    ctype, form = chosen
    spec = default()
    body = spec.json_bytes() if form == "json" else spec.protobuf_bytes()
    headers = {"Vary": "Accept", "Etag": f'"{spec.etag}"', "Last-Modified": spec.last_modified}
    if _etag_matches(request.headers.get("If-None-Match", ""), headers["Etag"]):
        return web.Response(status=304, headers=headers)
    headers["Content-Type"] = ctype
    return web.Response(body=body, headers=headers)
