"""Request routing: authentication, then discovery / OpenAPI / health, or a resource handler
chosen by (resource, subresource, verb). Every failure leaves here as a Kubernetes Status."""

from __future__ import annotations

import logging
import uuid
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from pocketkube.api import errors
from pocketkube.apiserver import auth, discovery, negotiate, openapi, requestinfo
from pocketkube.apiserver.handlers import (
    crud,
    patch,
    proxy,
    streaming,
    subresources,
    virtual,
    watch,
)
from pocketkube.apiserver.handlers.common import Scope, ensure_namespace, warning_header
from pocketkube.registry.strategy import Context

log = logging.getLogger("pocketkube.apiserver")

Handler = Callable[[Scope], Awaitable[web.StreamResponse]]

VERBS: dict[str, Handler] = {
    "get": crud.get, "list": crud.list_, "watch": watch.watch, "create": crud.create,
    "update": crud.update, "patch": patch.patch, "delete": crud.delete,
    "deletecollection": crud.delete_collection,
}
SUBRESOURCES: dict[tuple[str, str], Handler] = {
    ("pods", "binding"): subresources.binding,
    ("pods", "eviction"): subresources.eviction,
    ("pods", "log"): streaming.log_,
    ("pods", "exec"): streaming.exec_,
    ("pods", "attach"): streaming.attach,
    ("pods", "portforward"): streaming.portforward,
    ("serviceaccounts", "token"): subresources.token,
    ("namespaces", "finalize"): subresources.finalize,
    ("pods", "proxy"): proxy.serve,
    ("services", "proxy"): proxy.serve,
    ("nodes", "proxy"): proxy.serve,
}
VIRTUAL: dict[str, Handler] = {
    "componentstatuses": virtual.componentstatuses,
    "bindings": subresources.binding,
    **{p: virtual.review for p in (
        "selfsubjectreviews", "tokenreviews", "localsubjectaccessreviews",
        "selfsubjectaccessreviews", "selfsubjectrulesreviews", "subjectaccessreviews")},
}


def status_response(err: errors.StatusError) -> web.Response:
    resp = web.Response(body=orjson.dumps(err.status()), status=err.code,
                        content_type="application/json")
    for k, v in err.headers.items():
        resp.headers[k] = v
    return resp


def not_allowed() -> errors.StatusError:
    return errors.method_not_allowed(
        "the server does not allow this method on the requested resource")


@web.middleware
async def status_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        resp = await handler(request)
    except errors.StatusError as e:
        resp = status_response(e)
        for w in request.get("warnings") or ():
            resp.headers.add("Warning", warning_header(w))
    except web.HTTPException as e:
        if e.status == 404:
            resp = status_response(errors.not_found_plain())
        elif e.status == 405:
            resp = status_response(not_allowed())
        else:
            resp = status_response(errors.StatusError(e.status, e.reason or "Unknown", e.text
                                                      or e.reason or ""))
    except Exception as e:  # never a traceback to the client: log it, answer 500 Status
        log.exception("internal error serving %s %s", request.method, request.path)
        resp = status_response(errors.internal(f"{type(e).__name__}: {e}"))
    if not resp.prepared:
        resp.headers.setdefault("Audit-Id", str(uuid.uuid4()))
        resp.headers.setdefault("Cache-Control", "no-cache, private")
    return resp


MAX_READ_INFLIGHT = 400  # kube-apiserver's --max-requests-inflight
MAX_MUTATING_INFLIGHT = 200  # --max-mutating-requests-inflight
# Long-running subresources, exempt from the limits as in kube's BasicLongRunningRequestCheck.
LONG_RUNNING_SUFFIXES = ("/log", "/exec", "/attach", "/portforward")


@web.middleware
async def inflight_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Shed load beyond kube's in-flight limits with 429 (watches are long-running and exempt,
    as in kube)."""
    if request.query.get("watch") in ("true", "1") or \
            request.path.endswith(LONG_RUNNING_SUFFIXES) or "/proxy" in request.path:
        return await handler(request)
    mutating = request.method not in ("GET", "HEAD", "OPTIONS")
    key, limit = ("mutating", MAX_MUTATING_INFLIGHT) if mutating else ("read",
                                                                       MAX_READ_INFLIGHT)
    counts = request.app["inflight"]
    if counts[key] >= limit:
        raise errors.too_many_requests("Too many requests, please try again later.")
    counts[key] += 1
    try:
        return await handler(request)
    finally:
        counts[key] -= 1


# The client certificate of a TLS connection never changes: read it once per connection.
_cert_users: weakref.WeakKeyDictionary[Any, auth.User | None] = weakref.WeakKeyDictionary()


def _cert_user(transport: Any) -> auth.User | None:
    try:
        return _cert_users[transport]
    except KeyError:
        pass
    ssl_obj = transport.get_extra_info("ssl_object")
    user = auth.user_from_cert(ssl_obj.getpeercert()) if ssl_obj is not None else None
    _cert_users[transport] = user
    return user


def authenticate(request: web.Request) -> auth.User | None:
    if request.transport is not None:
        user = _cert_user(request.transport)
        if user is not None:
            return user
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        claims = request.app["tokens"].verify(header[7:].strip())
        if claims is not None:
            return auth.user_from_claims(claims)
    return None


def make_context(request: web.Request, user: auth.User) -> Context:
    q = request.query
    dry = q.getall("dryRun", [])
    for d in dry:
        if d != "All":
            raise errors.bad_request(f'Invalid dryRun value "{d}"; valid values are "All"')
    fv = q.get("fieldValidation", "Warn") or "Warn"
    if fv not in ("Strict", "Warn", "Ignore"):
        raise errors.bad_request(f"fieldValidation must be one of Ignore, Warn or Strict; got "
                                 f"{fv}")
    manager = q.get("fieldManager") or request.headers.get("User-Agent", "unknown").split("/")[0]
    if len(manager) > 128:
        raise errors.bad_request("fieldManager may not be longer than 128 characters")
    ctx = Context(user=user.name, groups=user.groups, uid=user.uid, dry_run=bool(dry),
                  field_manager=manager, field_validation=fv)
    request["warnings"] = ctx.warnings  # error responses carry them too
    return ctx


async def handle(request: web.Request) -> web.StreamResponse:
    path = request.path
    app = request.app
    if path in auth.PUBLIC_PATHS or path.startswith(("/healthz/", "/livez/", "/readyz/")):
        return await app["health"].handle(request)
    user = authenticate(request)
    if user is None:
        raise errors.unauthorized()
    if path.startswith("/openapi/"):
        return serve_openapi(request)
    info = requestinfo.parse(request.method, path, dict(request.query))
    if not info.is_resource:
        return serve_discovery(request, info)
    r = app["registry"].table.lookup(info.group, info.version, info.resource)
    if r is None:
        raise errors.not_found_plain()
    verb = info.verb
    out = negotiate.negotiate_output(request.headers.get("Accept"))
    scope = Scope(request, info, r, app["registry"], make_context(request, user), request.query,
                  out)
    if info.subresource:
        sub = r.subresource(info.subresource)
        if sub is None:
            raise errors.not_found_plain()
        # A proxy relays every method (kube's proxyMethods include HEAD and OPTIONS).
        relayed = info.subresource == "proxy" and request.method in ("HEAD", "OPTIONS")
        if (verb if verb not in ("list", "watch") else "get") not in sub.verbs and not relayed:
            raise not_allowed()
        handler = SUBRESOURCES.get((r.plural, info.subresource))
        if handler is None:
            if info.subresource == "scale":
                handler = subresources.scale
            elif info.subresource == "status" and verb in ("get", "update", "patch"):
                handler = VERBS[verb]
            else:
                raise errors.StatusError(
                    503, "ServiceUnavailable",
                    f"{r.plural}/{info.subresource} is not served: no node agent is running "
                    f"this object")
    elif r.plural in VIRTUAL:
        handler = VIRTUAL[r.plural]
    else:
        if verb not in r.verbs:
            raise not_allowed()
        handler = VERBS[verb]
    if not r.stored and r.plural not in VIRTUAL:
        raise not_allowed()
    ensure_namespace(scope)
    return await handler(scope)


def serve_discovery(request: web.Request, info: requestinfo.RequestInfo) -> web.Response:
    parts = [p for p in request.path.strip("/").split("/") if p]
    accept = request.headers.get("Accept", "")
    body: bytes | None = None
    ctype = "application/json"
    if parts in (["api"], ["apis"]):
        core = parts == ["api"]
        agg = discovery.negotiate_aggregated(accept)
        if agg is not None:
            version = "v2beta1" if "v2beta1" in agg else "v2"
            body, ctype = discovery.encoded("aggregated", core, version), agg
        elif core:
            body = discovery.encoded("api_versions", request.app["server_address"])
        else:
            body = discovery.encoded("api_group_list")
    elif parts[0] == "api" and len(parts) == 2:
        body = discovery.encoded("resource_list", "", parts[1])
    elif parts[0] == "apis" and len(parts) == 2:
        body = discovery.encoded("api_group", parts[1])
    elif parts[0] == "apis" and len(parts) == 3:
        body = discovery.encoded("resource_list", parts[1], parts[2])
    if body is None:
        raise errors.not_found_plain()
    return web.Response(body=body, headers={"Content-Type": ctype})


def serve_openapi(request: web.Request) -> web.Response:
    path = request.path
    if path == "/openapi/v2":
        from pocketkube.apiserver import openapi_v2  # loaded on first use, like the document

        return openapi_v2.serve(request)
    if path.rstrip("/") == "/openapi/v3":
        return web.Response(body=openapi.v3_index_bytes(), content_type="application/json")
    if path.startswith("/openapi/v3/"):
        gv = openapi.v3_lookup(path[len("/openapi/v3/"):])
        if gv is not None:
            doc = openapi.v3_document(*gv)
            if doc is not None:
                return web.Response(body=doc, content_type="application/json", headers={
                    "Etag": f'"{openapi.v3_hash(*gv)}"'})
    raise errors.not_found_plain()
