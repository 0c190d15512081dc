"""Protocol Buffers wire-format reader.

A minimal, bounds-checked reader for the binary encoding that Kubernetes clients use for
`application/vnd.kubernetes.protobuf` bodies. It knows nothing about message types: it only splits
a buffer into (field number, wire type, value) triples. Interpretation lives in `decode.py`,
driven by the descriptor tables.

Errors carry the same texts as the Go (gogo-protobuf) unmarshallers that kube-apiserver uses,
so a corrupt body produces the message a client would see from a real server.
"""

from __future__ import annotations

from collections.abc import Iterator

VARINT = 0
FIXED64 = 1
BYTES = 2
FIXED32 = 5

_MAX_VARINT_BYTES = 10
_UINT64 = 1 << 64


class DecodeError(Exception):
    """The bytes are not a valid encoding of the expected message."""


def read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    """Read an unsigned varint at `pos`; return (value, next position)."""
    value = 0
    shift = 0
    end = len(buf)
    for _ in range(_MAX_VARINT_BYTES):
        if pos >= end:
            raise DecodeError("unexpected EOF")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value & (_UINT64 - 1), pos
        shift += 7
    raise DecodeError("proto: integer overflow")


def signed64(value: int) -> int:
    """Reinterpret an unsigned 64-bit varint as Go's int64 (negative int32s are sign-extended)."""
    return value - _UINT64 if value >= 1 << 63 else value


def iter_fields(buf: memoryview, message: str) -> Iterator[tuple[int, int, int | memoryview]]:
    """Yield (field number, wire type, value) for every field of one encoded message.

    Varint and fixed-width values come back as unsigned ints, length-delimited ones as a
    memoryview into `buf`. `message` only names the type in error texts.
    """
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = read_varint(buf, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 4:
            raise DecodeError(f"proto: {message}: wiretype end group for non-group")
        if number <= 0:
            raise DecodeError(f"proto: {message}: illegal tag {number} (wire type {wire_type})")
        if wire_type == VARINT:
            value, pos = read_varint(buf, pos)
            yield number, wire_type, value
        elif wire_type == BYTES:
            length, pos = read_varint(buf, pos)
            if length >= 1 << 63:
                raise DecodeError("proto: negative length found during unmarshaling")
            if pos + length > end:
                raise DecodeError("unexpected EOF")
            yield number, wire_type, buf[pos : pos + length]
            pos += length
        elif wire_type in (FIXED64, FIXED32):
            size = 8 if wire_type == FIXED64 else 4
            if pos + size > end:
                raise DecodeError("unexpected EOF")
            yield number, wire_type, int.from_bytes(buf[pos : pos + size], "little")
            pos += size
        elif wire_type == 3:
            pos = _skip_group(buf, pos, number)
        else:
            raise DecodeError(f"proto: illegal wireType {wire_type}")


def _skip_group(buf: memoryview, pos: int, number: int) -> int:
    """Skip a (deprecated) group up to its matching end-group tag, as Go's skip function does."""
    depth = 1
    end = len(buf)
    while depth:
        key, pos = read_varint(buf, pos)
        wire_type = key & 7
        if wire_type == VARINT:
            _, pos = read_varint(buf, pos)
        elif wire_type == BYTES:
            length, pos = read_varint(buf, pos)
            pos += length
        elif wire_type == FIXED64:
            pos += 8
        elif wire_type == FIXED32:
            pos += 4
        elif wire_type == 3:
            depth += 1
        elif wire_type == 4:
            depth -= 1
        else:
            raise DecodeError(f"proto: illegal wireType {wire_type}")
        if pos > end:
            raise DecodeError("unexpected EOF")
    return pos
