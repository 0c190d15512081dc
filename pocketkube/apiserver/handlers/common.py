"""What every resource handler shares: the request scope (which resource, which store, who is
asking, the query options) and turning results into responses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from pocketkube.api import errors
from pocketkube.api.resources import Resource
from pocketkube.apiserver import negotiate, tables
from pocketkube.apiserver.requestinfo import RequestInfo
from pocketkube.registry.registry import Registry
from pocketkube.registry.store import Store
from pocketkube.registry.strategy import Context

Obj = dict[str, Any]


@dataclass
class Scope:
    request: web.Request
    info: RequestInfo
    resource: Resource
    registry: Registry
    ctx: Context
    query: Any  # MultiDictProxy[str]
    out: negotiate.Output

    @property
    def store(self) -> Store:
        s = self.registry.store_for(self.resource)
        if s is None:
            raise errors.method_not_allowed(
                "the server does not allow this method on the requested resource")
        return s

    @property
    def ns(self) -> str | None:
        return self.info.namespace if self.resource.namespaced else None

    async def body(self) -> bytes:
        return await read_body(self.request)

    async def object(self) -> Obj:
        """The request body as an object, checked against the URL."""
        data = await self.body()
        obj = negotiate.decode_body(data, self.request.headers.get("Content-Type"),
                                    self.resource.kind, self.resource.group_version)
        check_object(self, obj)
        return obj


async def read_body(request: web.Request) -> bytes:
    if (request.content_length or 0) > negotiate.MAX_BODY:
        raise errors.too_large()
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > negotiate.MAX_BODY:
            raise errors.too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def check_object(scope: Scope, obj: Obj) -> None:
    """Reject a body whose apiVersion, kind, name or namespace contradicts the URL (400), and
    fill in apiVersion/kind when absent, as kube's decoder defaults them from the URL."""
    r = scope.resource
    kind, gv = r.kind, r.group_version
    sub = r.subresource(scope.info.subresource) if scope.info.subresource else None
    if sub is not None and scope.info.subresource != "status":
        kind = sub.kind
        gv = f"{sub.group}/{sub.version}" if sub.group else (sub.version or gv)
    body_kind, body_gv = obj.get("kind"), obj.get("apiVersion")
    if body_kind and body_kind != kind:
        raise errors.bad_request(
            f"the object provided is unrecognized (must be of type {kind}): "
            f'no kind "{body_kind}" is registered for version "{body_gv or gv}"')
    if body_gv and body_gv != gv:
        raise errors.bad_request(
            f"the API version in the data ({body_gv}) does not match the expected API version "
            f"({gv})")
    obj["kind"], obj["apiVersion"] = kind, gv
    meta = obj.get("metadata")
    if meta is None:
        meta = obj["metadata"] = {}
    if not isinstance(meta, dict):
        raise errors.bad_request(f"the object provided is unrecognized (must be of type {kind}):"
                                 f" metadata must be an object")
    info = scope.info
    if info.name and meta.get("name") and meta["name"] != info.name and sub is None:
        raise errors.bad_request(f"the name of the object ({meta['name']}) does not match the "
                                 f"name on the URL ({info.name})")
    if r.namespaced and meta.get("namespace") and info.namespace and \
            meta["namespace"] != info.namespace:
        raise errors.bad_request("the namespace of the provided object does not match the "
                                 "namespace sent on the request")


def respond(scope: Scope, obj: Obj, status: int = 200) -> web.Response:
    out = scope.out
    if out.form == "table" and obj.get("kind") == scope.resource.kind:
        obj = tables.table(scope.resource, [obj], include=scope.query.get("includeObject",
                                                                          "Metadata"))
    elif out.form == "partial" and obj.get("metadata") is not None and "items" not in obj:
        obj = tables.partial(obj)
    body, ctype = negotiate.dump(obj, out)
    return response(body, ctype, status, scope.ctx.warnings)


def response(body: bytes, ctype: str, status: int = 200,
             warnings: list[str] | None = None) -> web.Response:
    resp = web.Response(body=body, status=status, content_type=ctype)
    for w in warnings or ():
        resp.headers.add("Warning", warning_header(w))
    return resp


def warning_header(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{escaped}"'


def status_success(scope: Scope, obj: Obj, code: int = 200) -> Obj:
    meta = obj.get("metadata") or {}
    details = {"name": meta.get("name", ""), "group": scope.resource.group,
               "kind": scope.resource.plural, "uid": meta.get("uid", "")}
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": {k: v for k, v in details.items() if v}}


def ensure_namespace(scope: Scope) -> None:
    if scope.resource.namespaced and not scope.info.namespace and \
            scope.info.verb not in ("list", "watch", "deletecollection"):
        raise errors.bad_request("the server could not find the requested resource: "
                                 "a namespace is required")
