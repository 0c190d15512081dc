"""The gRPC probe (kube's pkg/probe/grpc): one grpc.health.v1.Health/Check call to
<podIP>:<port> over plaintext HTTP/2, within the probe's timeout, with kube's messages for
every outcome, since `kubectl describe pod` shows them ("Liveness probe failed: service
unhealthy (responded with "NOT_SERVING")").

The transport is grpcio's asyncio API, so a probe never blocks the agent's event loop. The two
health messages are a single field each (HealthCheckRequest {string service = 1},
HealthCheckResponse {ServingStatus status = 1}), so they are encoded and decoded here in a few
lines of protobuf wire format instead of shipping generated code for a whole service.

Like the kubelet, which dials with grpc.WithBlock, a probe first waits for the connection
(a refused or silent port therefore fails after the whole timeout, with kube's "timeout:
failed to connect service ..."), then makes the call with what is left of the timeout.
"""

from __future__ import annotations

import asyncio
import logging

import grpc
from grpc import aio

from pocketkube.kubelet.backoff import go_duration
from pocketkube.kubelet.prober.probes import (
    FAILURE,
    SUCCESS,
    USER_AGENT,
    go_quote,
    join_host_port,
)

log = logging.getLogger("pocketkube.kubelet.prober")

SERVICE = "grpc.health.v1.Health"
CHECK = f"/{SERVICE}/Check"

# grpc.health.v1.HealthCheckResponse.ServingStatus
UNKNOWN = 0
SERVING = 1
NOT_SERVING = 2
SERVICE_UNKNOWN = 3
STATUS_NAMES = {UNKNOWN: "UNKNOWN", SERVING: "SERVING", NOT_SERVING: "NOT_SERVING",
                SERVICE_UNKNOWN: "SERVICE_UNKNOWN"}

# A fresh, direct connection per probe, as the kubelet dials one per probe without a proxy.
CHANNEL_OPTIONS = (
    ("grpc.primary_user_agent", USER_AGENT),
    ("grpc.enable_http_proxy", 0),
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.enable_retries", 0),
)

# Go's names of the status codes where they differ from the Python enum's CamelCased name.
_GO_CODE_NAMES = {grpc.StatusCode.OK: "OK", grpc.StatusCode.CANCELLED: "Canceled"}


# --- protobuf wire format --------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated or overlong varint")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) of every field; unknown fields are read past, as protobuf does."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        tag, pos = _read_varint(data, pos)
        number, wire = tag >> 3, tag & 7
        value: int | bytes
        if wire == 0:
            value, pos = _read_varint(data, pos)
        elif wire == 1 or wire == 5:
            size = 8 if wire == 1 else 4
            value, pos = data[pos:pos + size], pos + size
        elif wire == 2:
            size, pos = _read_varint(data, pos)
            value, pos = data[pos:pos + size], pos + size
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > len(data):
            raise ValueError("truncated field")
        out.append((number, value))
    return out


def encode_request(service: str) -> bytes:
    """HealthCheckRequest{service}; proto3 leaves the empty default out."""
    raw = service.encode()
    return b"\x0a" + _varint(len(raw)) + raw if raw else b""


def decode_request(data: bytes) -> str:
    service = ""
    for number, value in _fields(data):
        if number == 1 and isinstance(value, bytes):
            service = value.decode()
    return service


def encode_response(status: int) -> bytes:
    """HealthCheckResponse{status}."""
    return b"\x08" + _varint(status) if status else b""


def decode_response(data: bytes) -> int:
    status = UNKNOWN
    for number, value in _fields(data):
        if number == 1 and isinstance(value, int):
            status = value & 0xFFFFFFFF  # an enum is an int32
            if status >= 1 << 31:
                status -= 1 << 32
    return status


def status_name(status: int) -> str:
    """The enum value's name; Go prints an unknown value as its number."""
    return STATUS_NAMES.get(status, str(status))


def go_code_name(code: grpc.StatusCode) -> str:
    """grpc-go's codes.Code.String(): NOT_FOUND → NotFound."""
    return _GO_CODE_NAMES.get(code) or "".join(
        part.capitalize() for part in code.name.split("_"))


# --- the probe -------------------------------------------------------------------------------


async def grpc_action(action: dict, pod_ip: str, timeout: float) -> tuple[str, str]:
    """A probe's `grpc` handler: the pod's IP, the port (a number: gRPC probes take no port
    names) and `service`, "" when unset."""
    return await check(pod_ip, int(action.get("port") or 0), action.get("service") or "",
                       timeout)


async def check(host: str, port: int, service: str, timeout: float) -> tuple[str, str]:
    """Ask <host>:<port>'s health service about `service` ("" for the whole server) within
    `timeout` seconds: SERVING is a success, anything else a failure (kube's grpcProber.Probe,
    which never reports an error)."""
    addr = join_host_port(host, port)
    within = go_duration(timeout)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with aio.insecure_channel(addr, options=CHANNEL_OPTIONS) as channel:
        try:
            async with asyncio.timeout(timeout):
                await channel.channel_ready()
        except TimeoutError:
            log.debug("gRPC probe: no connection to %s within %s", addr, within)
            return FAILURE, (f"timeout: failed to connect service {go_quote(addr)} within "
                             f"{within}: context deadline exceeded")
        rpc = channel.unary_unary(CHECK, request_serializer=encode_request,
                                  response_deserializer=decode_response)
        try:
            status = await rpc(service, timeout=max(deadline - loop.time(), 0.001))
        except aio.AioRpcError as e:
            return FAILURE, _rpc_failure(e, within)
    if status != SERVING:
        return FAILURE, f"service unhealthy (responded with {go_quote(status_name(status))})"
    return SUCCESS, "service healthy"


def _rpc_failure(e: aio.AioRpcError, within: str) -> str:
    code, details = e.code(), e.details() or ""
    log.debug("gRPC health check failed: %s %s", code, details)
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return ("error: this server does not implement the grpc health protocol "
                f"(grpc.health.v1.Health): {details}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"timeout: health rpc did not complete within {within}"
    return f"error: health rpc probe failed: rpc error: code = {go_code_name(code)} desc = {details}"
