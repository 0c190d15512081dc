"""Wire-level behaviour of the protobuf decoder: Go JSON semantics, special types, errors."""

from __future__ import annotations

import logging
import random
import struct

import pytest

from pocketkube.api.errors import StatusError
from pocketkube.api.protobuf import decode
from pocketkube.api.protobuf.specials import go_duration, micro_time
from pocketkube.api.protobuf.tables import KINDS


# A tiny encoder, enough to build test bodies field by field.
def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def f(number: int, value: int | bool | str | bytes) -> bytes:
    """One field: ints/bools as varints, str/bytes length-delimited."""
    if isinstance(value, bool | int):
        return _varint(number << 3) + _varint(int(value))
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def entry(number: int, key: str, value: str | bytes) -> bytes:
    return f(number, f(1, key) + f(2, value))


def body(api_version: str, kind: str, raw: bytes) -> bytes:
    return b"k8s\x00" + f(1, f(1, api_version) + f(2, kind)) + f(2, raw) + f(3, "") + f(4, "")


def deployment(spec: bytes, meta: bytes = b"") -> bytes:
    # Go writes every non-pointer field; an empty ObjectMeta still carries its name etc.
    return body("apps/v1", "Deployment", f(1, meta) + f(2, spec) + f(3, b""))


def test_pointer_zero_is_kept_and_value_zero_is_dropped() -> None:
    spec = f(1, 0) + f(3, b"") + f(4, b"") + f(5, 0) + f(7, False)  # replicas*, minReady, paused
    meta = f(1, "web") + f(2, "") + f(3, "") + f(7, 0) + f(8, b"")
    out = decode(deployment(spec, meta))
    assert out["metadata"] == {"name": "web", "creationTimestamp": None}
    assert out["spec"]["replicas"] == 0
    assert "minReadySeconds" not in out["spec"] and "paused" not in out["spec"]
    # selector is a pointer without omitempty: null when unset, like Go's JSON.
    assert out["spec"]["selector"] is None
    assert out["spec"]["strategy"] == {}
    assert out["status"] == {}


def test_fields_without_omitempty_appear_when_zero_or_absent() -> None:
    port = f(3, 0) + f(4, f(1, 0) + f(2, 0) + f(3, ""))
    svc = body("v1", "Service", f(1, b"") + f(2, f(1, port)) + f(3, b""))
    assert decode(svc)["spec"]["ports"] == [{"port": 0, "targetPort": 0}]
    pod_spec = f(2, f(2, "nginx"))  # a container without a name
    pod = body("v1", "Pod", f(1, b"") + f(2, pod_spec) + f(3, b""))
    assert decode(pod)["spec"]["containers"] == [{"name": "", "image": "nginx", "resources": {}}]


def test_times() -> None:
    meta = f(1, "x") + f(8, f(1, 1704067200) + f(2, 5)) + f(9, f(1, 0))
    out = decode(body("v1", "Namespace", f(1, meta)))
    assert out["metadata"]["creationTimestamp"] == "2024-01-01T00:00:00Z"
    assert out["metadata"]["deletionTimestamp"] == "1970-01-01T00:00:00Z"
    assert micro_time(memoryview(f(1, 1704067200) + f(2, 123456789))) == (
        "2024-01-01T00:00:00.123456Z"
    )
    assert micro_time(memoryview(b"")) is None


@pytest.mark.parametrize(
    ("nanos", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (1500, "1.5µs"),
        (300_000_000, "300ms"),
        (1_500_000_000, "1.5s"),
        (90 * 10**9, "1m30s"),
        (3600 * 10**9, "1h0m0s"),
        (-2 * 10**9, "-2s"),
        (26 * 3600 * 10**9 + 1, "26h0m0.000000001s"),
    ],
)
def test_go_duration(nanos: int, text: str) -> None:
    assert go_duration(nanos) == text


def test_int_or_string_quantity_and_negative_ints() -> None:
    pdb_spec = f(1, f(1, 1) + f(2, 0) + f(3, "25%")) + f(3, f(1, 0) + f(2, -3) + f(3, ""))
    out = decode(body("policy/v1", "PodDisruptionBudget", f(2, pdb_spec)))
    assert out["spec"] == {"minAvailable": "25%", "maxUnavailable": -3}
    quota = entry(1, "cpu", f(1, "500m")) + entry(1, "pods", f(1, ""))
    out = decode(body("v1", "ResourceQuota", f(2, quota)))
    assert out["spec"] == {"hard": {"cpu": "500m", "pods": "0"}}


def test_secret_bytes_are_base64_and_strings_stay_text() -> None:
    raw = entry(2, "k", b"\x00\xffhi") + entry(2, "empty", b"") + f(3, "Opaque")
    raw += entry(4, "plain", "héllo")
    out = decode(body("v1", "Secret", raw))
    assert out["data"] == {"k": "AP9oaQ==", "empty": ""}
    assert out["stringData"] == {"plain": "héllo"}
    assert out["type"] == "Opaque"


def test_inline_structs_merge_into_parent() -> None:
    volume = f(1, "cfg") + f(2, f(19, f(1, f(1, "settings")) + f(3, 0o644)))
    env = f(1, "PASS") + f(3, f(4, f(1, f(1, "db")) + f(2, "password")))
    pod_spec = f(1, volume) + f(2, f(1, "c") + f(7, env))
    out = decode(body("v1", "Pod", f(2, pod_spec)))
    assert out["spec"]["volumes"] == [
        {"name": "cfg", "configMap": {"name": "settings", "defaultMode": 0o644}}
    ]
    assert out["spec"]["containers"][0]["env"] == [
        {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}
    ]


def test_packed_and_unpacked_repeated_ints() -> None:
    packed = _varint(1) + _varint(2) + _varint((1 << 64) - 1)
    security = f(4, packed) + f(4, 7)
    pod_spec = f(14, security) + f(25, -5)
    out = decode(body("v1", "Pod", f(2, pod_spec)))
    assert out["spec"]["securityContext"] == {"supplementalGroups": [1, 2, -1, 7]}
    assert out["spec"]["priority"] == -5


def test_repeated_singular_message_merges() -> None:
    out = decode(body("apps/v1", "Deployment", f(2, f(1, 2)) + f(2, f(7, True))))
    assert out["spec"]["replicas"] == 2 and out["spec"]["paused"] is True


def test_unknown_fields_are_skipped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    fixed64 = _varint(99 << 3 | 1) + struct.pack("<d", 1.5)
    fixed32 = _varint(98 << 3 | 5) + b"\x01\x02\x03\x04"
    group = _varint(97 << 3 | 3) + f(1, 5) + _varint(97 << 3 | 4)
    raw = f(1, f(1, "ns") + f(50, "future")) + fixed64 + fixed32 + group + f(96, 7)
    with caplog.at_level(logging.DEBUG, logger="pocketkube.api.protobuf"):
        out = decode(body("v1", "Namespace", raw))
    assert out["metadata"] == {"name": "ns", "creationTimestamp": None}
    assert "skipping unknown field 50" in caplog.text


def test_envelope_defaults_come_from_the_endpoint() -> None:
    raw = f(1, f(1, "ns"))
    out = decode(b"k8s\x00" + f(2, raw), api_version="v1", kind="Namespace")
    assert out["kind"] == "Namespace" and out["apiVersion"] == "v1"


@pytest.mark.parametrize(
    ("data", "kind", "message"),
    [
        (
            b"",
            "Deployment",
            "the object provided is unrecognized (must be of type Deployment): empty data (<empty>)",
        ),
        (
            b'{"kind":"x"}',
            "Deployment",
            "the object provided is unrecognized (must be of type Deployment): provided data does not "
            "appear to be a protobuf message, expected prefix [107 56 115 0] (7b226b696e64223a2278227d)",
        ),
        (b"k8s\x00", "", "empty body"),
        (
            deployment(f(1, 3))[:-5],
            "Deployment",
            "the object provided is unrecognized (must be of type Deployment): unexpected EOF (",
        ),
        (
            body("apps/v1", "Deployment", f(2, f(1, 3))[:-1]),
            "Deployment",
            'Deployment in version "v1" cannot be handled as a Deployment: unexpected EOF',
        ),
        (
            deployment(f(1, "three")),
            "",
            'Deployment in version "v1" cannot be handled as a Deployment: '
            "proto: wrong wireType = 2 for field Replicas",
        ),
        (
            body("apps/v1", "Deployment", _varint(0)),
            "",
            'Deployment in version "v1" cannot be handled as a Deployment: '
            "proto: Deployment: illegal tag 0 (wire type 0)",
        ),
        (
            b"k8s\x00" + f(2, b""),
            "",
            "Object 'Kind' is missing in 'runtime.TypeMeta{APIVersion:\"\", Kind:\"\"}'",
        ),
    ],
)
def test_bad_bodies_are_bad_requests(data: bytes, kind: str, message: str) -> None:
    with pytest.raises(StatusError) as err:
        decode(data, kind=kind)
    assert (err.value.code, err.value.reason) == (400, "BadRequest")
    assert message in err.value.message


def test_kind_without_a_table_is_unsupported_media_type() -> None:
    with pytest.raises(StatusError) as err:
        decode(body("storage.k8s.io/v1", "StorageClass", f(1, f(1, "fast"))))
    assert (err.value.code, err.value.reason) == (415, "UnsupportedMediaType")


@pytest.mark.parametrize(("api_version", "kind"), sorted(KINDS))
def test_every_kind_decodes_its_zero_object(api_version: str, kind: str) -> None:
    out = decode(body(api_version, kind, b""))
    assert out["kind"] == kind and out["apiVersion"] == api_version
    assert out["metadata"] == {"creationTimestamp": None}


def test_corrupted_bodies_never_escape_as_other_exceptions() -> None:
    volume = f(1, "v") + f(2, f(2, f(2, f(1, "1Gi"))))
    container = f(1, "c") + f(6, f(3, 80)) + f(8, entry(1, "cpu", f(1, "1")))
    pod = f(1, volume) + f(2, container) + f(14, f(4, _varint(5)))
    good = deployment(f(1, 3) + f(3, f(1, f(11, entry(1, "app", "web"))) + f(2, pod)))
    rng = random.Random(1234)
    outcomes = {"ok": 0, "rejected": 0}
    for _ in range(3000):
        data = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            if len(data) <= 5:
                break
            pos = rng.randrange(4, len(data))
            action = rng.random()
            if action < 0.5:
                data[pos] = rng.randrange(256)
            elif action < 0.75:
                del data[pos:]
            else:
                data[pos:pos] = bytes([rng.randrange(256)])
        try:
            decode(bytes(data), kind="Deployment")
            outcomes["ok"] += 1
        except StatusError as exc:
            assert exc.code in (400, 415)
            outcomes["rejected"] += 1
    assert outcomes["ok"] and outcomes["rejected"]
