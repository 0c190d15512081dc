"""Messages whose JSON form is not a plain object.

Kubernetes gives a few apimachinery types custom JSON marshalling: timestamps become RFC 3339
strings (or null when zero), quantities and durations become strings, IntOrString becomes a
number or a string, managed-fields sets are raw JSON, and `ExtraValue` is a bare list. Each
converter here takes the encoded message bytes and returns what the Go JSON encoder would print
for the decoded Go value; `ZERO` is that output for a zero value never seen on the wire.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from .wire import VARINT, DecodeError, iter_fields, signed64

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _timestamp(data: memoryview, message: str) -> tuple[int, int]:
    seconds = nanos = 0
    for number, wire_type, value in iter_fields(data, message):
        if wire_type != VARINT or not isinstance(value, int):
            continue
        if number == 1:
            seconds = signed64(value)
        elif number == 2:
            nanos = signed64(value)
    return seconds, nanos


def _datetime(seconds: int, micros: int = 0) -> datetime:
    try:
        return _EPOCH + timedelta(seconds=seconds, microseconds=micros)
    except OverflowError as exc:
        raise DecodeError(f"timestamp {seconds} is out of range") from exc


def _rfc3339(dt: datetime) -> str:
    # Formatted by hand: strftime("%Y") does not zero-pad years before 1000.
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
    )


def time(data: memoryview) -> str | None:
    """metav1.Time: whole seconds; an empty message is the zero time, printed as null."""
    if not len(data):
        return None
    seconds, _ = _timestamp(data, "Timestamp")
    return _rfc3339(_datetime(seconds)) + "Z"


def micro_time(data: memoryview) -> str | None:
    """metav1.MicroTime: like Time, with nanos truncated to microseconds."""
    if not len(data):
        return None
    seconds, nanos = _timestamp(data, "Timestamp")
    dt = _datetime(seconds, nanos // 1000)
    return f"{_rfc3339(dt)}.{dt.microsecond:06d}Z"


def _frac(value: int, precision: int) -> tuple[str, int]:
    """Go's fmtFrac: the fractional digits of value/10**precision without trailing zeros."""
    digits = ""
    printed = False
    for _ in range(precision):
        digit = value % 10
        printed = printed or digit != 0
        if printed:
            digits = str(digit) + digits
        value //= 10
    return ("." + digits if printed else ""), value


def go_duration(nanoseconds: int) -> str:
    """time.Duration.String(), e.g. 1h0m0s, 1.5s, 300ms."""
    if nanoseconds == 0:
        return "0s"
    sign = "-" if nanoseconds < 0 else ""
    u = abs(nanoseconds)
    if u < 1_000_000_000:
        if u < 1_000:
            return f"{sign}{u}ns"
        precision, unit = (3, "µs") if u < 1_000_000 else (6, "ms")
        frac, whole = _frac(u, precision)
        return f"{sign}{whole}{frac}{unit}"
    frac, secs = _frac(u, 9)
    out = f"{secs % 60}{frac}s"
    minutes = secs // 60
    if minutes:
        out = f"{minutes % 60}m{out}"
        hours = minutes // 60
        if hours:
            out = f"{hours}h{out}"
    return sign + out


def duration(data: memoryview) -> str:
    """metav1.Duration {1 duration int64 nanoseconds} → Go duration string."""
    nanos = 0
    for number, wire_type, value in iter_fields(data, "Duration"):
        if number == 1 and wire_type == VARINT and isinstance(value, int):
            nanos = signed64(value)
    return go_duration(nanos)


def _string_field(data: memoryview, message: str, wanted: int) -> str:
    out = ""
    for number, _, value in iter_fields(data, message):
        if number == wanted and isinstance(value, memoryview):
            out = bytes(value).decode("utf-8", "replace")
    return out


def quantity(data: memoryview) -> str:
    """resource.Quantity {1 string}: the canonical string the client serialised."""
    return _string_field(data, "Quantity", 1) or "0"


def int_or_string(data: memoryview) -> int | str:
    """intstr.IntOrString {1 type, 2 intVal, 3 strVal}: type 1 means the string form."""
    kind = int_val = 0
    str_val = ""
    for number, wire_type, value in iter_fields(data, "IntOrString"):
        if wire_type == VARINT and isinstance(value, int):
            if number == 1:
                kind = signed64(value)
            elif number == 2:
                int_val = signed64(value)
        elif number == 3 and isinstance(value, memoryview):
            str_val = bytes(value).decode("utf-8", "replace")
    return str_val if kind == 1 else int_val


def fields_v1(data: memoryview) -> Any:
    """metav1.FieldsV1 {1 raw}: the managed-fields set, already JSON."""
    raw = b""
    for number, _, value in iter_fields(data, "FieldsV1"):
        if number == 1 and isinstance(value, memoryview):
            raw = bytes(value)
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"invalid FieldsV1 JSON: {exc}") from exc


def extra_value(data: memoryview) -> list[str] | None:
    """authentication/authorization ExtraValue {1 repeated items}: a bare JSON list."""
    items = [
        bytes(value).decode("utf-8", "replace")
        for number, wire_type, value in iter_fields(data, "ExtraValue")
        if number == 1 and isinstance(value, memoryview)
    ]
    return items or None


CONVERTERS: dict[str, Callable[[memoryview], Any]] = {
    "Time": time,
    "MicroTime": micro_time,
    "Duration": duration,
    "Quantity": quantity,
    "IntOrString": int_or_string,
    "FieldsV1": fields_v1,
    "ExtraValue": extra_value,
}

#: What Go prints for a struct-valued special field that never appeared on the wire.
ZERO: dict[str, Any] = {
    "Time": None,
    "MicroTime": None,
    "Duration": "0s",
    "Quantity": "0",
    "IntOrString": 0,
    "FieldsV1": None,
    "ExtraValue": None,
}
