"""The `proxy` subresources of pods, services and nodes, as kube-apiserver serves them
(`kubectl proxy`, `kubectl get --raw .../proxy/...`, dashboards reached through the API):

- pods/{[scheme:]name[:port]}/proxy/{path}: the pod's IP, on the given port or its first
  container port (pkg/registry/core/pod/strategy.go ResourceLocation);
- services/{[scheme:]name[:port]}/proxy/{path}: a random ready address of the Service's
  Endpoints on the port named (or numbered) in the request (pkg/registry/core/service/storage
  ResourceLocation);
- nodes/{name}/proxy/{path}: the node agent's HTTPS server, with the API server's client
  certificate (nodeproxy.py).

Every method is relayed with its path (trailing slash kept), query, headers and a streamed body,
and the answer comes back as the backend gave it; a websocket upgrade is relayed message by
message. The Authorization header is not passed on: kube-apiserver drops it once it has
authenticated the request, so credentials for the API never reach a pod. Written by hand on
aiohttp because the relay is the API server's own routing (which backend, which errors), not
something a generic proxy library decides.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import random
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from pocketkube.api import errors
from pocketkube.apiserver.handlers import nodeproxy
from pocketkube.apiserver.handlers.common import Scope

log = logging.getLogger("pocketkube.apiserver.proxy")

Obj = dict[str, Any]
# Hop-by-hop headers (RFC 7230 6.1) and those the relay sets itself.
DROPPED = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
           "trailer", "transfer-encoding", "upgrade", "host", "authorization", "content-length"}
TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10)


def split_scheme_name_port(ident: str) -> tuple[str, str, str] | None:
    """kube's SplitSchemeNamePort: "name", "name:port" or "scheme:name:port" (http/https)."""
    parts = ident.split(":")
    if len(parts) == 1:
        scheme, name, port = "", parts[0], ""
    elif len(parts) == 2:
        scheme, name, port = "", parts[0], parts[1]
    elif len(parts) == 3:
        scheme, name, port = parts
    else:
        return None
    if not name or scheme not in ("", "http", "https"):
        return None
    return scheme, name, port


def _suffix(scope: Scope) -> str:
    """The path after `/proxy`, exactly as sent (trailing slash kept, still percent-encoded)."""
    raw = scope.request.raw_path.split("?", 1)[0]
    marker = f"/{scope.info.name}/proxy"
    i = raw.find(marker)
    rest = raw[i + len(marker):] if i >= 0 else ""
    return rest if rest.startswith("/") else ("/" + rest if rest else "")


def _parse(ident: str, kind: str) -> tuple[str, str, str]:
    split = split_scheme_name_port(ident)
    if split is None:
        raise errors.bad_request(f'invalid {kind} request "{ident}"')
    return split


async def pod_location(scope: Scope) -> str:
    scheme, name, port = _parse(scope.info.name, "pod")
    pod = await scope.registry.store("", "pods").get(scope.info.namespace, name)
    if not port:
        for c in (pod.get("spec") or {}).get("containers") or []:
            if c.get("ports"):
                port = str(c["ports"][0].get("containerPort", ""))
                break
    ip = (pod.get("status") or {}).get("podIP") or ""
    if not _global_unicast(ip):
        raise errors.bad_request("address not allowed")
    return f"{scheme or 'http'}://{ip}" + (f":{port}" if port else "")


async def service_location(scope: Scope) -> str:
    ident = scope.info.name
    scheme, name, port = _parse(ident, "service")
    ns = scope.info.namespace
    if port.isdigit():
        svc = await scope.registry.store("", "services").get(ns, name)
        named = [p.get("name", "") for p in (svc.get("spec") or {}).get("ports") or []
                 if str(p.get("port")) == port]
        if not named:
            raise errors.service_unavailable(
                f'no service port {port} found for service "{name}"')
        port = named[0]
    eps = await scope.registry.store("", "endpoints").get(ns, name)
    subsets = eps.get("subsets") or []
    if not subsets:
        raise errors.service_unavailable(f'no endpoints available for service "{name}"')
    start = random.randrange(len(subsets))
    for k in range(len(subsets)):
        subset = subsets[(start + k) % len(subsets)]
        addresses = subset.get("addresses") or []
        if not addresses:
            continue
        for p in subset.get("ports") or []:
            if p.get("name", "") == port:
                ip = random.choice(addresses)["ip"]
                return f"{scheme or 'http'}://{ip}:{p['port']}"
    raise errors.service_unavailable(f'no endpoints available for service "{ident}"')


async def node_location(scope: Scope) -> str:
    await scope.registry.store("", "nodes").get(None, scope.info.name)  # 404 when absent
    host, port = await nodeproxy.node_address(scope, scope.info.name)
    return f"https://{host}:{port}"


def _global_unicast(ip: str) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return not (addr.is_loopback or addr.is_link_local or addr.is_multicast
                or addr.is_unspecified or addr == ipaddress.ip_address("255.255.255.255"))


async def serve(scope: Scope) -> web.StreamResponse:
    """The handler of pods/proxy, services/proxy and nodes/proxy."""
    where = {"pods": pod_location, "services": service_location,
             "nodes": node_location}[scope.resource.plural]
    base = await where(scope)
    query = scope.request.query_string
    url = base + _suffix(scope) + (f"?{query}" if query else "")
    # Content-Length stays: a body relayed as it streams in must not turn into chunks that
    # a simple backend (busybox httpd's CGI) would not decode.
    headers = CIMultiDict((k, v) for k, v in scope.request.headers.items()
                          if k.lower() not in DROPPED or k.lower() == "content-length")
    forwarded = scope.request.remote or ""
    if forwarded:
        headers["X-Forwarded-For"] = forwarded
    session = nodeproxy.client_session(scope) if scope.resource.plural == "nodes" else \
        aiohttp.ClientSession(timeout=TIMEOUT, auto_decompress=False)
    async with session:
        if scope.request.headers.get("Upgrade", "").lower() == "websocket":
            return await _websocket(scope, session, url, headers)
        return await _http(scope, session, url, headers)


async def _http(scope: Scope, session: aiohttp.ClientSession, url: str,
                headers: CIMultiDict[str]) -> web.StreamResponse:
    request = scope.request
    body = request.content if request.body_exists else None
    try:
        upstream = await session.request(request.method, url, headers=headers, data=body,
                                         allow_redirects=False)
    except (aiohttp.ClientError, OSError) as e:
        raise _unreachable(request.method, url, e) from None
    async with upstream:
        resp = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for k, v in upstream.headers.items():
            if k.lower() not in DROPPED:
                resp.headers.add(k, v)
        if upstream.headers.get("Content-Length") and request.method != "HEAD":
            resp.content_length = int(upstream.headers["Content-Length"])
        await resp.prepare(request)
        if request.method != "HEAD":
            with contextlib.suppress(aiohttp.ClientError, ConnectionError):
                async for chunk in upstream.content.iter_chunked(65536):
                    await resp.write(chunk)
        await resp.write_eof()
        return resp


async def _websocket(scope: Scope, session: aiohttp.ClientSession, url: str,
                     headers: CIMultiDict[str]) -> web.StreamResponse:
    protocols = [p.strip() for h in scope.request.headers.getall("Sec-WebSocket-Protocol", [])
                 for p in h.split(",") if p.strip()]
    for h in ("Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Protocol",
              "Sec-WebSocket-Extensions"):
        headers.popall(h, None)
    try:
        upstream = await session.ws_connect(url.replace("http", "ws", 1), headers=headers,
                                            protocols=protocols)
    except (aiohttp.ClientError, OSError) as e:
        raise _unreachable("GET", url, e) from None
    client = web.WebSocketResponse(protocols=[upstream.protocol] if upstream.protocol else [])
    await client.prepare(scope.request)
    await nodeproxy.relay(client, upstream)
    return client


def _unreachable(method: str, url: str, e: Exception) -> errors.StatusError:
    """kube's answer when the backend cannot be reached: 503 with the dial error."""
    log.debug("proxy %s %s failed: %s", method, url, e)
    return errors.service_unavailable(f"error trying to reach service: {e}")
