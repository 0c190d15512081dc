"""The API server's connection to node agents for the streaming subresources: where a node's
agent listens (its InternalIP, else ExternalIP, else Hostname, and
status.daemonEndpoints.kubeletEndpoint.Port), an HTTPS client presenting
`apiserver-kubelet-client.crt` that, as kube-apiserver without `--kubelet-certificate-authority`,
does not verify the agent's certificate, kube's translation of agent errors into Status objects,
and a message-level relay between two websockets (kubectl ↔ API server ↔ agent speak the same
protocol on both legs, so nothing is re-framed).
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
from urllib.parse import urlencode

import aiohttp
from aiohttp import WSMsgType, web

from pocketkube.api import errors
from pocketkube.apiserver.handlers.common import Scope
from pocketkube.simulator.nodespec import is_simulated

log = logging.getLogger("pocketkube.apiserver.streaming")

Obj = dict[str, Any]
DEFAULT_KUBELET_PORT = 10250
TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10)


async def node_address(scope: Scope, node_name: str) -> tuple[str, int]:
    """Where the node's agent listens: its InternalIP (else ExternalIP, else Hostname) and
    status.daemonEndpoints.kubeletEndpoint.Port."""
    node = await scope.registry.store("", "nodes").get(None, node_name)
    if is_simulated(node):
        # Its addresses are for show: nothing listens behind them, and nothing may be tried.
        raise errors.service_unavailable(
            f"pods/{scope.info.subresource} is not served: node {node_name} is simulated and "
            f"runs no node agent")
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


def client_session(scope: Scope) -> aiohttp.ClientSession:
    pki = scope.request.app.get("pki")
    if pki is None:
        raise errors.service_unavailable("no client certificate for node agents is configured")
    ctx = _client_ssl(pki.kubelet_client_cert, pki.kubelet_client_key)
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx), timeout=TIMEOUT)


async def target(scope: Scope, pod: Obj, path: str,
                 params: list[tuple[str, str]] | dict[str, str]) -> str:
    host, port = await node_address(scope, pod["spec"]["nodeName"])
    query = urlencode(params)
    return f"https://{host}:{port}{path}" + (f"?{query}" if query else "")


def unreachable(url: str, e: Exception) -> errors.StatusError:
    return errors.StatusError(500, "Unknown", f'Get "{url}": {e}')


def agent_error(code: int, body: str, name: str) -> errors.StatusError:
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


def offered(request: web.Request, served: tuple[str, ...]) -> tuple[str, ...]:
    """The served protocols the client offered, in its order; 400 if it is no websocket
    upgrade offering one (kubectl then retries with SPDY, which pocketkube does not serve)."""
    offered = [p.strip() for h in request.headers.getall("Sec-WebSocket-Protocol", [])
               for p in h.split(",")]
    chosen = tuple(p for p in offered if p in served)
    if request.headers.get("Upgrade", "").lower() != "websocket" or not chosen:
        raise errors.bad_request(f"Upgrade request required: a websocket offering "
                                 f"{' or '.join(served)}")
    return chosen


async def error_body(session: aiohttp.ClientSession, url: str) -> str:
    """The agent's reason for refusing an upgrade: it answers a plain GET of the same URL with
    the same checks (aiohttp keeps no body from a failed handshake)."""
    try:
        async with session.get(url) as resp:
            return (await resp.read())[:4096].decode(errors="replace").strip()
    except aiohttp.ClientError:
        return ""


async def refusal(session: aiohttp.ClientSession, url: str, code: int) -> Obj:
    body = await error_body(session, url)
    try:
        status = json.loads(body)
        if isinstance(status, dict) and status.get("kind") == "Status":
            return status
    except ValueError:
        pass
    message = f"unable to upgrade connection: {body or f'status {code}'}"
    return channel_status(errors.internal(message))


def channel_status(err: errors.StatusError) -> Obj:
    """A Status as remote-command servers write it on the error channel (no kind/apiVersion)."""
    status = err.status()
    status.pop("kind", None)
    status.pop("apiVersion", None)
    return status


async def fail(client: web.WebSocketResponse, status: Obj) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):
        await client.send_bytes(b"\x03" + json.dumps(status).encode())
        await client.close()


async def relay(client: web.WebSocketResponse, agent: aiohttp.ClientWebSocketResponse) -> None:
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
