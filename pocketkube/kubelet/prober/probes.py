"""Three of the probe mechanisms of the node agent (kube's pkg/probe/http, tcp and exec; gRPC is
in grpchealth.py), each
returning `(result, output)` with the words the kubelet uses, so `kubectl describe pod` shows
the same "Readiness probe failed: ..." lines as on a Kubernetes node.

Go's net/http and net error strings are part of what users see (`Get "http://10.244.0.5:8080/
healthz": dial tcp 10.244.0.5:8080: connect: connection refused`), so the aiohttp and asyncio
failures are translated into them here rather than shown as Python exceptions. HTTP probes use a
short-lived connector per probe without keep-alive, as the kubelet's probe transport does.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import re
import socket
from typing import Any

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from pocketkube.kubelet.runtime.interface import Runtime

SUCCESS = "success"
WARNING = "warning"
FAILURE = "failure"
UNKNOWN = "unknown"

USER_AGENT = "kube-probe/1.32"
MAX_BODY = 10 * 1024  # bytes of a response body kept (kube's maxRespBodyLength)
MAX_EXEC_OUTPUT = 10 * 1024  # bytes of exec output kept (kube's maxReadLength)
MAX_REDIRECTS = 10
REDIRECTS = (301, 302, 303, 307, 308)

Obj = dict[str, Any]


class ProbeError(Exception):
    """The probe could not be run at all (kube: probe.Unknown with an error); the worker keeps
    its previous result."""


def go_quote(s: str) -> str:
    """Go's %q for the strings that appear in messages."""
    return json.dumps(s, ensure_ascii=False)


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def resolve_port(port: Any, container: Obj) -> int:
    """A probe's port: a number, or the name of one of the container's ports (kube's
    probe.ResolveContainerPort, including its last-ditch parse of a numeric string)."""
    if isinstance(port, bool) or port is None:
        raise ProbeError(f"intOrString had no kind: {port!r}")
    if isinstance(port, int):
        value = port
    else:
        named = [p.get("containerPort") for p in container.get("ports") or []
                 if p.get("name") == port]
        if named:
            value = int(named[0])
        elif re.fullmatch(r"[+-]?[0-9]+", str(port)):
            value = int(port)
        else:
            raise ProbeError(f"strconv.Atoi: parsing {go_quote(str(port))}: invalid syntax")
    if 0 < value < 65536:
        return value
    raise ProbeError(f"invalid port number: {value}")


def _os_error_text(e: BaseException) -> str:
    """Go's text for a socket error: the errno string, lower-cased as Go's syscall table has it."""
    code = getattr(e, "errno", None)
    if isinstance(e, ConnectionRefusedError) or code == errno.ECONNREFUSED:
        return "connection refused"
    if isinstance(code, int) and code > 0:
        text = os.strerror(code)
        return text[:1].lower() + text[1:]
    return str(e) or type(e).__name__


def _dial_error(host: str, port: int, e: BaseException) -> str:
    if isinstance(e, (socket.gaierror, aiohttp.ClientConnectorDNSError)):
        return f"dial tcp: lookup {host}: no such host"
    return f"dial tcp {join_host_port(host, port)}: connect: {_os_error_text(e)}"


# --- tcpSocket -------------------------------------------------------------------------------


async def tcp_socket(action: Obj, container: Obj, pod_ip: str, timeout: float
                     ) -> tuple[str, str]:  # fmt: skip
    """Open and close a TCP connection within `timeout` (kube's DoTCPProbe)."""
    port = resolve_port(action.get("port"), container)
    host = action.get("host") or pod_ip
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return FAILURE, f"dial tcp {join_host_port(host, port)}: i/o timeout"
    except OSError as e:
        return FAILURE, _dial_error(host, port, e)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return SUCCESS, ""


# --- exec ------------------------------------------------------------------------------------


def expand_static(command: list[str], env: list[Obj]) -> list[str]:
    """$(VAR) references in an exec probe's command, expanded with the container's literal env
    values only (kube's ExpandContainerCommandOnlyStatic): `$$` is a literal `$`, unknown
    references stay as written."""
    values = {e["name"]: e.get("value", "") for e in env
              if e.get("name") and "valueFrom" not in e}

    def expand(s: str) -> str:
        out, i = [], 0
        while i < len(s):
            if s[i] == "$" and i + 1 < len(s):
                nxt = s[i + 1]
                if nxt == "$":
                    out.append("$")
                    i += 2
                    continue
                if nxt == "(":
                    end = s.find(")", i + 2)
                    if end != -1:
                        name = s[i + 2:end]
                        out.append(values[name] if name in values else s[i:end + 1])
                        i = end + 1
                        continue
            out.append(s[i])
            i += 1
        return "".join(out)

    return [expand(c) for c in command]


async def exec_action(runtime: Runtime, container_id: str, action: Obj, container: Obj,
                      timeout: float) -> tuple[str, str]:  # fmt: skip
    """Run the command in the container: exit 0 is success, anything else a failure whose
    message is the command's output (kube's exec prober)."""
    command = expand_static(list(action.get("command") or []), container.get("env") or [])
    try:
        res = await runtime.exec_sync(container_id, command, timeout)
    except TimeoutError:
        return FAILURE, f"command {go_quote(' '.join(command))} timed out"
    except Exception as e:  # the runtime could not exec at all: kube reports it as an error
        raise ProbeError(str(e) or type(e).__name__) from e
    output = res.output[:MAX_EXEC_OUTPUT].decode(errors="replace")
    return (SUCCESS if res.exit_code == 0 else FAILURE), output


# --- httpGet ---------------------------------------------------------------------------------


def _canonical(name: str) -> str:
    """Go's CanonicalMIMEHeaderKey."""
    return "-".join(p[:1].upper() + p[1:].lower() for p in name.split("-"))


def request_for(action: Obj, container: Obj, pod_ip: str) -> tuple[str, CIMultiDict[str]]:
    """The probe's URL and headers (kube's NewRequestForHTTPGetAction)."""
    scheme = str(action.get("scheme") or "HTTP").lower()
    host = action.get("host") or pod_ip
    port = resolve_port(action.get("port"), container)
    path = action.get("path") or ""
    if path and not path.startswith("/"):
        path = "/" + path
    url = f"{scheme}://{join_host_port(host, port)}{path}"
    headers: CIMultiDict[str] = CIMultiDict()
    for h in action.get("httpHeaders") or []:
        headers.add(_canonical(h.get("name", "")), h.get("value", ""))
    if "User-Agent" not in headers:
        headers["User-Agent"] = USER_AGENT
    if "Accept" not in headers:
        headers["Accept"] = "*/*"
    elif not headers.get("Accept"):
        del headers["Accept"]
    headers["Connection"] = "close"
    return url, headers


async def _read_at_most(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    data = b""
    while len(data) < limit:
        chunk = await resp.content.read(limit - len(data))
        if not chunk:
            break
        data += chunk
    return data


async def http_get(action: Obj, container: Obj, pod_ip: str, timeout: float
                   ) -> tuple[str, str]:  # fmt: skip
    """GET the probe's URL: 200–399 is success (a redirect to another host is not followed and
    is a warning), anything else a failure (kube's DoHTTPProbe)."""
    url, headers = request_for(action, container, pod_ip)
    first = URL(url)
    connector = aiohttp.TCPConnector(force_close=True, ssl=False)
    reading_body = False
    current = url
    try:
        async with asyncio.timeout(timeout), aiohttp.ClientSession(
                connector=connector, auto_decompress=False,
                skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent")) as session:
            for hops in range(MAX_REDIRECTS):
                async with session.get(current, headers=headers, allow_redirects=False) as resp:
                    location = resp.headers.get("Location")
                    if resp.status in REDIRECTS and location:
                        target = resp.url.join(URL(location))
                        if target.host == first.host:
                            if hops + 1 == MAX_REDIRECTS:  # Go counts the requests made
                                return FAILURE, (f"Get {go_quote(str(target))}: "
                                                 f"stopped after {MAX_REDIRECTS} redirects")
                            if URL(location).is_absolute():
                                headers.pop("Host", None)
                            current = str(target)
                            continue
                    reading_body = True
                    body = (await _read_at_most(resp, MAX_BODY)).decode(errors="replace")
                    return _classify(resp.status, body)
    except TimeoutError as e:
        if reading_body:
            raise ProbeError("context deadline exceeded (Client.Timeout or context "
                             "cancellation while reading body)") from e
        return FAILURE, (f"Get {go_quote(current)}: context deadline exceeded "
                         f"(Client.Timeout exceeded while awaiting headers)")
    except aiohttp.ClientConnectorError as e:
        target = URL(current)
        return FAILURE, (f"Get {go_quote(current)}: "
                         f"{_dial_error(target.host or '', target.port or 0, e.os_error)}")
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as e:
        if reading_body:
            raise ProbeError("unexpected EOF") from e
        return FAILURE, f"Get {go_quote(current)}: EOF"
    except aiohttp.ClientError as e:
        return FAILURE, f"Get {go_quote(current)}: {e}"
    except OSError as e:
        return FAILURE, f"Get {go_quote(current)}: {_os_error_text(e)}"
    return FAILURE, f"Get {go_quote(current)}: stopped after {MAX_REDIRECTS} redirects"


def _classify(status: int, body: str) -> tuple[str, str]:
    if 200 <= status < 400:
        if status >= 300:
            return WARNING, f"Probe terminated redirects, Response body: {body}"
        return SUCCESS, body
    # kube never puts the response body in the failure message.
    return FAILURE, f"HTTP probe failed with statuscode: {status}"
