"""The gRPC probe against real grpc.aio health servers on 127.0.0.1: each health status, an
unknown service, a server without the health service, nothing listening, a port that never
speaks HTTP/2, a call that never completes; the wire format; the prober's results and events."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc import aio

from pocketkube.kubelet.prober import grpchealth as gh
from pocketkube.kubelet.prober.prober import FAILURE, LIVENESS, READINESS, SUCCESS, Prober


class HealthServer:
    """A grpc.health.v1.Health server whose answers tests steer through `statuses`."""

    def __init__(self, statuses: dict[str, int], *, health: bool = True) -> None:
        self.statuses = statuses
        self.requests: list[str] = []
        self.metadata: list[dict[str, str]] = []
        self.hang = False
        self.release = asyncio.Event()
        self.server = aio.server()
        if health:
            handler = grpc.unary_unary_rpc_method_handler(
                self.check, request_deserializer=gh.decode_request,
                response_serializer=gh.encode_response)
            self.server.add_generic_rpc_handlers(
                (grpc.method_handlers_generic_handler(gh.SERVICE, {"Check": handler}),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    async def check(self, service: str, context: aio.ServicerContext) -> int:
        self.requests.append(service)
        self.metadata.append(dict(context.invocation_metadata() or ()))
        if self.hang:
            await self.release.wait()
        if service not in self.statuses:
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return self.statuses[service]


@pytest.fixture
async def health() -> AsyncIterator[HealthServer]:
    srv = HealthServer({"": gh.SERVING, "db": gh.NOT_SERVING, "cache": gh.SERVICE_UNKNOWN,
                        "odd": 7})
    await srv.server.start()
    try:
        yield srv
    finally:
        srv.release.set()
        await srv.server.stop(None)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_wire_format_round_trips_and_matches_protobuf_encoding():
    assert gh.encode_request("") == b""
    assert gh.encode_request("db") == b"\x0a\x02db"
    assert gh.decode_request(gh.encode_request("x" * 300)) == "x" * 300
    assert gh.encode_response(gh.SERVING) == b"\x08\x01"
    assert gh.decode_response(b"") == gh.UNKNOWN
    assert gh.decode_response(b"\x08\x02") == gh.NOT_SERVING
    # Unknown fields before and after are read past.
    assert gh.decode_response(b"\x12\x03abc\x08\x01\x1d\x00\x00\x00\x00") == gh.SERVING
    with pytest.raises(ValueError):
        gh.decode_response(b"\x08")


def test_names_as_go_prints_them():
    assert gh.status_name(gh.NOT_SERVING) == "NOT_SERVING"
    assert gh.status_name(9) == "9"
    assert gh.go_code_name(grpc.StatusCode.NOT_FOUND) == "NotFound"
    assert gh.go_code_name(grpc.StatusCode.CANCELLED) == "Canceled"
    assert gh.go_code_name(grpc.StatusCode.DEADLINE_EXCEEDED) == "DeadlineExceeded"
    assert gh.go_code_name(grpc.StatusCode.OK) == "OK"


async def test_serving_is_success(health: HealthServer):
    assert await gh.check("127.0.0.1", health.port, "", 2) == ("success", "service healthy")
    assert health.requests == [""]
    assert health.metadata[0]["user-agent"].startswith("kube-probe/1.32")


async def test_other_statuses_are_failures_with_kubes_message(health: HealthServer):
    assert await gh.check("127.0.0.1", health.port, "db", 2) == \
        ("failure", 'service unhealthy (responded with "NOT_SERVING")')
    assert await gh.check("127.0.0.1", health.port, "cache", 2) == \
        ("failure", 'service unhealthy (responded with "SERVICE_UNKNOWN")')
    assert await gh.check("127.0.0.1", health.port, "odd", 2) == \
        ("failure", 'service unhealthy (responded with "7")')
    assert health.requests == ["db", "cache", "odd"]


async def test_unknown_service_is_the_servers_rpc_error(health: HealthServer):
    assert await gh.check("127.0.0.1", health.port, "nope", 2) == \
        ("failure", "error: health rpc probe failed: rpc error: code = NotFound "
                    "desc = unknown service")


async def test_server_without_health_service():
    srv = HealthServer({}, health=False)
    await srv.server.start()
    try:
        result, message = await gh.check("127.0.0.1", srv.port, "", 2)
    finally:
        await srv.server.stop(None)
    # The description is the server's own ("Method not found!" from a grpcio server).
    assert (result, message) == (
        "failure", "error: this server does not implement the grpc health protocol "
                   "(grpc.health.v1.Health): Method not found!")


async def test_nothing_listening_times_out_connecting():
    port = closed_port()
    assert await gh.check("127.0.0.1", port, "", 0.3) == \
        ("failure", f'timeout: failed to connect service "127.0.0.1:{port}" within 300ms: '
                    "context deadline exceeded")


async def test_a_port_that_never_speaks_http2_times_out_connecting():
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        assert await gh.check("127.0.0.1", port, "", 0.3) == \
            ("failure", f'timeout: failed to connect service "127.0.0.1:{port}" within 300ms: '
                        "context deadline exceeded")
    finally:
        for w in accepted:
            w.close()
        server.close()
        await server.wait_closed()
    assert accepted


async def test_a_call_that_never_completes_times_out(health: HealthServer):
    health.hang = True
    assert await gh.check("127.0.0.1", health.port, "", 0.5) == \
        ("failure", "timeout: health rpc did not complete within 500ms")
    assert health.requests == [""]


# --- the prober ------------------------------------------------------------------------------


class FakeRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str | None]] = []

    def record(self, obj: dict, type_: str, reason: str, message: str,
               action: str | None = None, related: dict | None = None, *,
               field_path: str | None = None) -> None:  # fmt: skip
        self.events.append((type_, reason, message, field_path))


def grpc_pod(port: int, service: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    action: dict[str, Any] = {"port": port}
    if service is not None:
        action["service"] = service
    container = {"name": "api", "image": "busybox",
                 "livenessProbe": {"grpc": action, "timeoutSeconds": 1},
                 "readinessProbe": {"grpc": action, "timeoutSeconds": 1}}
    pod = {"metadata": {"name": "p", "namespace": "default", "uid": "u1"},
           "spec": {"containers": [{"name": "side", "image": "busybox"}, container]}}
    return pod, container


async def test_prober_maps_grpc_results_and_names_the_container(health: HealthServer):
    rec = FakeRecorder()
    prober = Prober(runtime=None, recorder=rec)  # type: ignore[arg-type]
    pod, container = grpc_pod(health.port)
    assert await prober.probe(LIVENESS, pod, "127.0.0.1", container, "cid") == SUCCESS
    assert rec.events == []
    pod, container = grpc_pod(health.port, "db")
    assert await prober.probe(READINESS, pod, "127.0.0.1", container, "cid") == FAILURE
    assert rec.events == [("Warning", "Unhealthy",
                           'Readiness probe failed: service unhealthy (responded with '
                           '"NOT_SERVING")', "spec.containers{api}")]
    assert health.requests == ["", "db"]


async def test_prober_reports_a_refused_grpc_port_as_failure_after_the_timeout():
    rec = FakeRecorder()
    prober = Prober(runtime=None, recorder=rec)  # type: ignore[arg-type]
    port = closed_port()
    pod, container = grpc_pod(port)
    assert await prober.probe(LIVENESS, pod, "127.0.0.1", container, "cid") == FAILURE
    assert rec.events == [("Warning", "Unhealthy",
                           f'Liveness probe failed: timeout: failed to connect service '
                           f'"127.0.0.1:{port}" within 1s: context deadline exceeded',
                           "spec.containers{api}")]
