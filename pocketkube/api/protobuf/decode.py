"""Decode `application/vnd.kubernetes.protobuf` request bodies into JSON-shaped dicts.

kubectl's typed clients (client-go 1.32 prefers protobuf) send create and update bodies for
built-in kinds in this encoding, with no JSON fallback. A body is the magic `k8s\\x00` followed by
a `runtime.Unknown` envelope {1 typeMeta {1 apiVersion, 2 kind}, 2 raw, 3 contentEncoding,
4 contentType}; `raw` is the object's own message.

The result is the dict the same client would have sent as JSON: Go's JSON rules are applied to the
decoded Go value (omitempty, pointer presence, inline structs, custom time/quantity forms), so the
rest of the server never needs to know which encoding arrived.

Why not the `protobuf` package: it would need the upstream .proto files compiled in, and its JSON
mapping differs from Go's (proto3 JSON names, no omitempty, Time/Quantity as objects); the table
walk in this module is smaller than the adapter that would be needed on top.
"""

from __future__ import annotations

import base64
import logging
import struct
from typing import Any

from pocketkube.api import errors

from .specials import CONVERTERS, ZERO
from .tables import KINDS, MESSAGES, Field, Message
from .wire import BYTES, FIXED64, VARINT, DecodeError, iter_fields, read_varint, signed64

log = logging.getLogger("pocketkube.api.protobuf")

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"


def decode(body: bytes, *, api_version: str = "", kind: str = "") -> dict[str, Any]:
    """Decode a protobuf request body into the object's JSON form (a dict with kind/apiVersion).

    `api_version` and `kind` describe the endpoint (e.g. "apps/v1", "Deployment"); like
    kube-apiserver they fill in an envelope that omits them and name the expected type in
    error messages. Raises StatusError: 400 BadRequest for bytes that do not decode, 415
    UnsupportedMediaType for a kind pocketkube cannot read in protobuf.
    """
    into = kind
    if not body:
        raise _unrecognized(into, "empty data", body)
    if not body.startswith(MAGIC):
        raise _unrecognized(
            into,
            "provided data does not appear to be a protobuf message, expected prefix "
            f"[{' '.join(str(b) for b in MAGIC)}]",
            body,
        )
    if len(body) == len(MAGIC):
        raise _unrecognized(into, "empty body", body)
    try:
        env_version, env_kind, raw = _envelope(memoryview(body)[len(MAGIC) :])
    except DecodeError as exc:
        raise _unrecognized(into, str(exc), body) from exc
    env_version = env_version or api_version
    env_kind = env_kind or kind
    if not env_kind:
        # kube reports this like an unreadable body: the decoded kind is empty.
        type_meta = f'runtime.TypeMeta{{APIVersion:"{env_version}", Kind:""}}'
        raise _unrecognized(into, f"Object 'Kind' is missing in '{type_meta}'", body)
    target = KINDS.get((env_version, env_kind))
    if target is None:
        log.info("no protobuf table for %s %s", env_version, env_kind)
        raise errors.unsupported_media_type(MEDIA_TYPE)
    try:
        obj = decode_message(raw, target)
    except (DecodeError, ValueError, OverflowError) as exc:
        raise _cannot_handle(env_kind, env_version, into or env_kind, str(exc)) from exc
    return {"kind": env_kind, "apiVersion": env_version, **obj}


def decode_message(data: bytes | memoryview, type_name: str) -> dict[str, Any]:
    """Decode one message of a described type (e.g. "core.PodSpec") to its JSON object.

    Raises DecodeError for malformed bytes; the caller turns that into a Status.
    """
    return _message(memoryview(data), MESSAGES[type_name])


def _envelope(data: memoryview) -> tuple[str, str, memoryview]:
    api_version = kind = ""
    raw = memoryview(b"")
    for number, wire_type, value in iter_fields(data, "Unknown"):
        if wire_type != BYTES or not isinstance(value, memoryview):
            continue
        if number == 1:
            for n, wt, v in iter_fields(value, "TypeMeta"):
                if wt == BYTES and isinstance(v, memoryview) and n in (1, 2):
                    text = bytes(v).decode("utf-8", "replace")
                    api_version, kind = (text, kind) if n == 1 else (api_version, text)
        elif number == 2:
            raw = value
    return api_version, kind, raw


def _message(data: memoryview, msg: Message) -> dict[str, Any]:
    scalars: dict[int, Any] = {}
    nested: dict[int, list[memoryview]] = {}
    lists: dict[int, list[Any]] = {}
    maps: dict[int, dict[str, Any]] = {}
    for number, wire_type, value in iter_fields(data, msg.name.split(".")[-1]):
        field = msg.fields.get(number)
        if field is None:
            log.debug("skipping unknown field %d (wire type %d) of %s", number, wire_type, msg.name)
            continue
        if field.shape == "{":
            key, item = _map_entry(_expect_bytes(field, wire_type, value), field)
            maps.setdefault(number, {})[key] = item
        elif field.shape == "[":
            lists.setdefault(number, []).extend(_list_items(field, wire_type, value))
        elif field.is_message:
            # Repeated occurrences of a singular message merge, as concatenated encodings do.
            nested.setdefault(number, []).append(_expect_bytes(field, wire_type, value))
        else:
            scalars[number] = _scalar(field, wire_type, value)
    out: dict[str, Any] = {}
    for number, field in msg.fields.items():
        if field.shape == "{" or field.shape == "[":
            found: Any = maps.get(number) if field.shape == "{" else lists.get(number)
            if found:
                out[field.name] = found
            elif field.keep:
                out[field.name] = None
        elif field.is_message:
            if number in nested:
                chunks = nested[number]
                value = _convert(
                    field, chunks[0] if len(chunks) == 1 else memoryview(b"".join(chunks))
                )
            elif field.pointer:
                if field.keep:
                    out[field.name] = None
                continue
            else:
                value = ZERO[field.type] if field.type in ZERO else _convert(field, memoryview(b""))
            if field.name:
                out[field.name] = value
            else:
                out.update(value)
        elif number in scalars:
            value = scalars[number]
            if field.pointer or field.keep or value:
                out[field.name] = value
        elif field.keep:
            out[field.name] = None if field.pointer else _ZERO_SCALAR[field.type]
    return out


_ZERO_SCALAR: dict[str, Any] = {"s": "", "i": 0, "b": False, "y": "", "d": 0.0}


def _convert(field: Field, data: memoryview) -> Any:
    converter = CONVERTERS.get(field.type)
    if converter is not None:
        return converter(data)
    return _message(data, MESSAGES[field.type])


def _wrong_wire_type(field: Field, wire_type: int) -> DecodeError:
    go_name = field.name[:1].upper() + field.name[1:]
    return DecodeError(f"proto: wrong wireType = {wire_type} for field {go_name}")


def _expect_bytes(field: Field, wire_type: int, value: int | memoryview) -> memoryview:
    if wire_type != BYTES or not isinstance(value, memoryview):
        raise _wrong_wire_type(field, wire_type)
    return value


def _scalar(field: Field, wire_type: int, value: int | memoryview) -> Any:
    code = field.type
    if code in ("s", "y"):
        data = bytes(_expect_bytes(field, wire_type, value))
        return data.decode("utf-8", "replace") if code == "s" else base64.b64encode(data).decode()
    if code == "d":
        if wire_type != FIXED64 or not isinstance(value, int):
            raise _wrong_wire_type(field, wire_type)
        return struct.unpack("<d", value.to_bytes(8, "little"))[0]
    if wire_type != VARINT or not isinstance(value, int):
        raise _wrong_wire_type(field, wire_type)
    return bool(value) if code == "b" else signed64(value)


def _list_items(field: Field, wire_type: int, value: int | memoryview) -> list[Any]:
    if field.is_message:
        return [_convert(field, _expect_bytes(field, wire_type, value))]
    if field.type in ("i", "b", "d") and wire_type == BYTES and isinstance(value, memoryview):
        # Packed encoding: Go's generated unmarshallers accept it for repeated numbers.
        if field.type == "d":
            if len(value) % 8:
                raise DecodeError("unexpected EOF")
            return [
                _scalar(field, FIXED64, int.from_bytes(value[i : i + 8], "little"))
                for i in range(0, len(value), 8)
            ]
        items = []
        pos = 0
        while pos < len(value):
            item, pos = read_varint(value, pos)
            items.append(_scalar(field, VARINT, item))
        return items
    return [_scalar(field, wire_type, value)]


def _map_entry(data: memoryview, field: Field) -> tuple[str, Any]:
    key = ""
    chunks: list[memoryview] = []
    raw_value: Any = None
    for number, wire_type, value in iter_fields(data, "MapEntry"):
        if number == 1:
            key = bytes(_expect_bytes(field, wire_type, value)).decode("utf-8", "replace")
        elif number == 2:
            if field.is_message:
                chunks.append(_expect_bytes(field, wire_type, value))
            else:
                raw_value = _scalar(field, wire_type, value)
    if field.is_message:
        return key, _convert(field, memoryview(b"".join(chunks)))
    return key, raw_value if raw_value is not None else _ZERO_SCALAR[field.type]


def _unrecognized(into: str, message: str, body: bytes) -> errors.StatusError:
    if not into:
        return errors.bad_request(message)
    summary = "<empty>" if not body else body[:30].hex() + (" ..." if len(body) > 30 else "")
    return errors.bad_request(
        f"the object provided is unrecognized (must be of type {into}): {message} ({summary})"
    )


def _cannot_handle(kind: str, api_version: str, into: str, message: str) -> errors.StatusError:
    version = api_version.rpartition("/")[2]
    return errors.bad_request(
        f'{kind} in version "{version}" cannot be handled as a {into or kind}: {message}'
    )
