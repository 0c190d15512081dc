"""`pods/log`, `pods/exec`, `pods/attach` and `pods/portforward`: the API server checks the
request as kube-apiserver does (`pkg/registry/core/pod/strategy.go`: the container, the node,
the log options, and for logs the container's state as the kubelet judges it), then proxies it
to the node agent that runs the pod (`nodeproxy.py`): `/containerLogs|exec|attach|portForward/...`
on the agent's HTTPS port.

Logs are copied as a chunked text/plain stream. Exec, attach and port-forward are websockets on
both legs with the protocol kubectl offered, relayed message by message. An agent that refuses
an exec or attach is reported the way kube's stream translator does: the client's websocket is
accepted first, and the failure arrives as a Status on the error channel
(`Internal error occurred: unable to upgrade connection: …`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web

from pocketkube.api import errors
from pocketkube.apiserver.handlers import nodeproxy
from pocketkube.apiserver.handlers.common import Scope

log = logging.getLogger("pocketkube.apiserver.streaming")

Obj = dict[str, Any]
REMOTE_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
PORTFORWARD_PROTOCOLS = ("SPDY/3.1+portforward.k8s.io",)
MAX_MESSAGE = 32 * 1024 * 1024  # above a whole 16 MiB SPDY frame in one port-forward message
TRUE = ("true", "1", "True")
CLIENT_CHECK_PERIOD = 1.0  # seconds between looks at whether a log client is still connected


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


def _require_host(pod: Obj) -> None:
    if not (pod.get("spec") or {}).get("nodeName"):
        raise errors.bad_request(f"pod {pod['metadata']['name']} does not have a host assigned")


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
    url = await nodeproxy.target(scope, pod, path, params)
    async with nodeproxy.client_session(scope) as session:
        try:
            upstream = await session.get(url)
        except aiohttp.ClientError as e:
            raise nodeproxy.unreachable(url, e) from None
        async with upstream:
            if upstream.status != 200:
                body = (await upstream.read())[:4096].decode(errors="replace")
                raise nodeproxy.agent_error(upstream.status, body, meta["name"])
            resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
            resp.enable_chunked_encoding()
            await resp.prepare(scope.request)
            copy = asyncio.create_task(_copy(upstream, resp))
            gone = asyncio.create_task(_client_gone(scope.request))
            try:
                await asyncio.wait({copy, gone}, return_when=asyncio.FIRST_COMPLETED)
                if copy.done() and copy.exception() is not None:
                    # The client or the agent went away mid-stream; the response has started,
                    # so there is no Status to send any more.
                    log.debug("log stream of %s/%s ended: %s", meta["namespace"], meta["name"],
                              copy.exception())
            finally:
                for t in (copy, gone):
                    t.cancel()
            return resp


async def _copy(upstream: aiohttp.ClientResponse, resp: web.StreamResponse) -> None:
    async for chunk in upstream.content.iter_any():
        await resp.write(chunk)
    await resp.write_eof()


async def _client_gone(request: web.Request) -> None:
    """Returns once the client has disconnected (a quiet `logs -f` would not notice before the
    next line otherwise, and would hold the agent's stream open until then)."""
    while request.transport is not None and not request.transport.is_closing():
        await asyncio.sleep(CLIENT_CHECK_PERIOD)


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
    protocols = nodeproxy.offered(scope.request, REMOTE_PROTOCOLS)
    meta = pod["metadata"]
    path = f"/{verb}/{quote(meta['namespace'])}/{quote(meta['name'])}/{quote(container)}"
    url = await nodeproxy.target(scope, pod, path, params)
    client = web.WebSocketResponse(protocols=protocols, max_msg_size=MAX_MESSAGE)
    await client.prepare(scope.request)
    async with nodeproxy.client_session(scope) as session:
        try:
            agent = await session.ws_connect(url, protocols=protocols, max_msg_size=MAX_MESSAGE,
                                             autoping=True)
        except aiohttp.WSServerHandshakeError as e:
            await nodeproxy.fail(client, await nodeproxy.refusal(session, url, e.status))
            return client
        except aiohttp.ClientError as e:
            await nodeproxy.fail(client, nodeproxy.channel_status(nodeproxy.unreachable(url, e)))
            return client
        await nodeproxy.relay(client, agent)
    return client


async def portforward(scope: Scope) -> web.StreamResponse:
    pod = await scope.store.get(scope.ns, scope.info.name)
    _require_host(pod)
    protocols = nodeproxy.offered(scope.request, PORTFORWARD_PROTOCOLS)
    meta = pod["metadata"]
    params = {"port": scope.query["ports"]} if scope.query.get("ports") else {}
    path = f"/portForward/{quote(meta['namespace'])}/{quote(meta['name'])}"
    url = await nodeproxy.target(scope, pod, path, params)
    async with nodeproxy.client_session(scope) as session:
        try:
            agent = await session.ws_connect(url, protocols=protocols, max_msg_size=MAX_MESSAGE,
                                             autoping=True)
        except aiohttp.WSServerHandshakeError as e:
            body = await nodeproxy.error_body(session, url)
            raise errors.internal(f"unable to upgrade connection: {body or e.message}") from None
        except aiohttp.ClientError as e:
            raise nodeproxy.unreachable(url, e) from None
        chosen = agent.protocol or protocols[0]
        client = web.WebSocketResponse(protocols=(chosen,), max_msg_size=MAX_MESSAGE)
        await client.prepare(scope.request)
        await nodeproxy.relay(client, agent)
    return client


