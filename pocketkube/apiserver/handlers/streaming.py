"""`pods/log`, `pods/exec`, `pods/attach` and `pods/portforward`: the API server checks the
request as kube-apiserver does (`pkg/registry/core/pod/strategy.go`: the container, the node,
the log options, and for logs the container's state as the kubelet judges it), then proxies it
to the node agent that runs the pod: `https://<InternalIP>:<kubeletEndpoint port>/containerLogs|
exec|attach|portForward/...`, presenting `apiserver-kubelet-client.crt` and, as kube-apiserver
without `--kubelet-certificate-authority`, not verifying the agent's certificate.

Logs are copied as a chunked text/plain stream. Exec, attach and port-forward are websockets on
both legs (kubectl ↔ API server ↔ agent) with the protocol kubectl offered, relayed message by
message. An agent that refuses an exec or attach is reported the way kube's stream translator
does: the client's websocket is accepted first, and the failure arrives as a Status on the
error channel (`Internal error occurred: unable to upgrade connection: …`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import WSMsgType, web

from pocketkube.api import errors
from pocketkube.apiserver.handlers.common import Scope

log = logging.getLogger("pocketkube.apiserver.streaming")

Obj = dict[str, Any]
DEFAULT_KUBELET_PORT = 10250
REMOTE_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
PORTFORWARD_PROTOCOLS = ("SPDY/3.1+portforward.k8s.io",)
MAX_MESSAGE = 32 * 1024 * 1024  # above a whole 16 MiB SPDY frame in one port-forward message
TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10)
TRUE = ("true", "1", "True")


# --- what kube-apiserver checks before proxying ------------------------------------------------

def _names(pod: Obj, field: str) -> list[str]:
    return [c.get("name", "") for c in (pod.get("spec") or {}).get(field) or []]


def validate_container(pod: Obj, container: str) -> str:
    """The container a request is about (the only one when not named), as kube's
    validateContainer picks and checks it."""
    name = pod["metadata"]["name"]
    containers = _names(pod, "containers")
    every = _names(pod, "initContainers") + containers + _names(pod, "ephemeralContainers")
    if not container:
        if len(containers) == 1:
            return containers[0]
        if not containers:
            raise errors.bad_request(f"a container name must be specified for pod {name}")
        raise errors.bad_request(f"a container name must be specified for pod {name}, "
                                 f"choose one of: [{' '.join(every)}]")
    if container not in every:
        raise errors.bad_request(f"container {container} is not valid for pod {name}")
    return container


def check_log_state(pod: Obj, container: str, previous: bool) -> None:
    """The kubelet's validateContainerLogStatus, read from the pod's status."""
    status = pod.get("status") or {}
    pod_name = pod["metadata"]["name"]
    cs = next((s for key in ("containerStatuses", "initContainerStatuses",
                             "ephemeralContainerStatuses")
               for s in status.get(key) or [] if s.get("name") == container), None)
    where = f'container "{container}" in pod "{pod_name}"'
    if cs is None:
        raise errors.bad_request(f"{where} is not available")
    state, last = cs.get("state") or {}, (cs.get("lastState") or {}).get("terminated")
    if previous:
        if not last or not last.get("containerID"):
            raise errors.bad_request(f'previous terminated container "{container}" in pod '
                                     f'"{pod_name}" not found')
        return
    if "running" in state:
        return
    if "terminated" in state:
        if not state["terminated"].get("containerID") and not (last and last.get("containerID")):
            raise errors.bad_request(f"{where} is terminated")
        return
    if last:
        if not last.get("containerID"):
            raise errors.bad_request(f"{where} is terminated")
        return
    if "waiting" in state:
        reason = (state["waiting"] or {}).get("reason", "")
        text = {"ErrImagePull": "image can't be pulled",
                "ImagePullBackOff": "trying and failing to pull image"}.get(reason, reason)
        raise errors.bad_request(f"{where} is waiting to start: {text}")
    raise errors.bad_request(f"{where} is waiting to start - no logs yet")


def _int_param(query: Any, name: str) -> int | None:
    if name not in query:
        return None
    try:
        return int(query[name])
    except ValueError:
        raise errors.bad_request(f'strconv.ParseInt: parsing "{query[name]}": invalid syntax'
                                 ) from None


def log_params(scope: Scope) -> dict[str, str]:
    """The kubelet's query for PodLogOptions, validated as ValidatePodLogOptions does."""
    q, causes = scope.query, []
    tail, limit, since = (_int_param(q, n) for n in ("tailLines", "limitBytes", "sinceSeconds"))
    if tail is not None and tail < 0:
        causes.append(errors.field_error("FieldValueInvalid", "tailLines",
                                         f"Invalid value: {tail}: must be greater than or "
                                         f"equal to 0"))
    if limit is not None and limit < 1:
        causes.append(errors.field_error("FieldValueInvalid", "limitBytes",
                                         f"Invalid value: {limit}: must be greater than 0"))
    if since is not None and "sinceTime" in q:
        causes.append(errors.field_error("FieldValueForbidden", "", "Forbidden: at most one of "
                                         "`sinceTime` or `sinceSeconds` may be specified"))
    elif since is not None and since < 1:
        causes.append(errors.field_error("FieldValueInvalid", "sinceSeconds",
                                         f"Invalid value: {since}: must be greater than 0"))
    if causes:
        raise errors.invalid("PodLogOptions", scope.info.name, causes)
    params = {k: "true" for k in ("follow", "previous", "timestamps") if q.get(k) in TRUE}
    for key, value in (("sinceSeconds", since), ("tailLines", tail), ("limitBytes", limit)):
        if value is not None:
            params[key] = str(value)
    if "sinceTime" in q and since is None:
        params["sinceTime"] = q["sinceTime"]
    return params


async def node_address(scope: Scope, node_name: str) -> tuple[str, int]:
    """Where the node's agent listens: its InternalIP (else ExternalIP, else Hostname) and
    status.daemonEndpoints.kubeletEndpoint.Port."""
    node = await scope.registry.store("", "nodes").get(None, node_name)
    status = node.get("status") or {}
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    host = next((addresses[t] for t in ("InternalIP", "ExternalIP", "Hostname")
                 if addresses.get(t)), None)
    if host is None:
        raise errors.internal(f"no preferred addresses found; known addresses: "
                              f"{list(addresses.values())}")
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    return host, int(port or DEFAULT_KUBELET_PORT)


@lru_cache(maxsize=4)
def _client_ssl(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def _session(scope: Scope) -> aiohttp.ClientSession:
    pki = scope.request.app.get("pki")
    if pki is None:
        raise errors.service_unavailable("no client certificate for node agents is configured")
    ctx = _client_ssl(pki.kubelet_client_cert, pki.kubelet_client_key)
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx), timeout=TIMEOUT)


async def _target(scope: Scope, pod: Obj, path: str,
                  params: list[tuple[str, str]] | dict[str, str]) -> str:
    host, port = await node_address(scope, pod["spec"]["nodeName"])
    query = urlencode(params)
    return f"https://{host}:{port}{path}" + (f"?{query}" if query else "")


def _unreachable(url: str, e: Exception) -> errors.StatusError:
    return errors.StatusError(500, "Unknown", f'Get "{url}": {e}')


def _agent_error(code: int, body: str, name: str) -> errors.StatusError:
    """The agent's plain-text error as kube's GenericHttpResponseChecker turns it into a Status."""
    if code == 400:
        return errors.bad_request(body)
    if code == 500:
        return errors.StatusError(500, "InternalError", body)
    if code == 404:
        return errors.StatusError(404, "NotFound", f"the server could not find the requested "
                                  f"resource ( pods/log {name})",
                                  {"name": name, "kind": "pods/log", "causes": [
                                      {"reason": "UnexpectedServerResponse", "message": body}]})
    return errors.StatusError(code, "Unknown", body)


# --- handlers ------------------------------------------------------------------------------

async def log_(scope: Scope) -> web.StreamResponse:
    pod = await scope.store.get(scope.ns, scope.info.name)
    container = validate_container(pod, scope.query.get("container", ""))
    params = log_params(scope)
    if not (pod.get("spec") or {}).get("nodeName"):
        return web.Response(body=b"", content_type="text/plain")  # kube: an empty stream
    check_log_state(pod, container, "previous" in params)
    meta = pod["metadata"]
    path = f"/containerLogs/{quote(meta['namespace'])}/{quote(meta['name'])}/{quote(container)}"
    url = await _target(scope, pod, path, params)
    async with _session(scope) as session:
        try:
            upstream = await session.get(url)
        except aiohttp.ClientError as e:
            raise _unreachable(url, e) from None
        async with upstream:
            if upstream.status != 200:
                body = (await upstream.read())[:4096].decode(errors="replace")
                raise _agent_error(upstream.status, body, meta["name"])
            resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
            resp.enable_chunked_encoding()
            await resp.prepare(scope.request)
            try:
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
            except (ConnectionError, aiohttp.ClientError) as e:
                log.debug("log stream of %s/%s ended: %s", meta["namespace"], meta["name"], e)
            return resp


async def exec_(scope: Scope) -> web.StreamResponse:
    return await _remote(scope, "exec")


async def attach(scope: Scope) -> web.StreamResponse:
    return await _remote(scope, "attach")


async def _remote(scope: Scope, verb: str) -> web.StreamResponse:
    pod = await scope.store.get(scope.ns, scope.info.name)
    container = validate_container(pod, scope.query.get("container", ""))
    _require_host(pod)
    q = scope.query
    params = [(k, "1") for k in ("stdin", "stdout", "stderr", "tty") if q.get(k) in TRUE]
    if verb == "exec":
        params += [("command", c) for c in q.getall("command", [])]
    protocols = _offered(scope.request, REMOTE_PROTOCOLS)
    meta = pod["metadata"]
    path = f"/{verb}/{quote(meta['namespace'])}/{quote(meta['name'])}/{quote(container)}"
    url = await _target(scope, pod, path, params)
    client = web.WebSocketResponse(protocols=protocols, max_msg_size=MAX_MESSAGE)
    await client.prepare(scope.request)
    async with _session(scope) as session:
        try:
            agent = await session.ws_connect(url, protocols=protocols, max_msg_size=MAX_MESSAGE,
                                             autoping=True)
        except aiohttp.WSServerHandshakeError as e:
            await _fail(client, await _refusal(session, url, e.status))
            return client
        except aiohttp.ClientError as e:
            await _fail(client, _channel_status(_unreachable(url, e)))
            return client
        await _relay(client, agent)
    return client


async def portforward(scope: Scope) -> web.StreamResponse:
    pod = await scope.store.get(scope.ns, scope.info.name)
    _require_host(pod)
    protocols = _offered(scope.request, PORTFORWARD_PROTOCOLS)
    meta = pod["metadata"]
    params = {"port": scope.query["ports"]} if scope.query.get("ports") else {}
    path = f"/portForward/{quote(meta['namespace'])}/{quote(meta['name'])}"
    url = await _target(scope, pod, path, params)
    async with _session(scope) as session:
        try:
            agent = await session.ws_connect(url, protocols=protocols, max_msg_size=MAX_MESSAGE,
                                             autoping=True)
        except aiohttp.WSServerHandshakeError as e:
            body = await _error_body(session, url)
            raise errors.internal(f"unable to upgrade connection: {body or e.message}") from None
        except aiohttp.ClientError as e:
            raise _unreachable(url, e) from None
        chosen = agent.protocol or protocols[0]
        client = web.WebSocketResponse(protocols=(chosen,), max_msg_size=MAX_MESSAGE)
        await client.prepare(scope.request)
        await _relay(client, agent)
    return client


# --- websocket plumbing --------------------------------------------------------------------

def _require_host(pod: Obj) -> None:
    if not (pod.get("spec") or {}).get("nodeName"):
        raise errors.bad_request(f"pod {pod['metadata']['name']} does not have a host assigned")


def _offered(request: web.Request, served: tuple[str, ...]) -> tuple[str, ...]:
    """The served protocols the client offered, in its order; 400 if it is no websocket
    upgrade offering one (kubectl then retries with SPDY, which pocketkube does not serve)."""
    offered = [p.strip() for h in request.headers.getall("Sec-WebSocket-Protocol", [])
               for p in h.split(",")]
    chosen = tuple(p for p in offered if p in served)
    if request.headers.get("Upgrade", "").lower() != "websocket" or not chosen:
        raise errors.bad_request(f"Upgrade request required: a websocket offering "
                                 f"{' or '.join(served)}")
    return chosen


async def _error_body(session: aiohttp.ClientSession, url: str) -> str:
    """The agent's reason for refusing an upgrade: it answers a plain GET of the same URL with
    the same checks (aiohttp keeps no body from a failed handshake)."""
    try:
        async with session.get(url) as resp:
            return (await resp.read())[:4096].decode(errors="replace").strip()
    except aiohttp.ClientError:
        return ""


async def _refusal(session: aiohttp.ClientSession, url: str, code: int) -> Obj:
    body = await _error_body(session, url)
    try:
        status = json.loads(body)
        if isinstance(status, dict) and status.get("kind") == "Status":
            return status
    except ValueError:
        pass
    message = f"unable to upgrade connection: {body or f'status {code}'}"
    return _channel_status(errors.internal(message))


def _channel_status(err: errors.StatusError) -> Obj:
    """A Status as remote-command servers write it on the error channel (no kind/apiVersion)."""
    status = err.status()
    status.pop("kind", None)
    status.pop("apiVersion", None)
    return status


async def _fail(client: web.WebSocketResponse, status: Obj) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):
        await client.send_bytes(b"\x03" + json.dumps(status).encode())
        await client.close()


async def _relay(client: web.WebSocketResponse, agent: aiohttp.ClientWebSocketResponse) -> None:
    """Copy messages both ways until either side closes, then close the other."""

    async def pump(src: Any, dst: Any) -> None:
        async for msg in src:
            if msg.type == WSMsgType.BINARY:
                await dst.send_bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await dst.send_str(msg.data)

    up = asyncio.create_task(pump(client, agent))
    down = asyncio.create_task(pump(agent, client))
    try:
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (up, down):
            t.cancel()
        for t in (up, down):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        with contextlib.suppress(Exception):
            await agent.close()
        with contextlib.suppress(Exception):
            await client.close()
